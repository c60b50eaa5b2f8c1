"""``demo --odoo SRC``: an Odoo source folder, or an archive of one unpacked once into the
cache, and the manifest sections that give it to the real Odoo samples."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from anybox_ci.devtools.odoosamples import ODOO_SAMPLES, odoo_manifest, odoo_source


def fake_odoo(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "odoo-bin").write_text("#!/usr/bin/env python3\n")
    (folder / "setup.py").write_text("")
    return folder


def archive_of(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:xz") as tar:
        tar.add(folder, arcname=folder.name)
    return dest


def test_a_source_folder_is_used_as_it_is(tmp_path: Path) -> None:
    src = fake_odoo(tmp_path / "odoo-18.0")
    assert odoo_source(src, tmp_path / "cache", print) == src
    assert not (tmp_path / "cache").exists()


def test_an_archive_is_unpacked_once(tmp_path: Path) -> None:
    tarball = archive_of(fake_odoo(tmp_path / "src" / "odoo-18.0"), tmp_path / "odoo.tar.xz")
    said: list[str] = []
    first = odoo_source(tarball, tmp_path / "cache", said.append)
    assert first.name == "odoo-18.0" and (first / "odoo-bin").is_file()
    assert first.parent.parent == tmp_path / "cache"
    assert len(said) == 1 and "unpacking" in said[0]
    assert odoo_source(tarball, tmp_path / "cache", said.append) == first
    assert len(said) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.parent.name]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "is not an Odoo source folder"),
        (lambda d: d / "missing", "expected an Odoo source folder or a .tar.xz"),
        (lambda d: (d / "x.tar.xz").write_bytes(b"not xz") and d / "x.tar.xz", "not a readable"),
        (lambda d: archive_of(d, d.parent / "empty.tar.xz"), "holds no Odoo source folder"),
    ],
)
def test_bad_sources_are_one_clear_error(tmp_path: Path, make, message: str) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    with pytest.raises(ValueError, match=message):
        odoo_source(make(folder), tmp_path / "cache", print)
    leftovers = list((tmp_path / "cache").iterdir()) if (tmp_path / "cache").exists() else []
    assert all(p.is_dir() and not p.name.startswith(".") for p in leftovers)


def test_the_manifest_gives_each_sample_the_odoo_folder(tmp_path: Path) -> None:
    repos = {name: tmp_path / name for name in ODOO_SAMPLES}
    text = odoo_manifest(repos, Path("/opt/odoo src"), "postgresql >= 13")
    for name, addon in ODOO_SAMPLES.items():
        assert f"[{name}]\nbuildout = git file://{repos[name]} main buildout.cfg\n" in text
        assert f"odoo-addons = {addon}\n" in text
    assert text.count("buildout-options = odoo:src=/opt/odoo src\n") == 2
