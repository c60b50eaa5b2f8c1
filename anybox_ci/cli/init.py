"""``anybox-ci init DIR``: a new master folder, ready for ``buildbot start``.

DIR must be new or empty. It gets master.cfg (the sample), one example buildout, a
workers.cfg with one local worker, and a ``secrets`` folder with generated passwords
(files readable by the owner only): the worker's password, and the web UI admin's in
``htpasswd`` (bcrypt) with its clear text in ``secrets/admin-password`` for the first
login.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..resources import console_script, master_cfg_sample
from .common import Parser, describe

EXAMPLE_MANIFEST = """\
# One section per buildout; see docs/reference/manifest.md.
[example]
buildout = standalone example/buildout.cfg
build-for = postgresql >= 13
db-steps = simple_create
post-buildout-steps = test-command
# Any command, as argv (PGDATABASE is the test database): which PostgreSQL is it?
test-command = psql -XAt -c "SELECT version()"
"""

EXAMPLE_BUILDOUT = """\
[buildout]
parts =
"""

WORKERS = """\
# One section per worker; see docs/reference/workers.md.
[local]
password = secret:worker-local
max_builds = 2
capability =
{capabilities}
"""


def _local_postgresql() -> list[str]:
    """Capability lines for the Debian clusters of this machine, if any."""
    lines = []
    for conf in sorted(Path("/etc/postgresql").glob("*/*/postgresql.conf")):
        version, port = conf.parent.parent.name, "5432"
        for raw in conf.read_text(errors="replace").splitlines():
            key, _, value = raw.partition("=")
            if key.strip() == "port":
                port = value.split("#")[0].strip()
        lines.append(f"    postgresql {version} port={port}")
    return lines or ["    postgresql 15 port=5432"]


def _secret(path: Path, value: str) -> None:
    path.write_text(value + "\n")
    path.chmod(0o600)


def _fill(directory: Path) -> None:
    """Everything of the new master folder, written into ``directory`` (the staging copy)."""
    from ..www.passwords import hash_password

    subprocess.run(
        [console_script("buildbot"), "create-master", "-q", "--relocatable", str(directory)],
        check=True,
        capture_output=True,
        text=True,
    )
    (directory / "master.cfg").write_text(master_cfg_sample())
    # Buildbot's own example would be mistaken for ours
    (directory / "master.cfg.sample").unlink(missing_ok=True)
    example = directory / "buildouts" / "example"
    example.mkdir(parents=True)
    (directory / "buildouts" / "MANIFEST.cfg").write_text(EXAMPLE_MANIFEST)
    (example / "buildout.cfg").write_text(EXAMPLE_BUILDOUT)
    (directory / "workers.cfg").write_text(
        WORKERS.format(capabilities="\n".join(_local_postgresql()))
    )
    (directory / "workers.d").mkdir()
    folder = directory / "secrets"
    folder.mkdir(mode=0o700)
    _secret(folder / "worker-local", secrets.token_urlsafe(24))
    admin = secrets.token_urlsafe(12)
    _secret(folder / "admin-password", admin)
    _secret(directory / "htpasswd", f"admin:{hash_password(admin)}")


def _missing_parents(directory: Path) -> list[Path]:
    """The parents of ``directory`` that do not exist yet, outermost first."""
    return [p for p in reversed(directory.parents) if not p.exists()]


def init(directory: Path) -> list[str]:
    """Create the folder, all or nothing; returns the lines to print.

    It is built in a hidden folder beside ``directory`` and renamed at the end, so a
    failure (or Ctrl-C) leaves no half-made master behind.
    """
    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} exists and is not empty")
    created = _missing_parents(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        mode = directory.stat().st_mode if directory.is_dir() else 0o777 & ~_umask()
        staging.chmod(stat.S_IMODE(mode))
        _fill(staging)
        staging.rename(directory)  # replaces an empty folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created):
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
    folder = directory / "secrets"
    return [
        f"created {directory}",
        "  start the master:    buildbot start " + str(directory),
        "  the local worker:    buildbot-worker create-worker WORKERDIR localhost local PASSWORD",
        f"                       (PASSWORD is in {folder / 'worker-local'})",
        f"  web UI login:        admin, password in {folder / 'admin-password'}",
        "  check the config:    anybox-ci check " + str(directory),
    ]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="anybox-ci init", description=describe(__doc__))
    parser.add_argument("dir", type=Path, help="the master folder to create (new or empty)")
    args = parser.parse_args(argv)
    try:
        for line in init(args.dir):
            print(line)
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or [str(exc)]
        print(f"anybox-ci init: error: buildbot create-master failed: {reason[0]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"anybox-ci init: error: {exc}", file=sys.stderr)
        return 1
    return 0
