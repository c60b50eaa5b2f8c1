"""``anybox-ci init DIR``: a master folder ready for ``buildbot start``.

It holds master.cfg (the sample), one example buildout, a workers.cfg with one local
worker, and a ``secrets`` folder with generated passwords (files readable by the owner
only): the worker's password, and the web UI admin's in ``htpasswd`` (bcrypt) with its
clear text in ``secrets/admin-password`` for the first login.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..devtools.localmaster import REPO_ROOT, _bin

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


def init(directory: Path) -> list[str]:
    """Create the folder; returns the lines to print."""
    from ..www.htpasswd import hash_password

    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} exists and is not empty")
    subprocess.run(
        [_bin("buildbot"), "create-master", "-q", str(directory)],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.copy(REPO_ROOT / "master.cfg.sample", directory / "master.cfg")
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
    return [
        f"created {directory}",
        "  start the master:    buildbot start " + str(directory),
        "  the local worker:    buildbot-worker create-worker WORKERDIR localhost local PASSWORD",
        f"                       (PASSWORD is in {folder / 'worker-local'})",
        f"  web UI login:        admin, password in {folder / 'admin-password'}",
        "  check the config:    anybox-ci check " + str(directory),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anybox-ci init", description=__doc__)
    parser.add_argument("dir", type=Path, help="the master folder to create")
    args = parser.parse_args(argv)
    try:
        for line in init(args.dir):
            print(line)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"anybox-ci init: error: {exc}", file=sys.stderr)
        return 1
    return 0
