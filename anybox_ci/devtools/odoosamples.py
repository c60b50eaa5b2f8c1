"""The real Odoo samples of ``anybox-ci demo --odoo SRC``.

SRC is an Odoo source folder (the one holding ``setup.py`` and ``odoo-bin``) or a
``.tar.xz``/``.tar.gz`` of one, unpacked once into ``~/.cache/anybox-ci/odoo/<sha256>``.
The live tests and benchmarks take SRC from ``ANYBOX_CI_ODOO_SRC``, by default the
trimmed Odoo 18.0 archive in ``shared/odoo/`` beside the checkout (:func:`configured_src`).
The samples ``buildouts/samples/odoo`` and ``odoo-failing`` take that folder as the
buildout option ``odoo:src`` (see their buildout.cfg); :func:`odoo_manifest` is the one
place that knows it. Buildout writes ``odoo.egg-info`` into that folder, so it must be
writable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .localmaster import REPO_ROOT

#: sample name -> the addon it installs and tests
ODOO_SAMPLES = {"odoo": "anybox_ci_sample", "odoo-failing": "anybox_ci_sample_failing"}
#: the sample meant to fail (its test_invoice_rounding fails on purpose)
ODOO_FAILING = "odoo-failing"
ARCHIVES = (".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar")
#: where the live tests and benchmarks find SRC (a folder or an archive)
SRC_ENV = "ANYBOX_CI_ODOO_SRC"
#: without it: the trimmed Odoo 18.0 that CI machines keep in ``shared/`` beside the clone
DEFAULT_SRC = REPO_ROOT.parent / "shared" / "odoo" / "odoo-18.0-trimmed.tar.xz"


def configured_src(environ: Mapping[str, str]) -> tuple[Path, str]:
    """SRC for tests and benchmarks, and where it was named (for messages)."""
    given = environ.get(SRC_ENV, "").strip()
    if given:
        return Path(given).expanduser(), f"from {SRC_ENV}"
    return DEFAULT_SRC, f"the default, as {SRC_ENV} is not set"


def is_odoo_source(path: Path) -> bool:
    return (path / "odoo-bin").is_file() and (path / "setup.py").is_file()


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _source_in(folder: Path) -> Path | None:
    """The Odoo source in an unpacked archive: the folder itself or its one top folder."""
    if is_odoo_source(folder):
        return folder
    found = [p for p in folder.iterdir() if p.is_dir() and is_odoo_source(p)]
    return found[0] if len(found) == 1 else None


def odoo_source(src: Path, cache: Path, say: Callable[[str], None]) -> Path:
    """The Odoo source folder given by ``src``, unpacking an archive once into ``cache``."""
    src = src.expanduser().resolve()
    if src.is_dir():
        if not is_odoo_source(src):
            raise ValueError(f"{src} is not an Odoo source folder (no odoo-bin and setup.py)")
        if not os.access(src, os.W_OK):
            raise ValueError(
                f"{src} is read-only, and buildout writes odoo.egg-info into it: "
                "give a writable copy, or a .tar.xz of it"
            )
        return src
    if not src.is_file() or not src.name.endswith(ARCHIVES):
        raise ValueError(f"{src}: expected an Odoo source folder or a .tar.xz of one")
    target = cache / _digest(src)
    if not target.is_dir():
        say(f"unpacking {src.name} into {target}")
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
        try:
            with tarfile.open(src) as archive:
                archive.extractall(staging, filter="data")
            staging.rename(target)  # whole or not at all, also for two runs at once
        except OSError:
            if not target.is_dir():
                raise
        except (tarfile.TarError, EOFError) as exc:
            raise ValueError(f"{src}: not a readable archive ({exc})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    found = _source_in(target)
    if found is None:
        raise ValueError(f"{src} holds no Odoo source folder (no odoo-bin and setup.py)")
    return found


def odoo_manifest(
    repos: Mapping[str, Path], odoo_src: Path, build_for: str | Mapping[str, str]
) -> str:
    """The manifest sections of the real Odoo samples: each buildout from its git
    repository, reading Odoo from ``odoo_src`` (the hook ``demo --odoo`` relies on).

    ``build_for`` is one filter for every sample, or one per sample name: samples it
    does not name are left out."""
    wanted = {n: build_for for n in ODOO_SAMPLES} if isinstance(build_for, str) else build_for
    sections = []
    for name, addon in ODOO_SAMPLES.items():
        if name not in wanted:
            continue
        sections.append(
            f"""
[{name}]
buildout = git file://{repos[name]} main buildout.cfg
buildout-options = odoo:src={odoo_src}
build-for = {wanted[name]}
post-buildout-steps = install-modules-test
odoo-addons = {addon}
# cells side by side on one worker: each Odoo its own HTTP port
odoo.use-port = true
build-category = demo
"""
        )
    return "".join(sections)
