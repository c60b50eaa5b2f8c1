"""Freeze a built buildout into a self-contained release archive (standard library only).

    python3 package.py --buildout-dir DIR --name NAME --output FILE.tar.gz
                       [--option SECTION:KEY=VALUE ...]

Why: a release is tested as shipped, on another worker, without the original repository
and without a package index. A buildout's own folder is not enough for that: its eggs live
in a shared cache, its develop sources may live outside it, and the scripts it generated
hold absolute paths. So the archive ``NAME/`` holds

* the buildout folder, without VCS folders, ``bin/``, ``parts/``, ``develop-eggs/``,
  ``.installed.cfg`` and byte code (the recipient generates its own);
* ``eggs/``: every egg the generated scripts put on their path, and the recipe eggs the
  parts were installed with (``__buildout_signature__`` in ``.installed.cfg``);
* ``develop-src/NAME``: each develop source that was outside the buildout folder;
* ``anybox-ci-release.cfg`` (:data:`RELEASE_CFG`): extends the buildout's configuration,
  takes the eggs from ``eggs/`` and the develop sources from the archive, freezes the
  ``--option`` assignments (the manifest's ``buildout-options``, with paths of moved
  develop sources rewritten) and reaches no index (``newest = false``, the archive's
  own ``eggs/`` as the only index). ``bin/buildout -c anybox-ci-release.cfg`` there regenerates the scripts for
  the place and interpreter of the recipient.

Members are sorted, owned by 0:0 and dated by the newest file, so the same build gives the
same bytes. Output: ``sha256=HEX``, ``size=N`` and ``eggs=N`` before the summary line.
"""

from __future__ import annotations

import configparser
import gzip
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]

#: the configuration written into the archive, that the recipient runs
RELEASE_CFG = "anybox-ci-release.cfg"
#: what a buildout generates, or VCS metadata: never shipped
SKIPPED_TOP = {"bin", "parts", "develop-eggs", "eggs", ".installed.cfg", ".mr.developer.cfg"}
SKIPPED_ANYWHERE = {".git", ".hg", ".bzr", ".svn", "__pycache__"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
#: an archive name: a file name, never a path
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\Z")
#: a quoted absolute path in a generated script
QUOTED_PATH_RE = re.compile(r"""['"](/[^'"\n]+)['"]""")
#: ``SECTION:KEY=VALUE`` as on buildout's command line
OPTION_RE = re.compile(r"(?P<section>[A-Za-z0-9._-]+):(?P<key>[A-Za-z0-9._-]+)=(?P<value>.*)\Z")


class PackageError(RuntimeError):
    """Packaging failed; the message is fit for the summary line."""


def read_installed(buildout_dir: Path) -> configparser.RawConfigParser:
    path = buildout_dir / ".installed.cfg"
    if not path.is_file():
        raise PackageError(f"{path.name} not found: run bin/buildout first")
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser


def egg_directories(installed: configparser.RawConfigParser) -> list[Path]:
    """The eggs folders the parts were installed from (``_e`` and ``eggs-directory``)."""
    found: dict[Path, None] = {}
    for section in installed.sections():
        for key in ("_e", "eggs-directory"):
            value = installed.get(section, key, fallback="").strip()
            if value:
                found[Path(value)] = None
    return list(found)


def used_eggs(
    buildout_dir: Path, installed: configparser.RawConfigParser, egg_dirs: Sequence[Path]
) -> list[Path]:
    """Eggs on the generated scripts' paths, and the recipe eggs of the installed parts."""
    found: dict[Path, None] = {}
    bin_dir = buildout_dir / "bin"
    scripts = sorted(p for p in bin_dir.iterdir() if p.is_file()) if bin_dir.is_dir() else []
    # a cache folder may be reached through a link: compare the real folders
    real_dirs = {os.path.realpath(eggs) for eggs in egg_dirs}
    for script in scripts:
        text = script.read_text(encoding="utf-8", errors="replace")
        for match in QUOTED_PATH_RE.finditer(text):
            path = Path(match[1])
            if os.path.realpath(path.parent) in real_dirs and path.exists():
                found[path] = None
    for section in installed.sections():
        signature = installed.get(section, "__buildout_signature__", fallback="")
        for token in signature.split():
            for eggs in egg_dirs:
                candidate = eggs / token
                if token.endswith(".egg") and "/" not in token and candidate.exists():
                    found[candidate] = None
    return sorted(found, key=lambda p: p.name)


def develop_sources(installed: configparser.RawConfigParser) -> list[Path]:
    """The source folder of each develop egg (the first line of its ``.egg-link``)."""
    value = installed.get("buildout", "installed_develop_eggs", fallback="")
    sources = []
    for line in value.split():
        path = Path(line)
        if path.suffix == ".egg-link" and path.is_file():
            first = path.read_text(encoding="utf-8").splitlines()[:1]
            if first and first[0].strip():
                sources.append(Path(first[0].strip()))
    return sources


def _ignore(top: Path | None) -> Any:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in SKIPPED_ANYWHERE or n.endswith(SKIPPED_SUFFIXES)}
        skipped |= {n for n in names if n.endswith(".egg-info")}
        if top is not None and Path(folder) == top:
            skipped |= SKIPPED_TOP & set(names)
        return skipped

    return ignore


def parse_option(text: str) -> tuple[str, str, str]:
    match = OPTION_RE.match(text)
    if not match:
        raise PackageError(f"--option {text[:100]!r}: expected SECTION:KEY=VALUE")
    return match["section"], match["key"], match["value"]


def release_cfg(
    config: str,
    develop: Sequence[str],
    options: Iterable[tuple[str, str, str]],
    moved: dict[str, str],
) -> str:
    """The configuration the recipient runs: the buildout's own, frozen and offline."""
    sections: dict[str, list[str]] = {
        "buildout": [
            f"extends = {config}",
            "eggs-directory = ${buildout:directory}/eggs",
            "eggs-directory-version =",
            # no index: a missing egg is an error, never a download (zc.buildout's offline
            # mode cannot load the recipe eggs of zc.buildout 5+ from eggs-directory)
            "newest = false",
            "index = file://${buildout:directory}/eggs",
            "find-links =",
            "develop =" + "".join(f"\n    {d}" for d in develop),
        ]
    }
    for section, key, value in options:
        for old, new in moved.items():
            value = value.replace(old, new)
        if section == "buildout" and key in ("develop", "eggs-directory", "download-cache"):
            continue  # the archive's own
        sections.setdefault(section, []).append(f"{key} = {value}")
    text = (
        "# Written by anybox-ci packaging: this release, built from what it ships, offline.\n"
        "# Run: bin/buildout -c " + RELEASE_CFG + "\n"
    )
    for name, lines in sections.items():
        text += f"\n[{name}]\n" + "\n".join(lines) + "\n"
    return text


def stage(
    buildout_dir: Path, config: str, name: str, options: Sequence[str], root: Path
) -> tuple[Path, int]:
    """The archive's tree under ``root/name``; returns it and the number of eggs."""
    parsed = [parse_option(o) for o in options]
    installed = read_installed(buildout_dir)
    egg_dirs = egg_directories(installed)
    eggs = used_eggs(buildout_dir, installed, egg_dirs)
    if egg_dirs and not eggs:
        raise PackageError("no egg found on the paths of the generated scripts")
    tree = root / name
    shutil.copytree(buildout_dir, tree, symlinks=True, ignore=_ignore(buildout_dir))
    (tree / "eggs").mkdir()
    for egg in eggs:
        target = tree / "eggs" / egg.name
        if egg.is_dir():
            shutil.copytree(egg, target, symlinks=True, ignore=_ignore(None))
        else:
            shutil.copy2(egg, target)
    develop: list[str] = []
    moved: dict[str, str] = {}
    for source in develop_sources(installed):
        real = source.resolve()
        try:
            develop.append(real.relative_to(buildout_dir.resolve()).as_posix() or ".")
            continue
        except ValueError:
            pass
        inside = f"develop-src/{real.name}"
        if (tree / inside).exists():
            raise PackageError(f"two develop sources named {real.name!r}")
        shutil.copytree(real, tree / inside, symlinks=True, ignore=_ignore(None))
        develop.append(inside)
        moved[str(source)] = "${buildout:directory}/" + inside
        moved.setdefault(str(real), "${buildout:directory}/" + inside)
    (tree / RELEASE_CFG).write_text(release_cfg(config, develop, parsed, moved))
    return tree, len(eggs)


def write_archive(tree: Path, output: Path, level: int = 6) -> str:
    """A reproducible ``.tar.gz`` of ``tree`` (top folder included); returns its sha256."""
    paths = sorted(tree.rglob("*"))
    # folders and the release configuration are made now: the files copied date the archive
    files = [p for p in paths if p.is_file() and not p.is_symlink() and p.name != RELEASE_CFG]
    newest = max([int(p.stat().st_mtime) for p in files] or [0])

    def normal(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = newest
        return info

    tmp = output.with_name(output.name + ".part")
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=level) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(tree, arcname=tree.name, recursive=False, filter=normal)
        for path in paths:
            arcname = f"{tree.name}/{path.relative_to(tree).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False, filter=normal)
    os.replace(tmp, output)
    digest = hashlib.sha256()
    with open(output, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def package(
    buildout_dir: Path, config: str, name: str, output: Path, options: Sequence[str]
) -> tuple[str, int, int]:
    """Stage and archive; returns (sha256, size in bytes, eggs shipped)."""
    if not NAME_RE.match(name) or ".." in name:
        raise PackageError(f"--name {name[:100]!r}: expected a file name")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".anybox-ci-package-") as tmp:
        tree, eggs = stage(buildout_dir.resolve(), config, name, options, Path(tmp))
        digest = write_archive(tree, output)
    (output.parent / (output.name + ".sha256")).write_text(f"{digest}  {output.name}\n")
    return digest, output.stat().st_size, eggs


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description="Freeze a built buildout into a release archive.")
    parser.add_argument("--buildout-dir", required=True)
    parser.add_argument("--config", default="buildout.cfg", help="the buildout's file")
    parser.add_argument("--name", required=True, help="the archive's top folder")
    parser.add_argument("--output", required=True)
    parser.add_argument("--option", action="append", default=[], help="SECTION:KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        digest, size, eggs = package(
            Path(args.buildout_dir), args.config, args.name, Path(args.output), args.option
        )
    except (PackageError, OSError) as exc:
        print_summary(f"packaging failed: {exc}")
        return 1
    print(f"sha256={digest}")
    print(f"size={size}")
    print(f"eggs={eggs}")
    print_summary(f"{args.name}: {size / 1e6:.1f} MB, {eggs} eggs, sha256 {digest[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
