"""build_utils/package.py: a built buildout frozen into a self-contained archive.

The buildout here is laid out as zc.buildout leaves one (``.installed.cfg``, generated
scripts naming eggs of a shared eggs folder, a develop egg whose source is elsewhere); the
real zc.buildout run of a real release is in test_live_release_archive.py.
"""

from __future__ import annotations

import configparser
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from build_utils.package import RELEASE_CFG, package

SCRIPT = Path(__file__).resolve().parents[1] / "build_utils" / "package.py"


def built_buildout(root: Path) -> tuple[Path, Path]:
    """A buildout as zc.buildout leaves it; returns (buildout folder, develop source)."""
    eggs = root / "cache" / "eggs" / "v5"
    for egg in ("used-1.0-py3.11.egg", "unused-2.0-py3.11.egg", "zc.recipe.egg-6.0.0-py3.egg"):
        (eggs / egg / "pkg").mkdir(parents=True)
        (eggs / egg / "pkg" / "__init__.py").write_text(f"# {egg}\n")
        (eggs / egg / "pkg" / "junk.pyc").write_bytes(b"\0")
    develop = root / "elsewhere" / "odoo-18.0"
    (develop / "odoo").mkdir(parents=True)
    (develop / "setup.py").write_text("from setuptools import setup\nsetup(name='odoo')\n")
    (develop / ".git").mkdir()
    (develop / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (develop / "odoo.egg-info").mkdir()
    bo = root / "build"
    (bo / "addons" / "sample").mkdir(parents=True)
    (bo / "addons" / "sample" / "__init__.py").write_text("")
    (bo / "buildout.cfg").write_text("[buildout]\nparts = app\ndevelop = ${odoo:src}\n")
    (bo / ".git").mkdir()
    (bo / ".git" / "config").write_text("[core]\n")
    for generated in ("bin", "parts/app", "develop-eggs"):
        (bo / generated).mkdir(parents=True)
    (bo / "bin" / "app").write_text(
        f"#!/venv/bin/python\nimport sys\nsys.path[0:0] = [\n"
        f"  '{eggs}/used-1.0-py3.11.egg',\n  '{develop}',\n  '/usr/lib/python3/x.egg',\n]\n"
    )
    link = bo / "develop-eggs" / "odoo.egg-link"
    link.write_text(f"{develop}\n.")
    (bo / ".installed.cfg").write_text(
        f"[buildout]\ninstalled_develop_eggs = {link}\nparts = app\n\n[app]\n"
        f"__buildout_signature__ = zc.recipe.egg-6.0.0-py3.egg setuptools-0123abcd\n"
        f"_e = {eggs}\neggs-directory = {eggs}\n"
    )
    return bo, develop


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_archive_holds_the_buildout_its_eggs_and_its_develop_sources(
    tmp_path: Path,
) -> None:
    bo, develop = built_buildout(tmp_path)
    output = tmp_path / "out" / "erp-1.4.tar.gz"
    digest, size, eggs = package(
        bo, "buildout.cfg", "erp-1.4", output, ["odoo:src=" + str(develop)]
    )
    names = set(members(output))
    assert {
        "erp-1.4/buildout.cfg",
        "erp-1.4/addons/sample/__init__.py",
        "erp-1.4/eggs/used-1.0-py3.11.egg/pkg/__init__.py",
        "erp-1.4/eggs/zc.recipe.egg-6.0.0-py3.egg/pkg/__init__.py",  # the recipe's egg
        "erp-1.4/develop-src/odoo-18.0/setup.py",
        f"erp-1.4/{RELEASE_CFG}",
    } <= names
    # generated, unused or VCS files are left out: the recipient makes its own
    for left_out in ("bin", "parts", "develop-eggs", ".installed.cfg", ".git", "unused-2.0"):
        assert not any(f"/{left_out}" in n for n in names), left_out
    assert not any(n.endswith((".pyc", ".egg-info")) for n in names)
    assert eggs == 2
    assert size == output.stat().st_size
    assert digest == hashlib.sha256(output.read_bytes()).hexdigest()
    assert (output.parent / "erp-1.4.tar.gz.sha256").read_text() == f"{digest}  erp-1.4.tar.gz\n"
    assert all(m.uid == 0 and m.gid == 0 and not m.uname for m in members(output).values())


def test_the_release_configuration_builds_from_the_archive_with_no_index(
    tmp_path: Path,
) -> None:
    bo, develop = built_buildout(tmp_path)
    output = tmp_path / "erp.tar.gz"
    package(
        bo,
        "buildout.cfg",
        "erp",
        output,
        [f"odoo:src={develop}", f"app:addons={develop}/addons,/srv/other", "buildout:develop=x"],
    )
    with tarfile.open(output) as tar:
        handle = tar.extractfile(f"erp/{RELEASE_CFG}")
        assert handle is not None
        text = handle.read().decode()
    cfg = configparser.RawConfigParser()
    cfg.read_string(text)
    assert cfg.get("buildout", "extends") == "buildout.cfg"
    assert cfg.get("buildout", "eggs-directory") == "${buildout:directory}/eggs"
    assert cfg.get("buildout", "eggs-directory-version") == ""
    assert cfg.get("buildout", "newest") == "false"
    assert cfg.get("buildout", "index") == "file://${buildout:directory}/eggs"
    assert cfg.get("buildout", "develop").split() == ["develop-src/odoo-18.0"]
    # frozen options: the moved develop source is found inside the archive
    assert cfg.get("odoo", "src") == "${buildout:directory}/develop-src/odoo-18.0"
    assert cfg.get("app", "addons") == (
        "${buildout:directory}/develop-src/odoo-18.0/addons,/srv/other"
    )
    assert str(tmp_path) not in text


def test_eggs_found_through_a_linked_cache_folder_are_shipped(tmp_path: Path) -> None:
    """Workers may link their egg cache: the scripts then name the real folder."""
    bo, develop = built_buildout(tmp_path)
    (tmp_path / "linked").symlink_to(tmp_path / "cache" / "eggs", target_is_directory=True)
    installed = bo / ".installed.cfg"
    real = str(tmp_path / "cache" / "eggs" / "v5")
    installed.write_text(installed.read_text().replace(real, str(tmp_path / "linked" / "v5")))
    output = tmp_path / "erp.tar.gz"
    _, _, eggs = package(bo, "buildout.cfg", "erp", output, [])
    assert eggs == 2
    assert "erp/eggs/used-1.0-py3.11.egg/pkg/__init__.py" in members(output)


def test_the_same_build_gives_the_same_bytes(tmp_path: Path) -> None:
    bo, develop = built_buildout(tmp_path)
    options = [f"odoo:src={develop}"]
    first, _, _ = package(bo, "buildout.cfg", "erp-1", tmp_path / "a" / "erp-1.tar.gz", options)
    second, _, _ = package(bo, "buildout.cfg", "erp-1", tmp_path / "b" / "erp-1.tar.gz", options)
    assert first == second


@pytest.mark.parametrize(
    ("args", "summary"),
    [
        (["--name", "../evil"], "packaging failed: --name '../evil': expected a file name"),
        (["--name", "ok", "--option=-x"], "packaging failed: --option '-x': expected "),
    ],
)
def test_bad_arguments_fail_with_one_line(tmp_path: Path, args: list[str], summary: str) -> None:
    bo, _ = built_buildout(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--buildout-dir", str(bo), "--output", "x.tar.gz", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"anybox-ci summary: {summary}"), proc.stdout + proc.stderr
    assert not (tmp_path / "x.tar.gz").exists()


def test_a_buildout_that_was_not_built_cannot_be_packaged(tmp_path: Path) -> None:
    (tmp_path / "bo").mkdir()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--buildout-dir", "bo", "--name", "n", "--output", "n.tgz"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stdout.strip().endswith(
        "packaging failed: .installed.cfg not found: run bin/buildout first"
    )
