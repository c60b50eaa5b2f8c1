"""``anybox-ci migrate DIR [--write]``: the ancestor's files in today's names, written only
when asked, with a backup; the result loads without a deprecation warning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anybox_ci.cli import migrate
from anybox_ci.core.loader import check

DATA = Path(__file__).resolve().parent / "data" / "ancestor"


def copied(tmp_path: Path, branch: str) -> Path:
    root = tmp_path.resolve() / branch
    shutil.copytree(DATA / branch, root)
    return root


def deprecations(root: Path) -> list[str]:
    return [
        str(d)
        for d in check(root).diagnostics.warnings
        if "deprecated" in d.message or "ignored since" in d.message
    ]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("branch", ["master", "nine"])
def test_prints_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], branch: str
) -> None:
    root = copied(tmp_path, branch)
    before = snapshot(root)
    assert migrate.main([str(root)]) == 0
    out, err = capsys.readouterr()
    assert snapshot(root) == before
    assert f"# ==> {root}/buildouts/MANIFEST.cfg <==" in out.splitlines()
    assert "nothing written; --write saves these files" in err
    assert deprecations(root)  # still the old names


@pytest.mark.parametrize("branch", ["master", "nine"])
def test_write_keeps_a_backup_and_silences_deprecations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], branch: str
) -> None:
    root = copied(tmp_path, branch)
    before = snapshot(root)
    printed_rc = migrate.main([str(root)])
    printed = capsys.readouterr().out
    assert printed_rc == migrate.main([str(root), "--write"]) == 0
    err = capsys.readouterr().err
    manifest = root / "buildouts" / "MANIFEST.cfg"
    assert f"wrote {manifest} (was saved as {manifest}.bak)" in err
    assert (root / "buildouts" / "MANIFEST.cfg.bak").read_text() == before["buildouts/MANIFEST.cfg"]
    # what --write wrote is what was printed
    assert f"# ==> {manifest} <==\n" + manifest.read_text() in printed
    assert deprecations(root) == []
    loaded = check(root)
    assert not loaded.diagnostics.errors
    # the same builders as before the migration
    original = copied(tmp_path / "again", branch)
    assert [c.name for c in loaded.matrix.cells] == [c.name for c in check(original).matrix.cells]
    # a second run has nothing to do
    assert migrate.main([str(root), "--write"]) == 0
    assert "nothing to change" in capsys.readouterr().err


def test_what_is_rewritten() -> None:
    text = """\
[DEFAULT]
bootstrap-type = v2
var = /srv

[erp]
buildout = standalone b.cfg
openerp-addons = stock, crm  ; Wipe
functional.wait = 60
odoo.http-port-min = 6069
post-dl-steps = packaging
db-steps = simple-create
post-buildout-steps = standard
    update-openerp
    nose
nose.upload-path = %(var)s/$(buildername)s
doc.version = $(buildout-tag:-current)s

[both]
buildout = standalone b.cfg
odoo-addons = web
openerp-addons = base
"""
    new, diags = migrate.migrate_manifest(text, "MANIFEST.cfg")
    assert not diags.items
    assert new.splitlines() == [
        "[DEFAULT]",
        "# anybox-ci migrate: bootstrap-type: ignored since anybox_ci 0.1: there is no "
        "bootstrap.py any more: zc.buildout (`bootstrap-version`) is installed with pip into "
        "a per-worker virtualenv",
        "# bootstrap-type = v2",
        "var = /srv",
        "",
        "[erp]",
        "buildout = standalone b.cfg",
        "odoo-addons = stock, crm  ; Wipe",
        "functional.timeout = 60",
        "# anybox-ci migrate: odoo.http-port-min: ignored since anybox_ci 0.1: ports are "
        "chosen by the kernel and locked by the worker (no range to scan, no race)",
        "# odoo.http-port-min = 6069",
        "# anybox-ci migrate: post-dl-steps: step set 'packaging' ignored since anybox_ci 0.1: "
        "the release tarball is made from the built buildout by the `packaging` post-buildout "
        "step set (name it in post-buildout-steps)",
        "# post-dl-steps = packaging",
        "db-steps = simple_create",
        "post-buildout-steps = install-modules-test",
        "    update-modules",
        "    nose",
        "nose.upload-path = %(var)s/%(prop:buildername)s",
        "doc.version = %(prop:buildout-tag:-current)s",
        "",
        "[both]",
        "buildout = standalone b.cfg",
        "odoo-addons = web",
        "# anybox-ci migrate: openerp-addons: old name of odoo-addons, set below",
        "# openerp-addons = base",
    ]


def test_workers_files_get_new_names() -> None:
    new, _ = migrate.migrate_workers(
        "[w]\npasswd = x\nslave_priority = 3\ncolour = blue\n", "workers.cfg"
    )
    assert new == "[w]\npassword = x\npriority = 3\ncolour = blue\n"


def test_a_file_with_syntax_errors_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir()
    manifest = root / "buildouts" / "MANIFEST.cfg"
    manifest.write_text("[erp]\nopenerp-addons = x\nthis is not an option\n")
    (root / "workers.cfg").write_text("[w]\npassword = secret:w\n")
    assert migrate.main([str(root), "--write"]) == 1
    err = capsys.readouterr().err
    assert f"{manifest}:3: [erp] expected 'option = value'" in err
    assert "(file left as is)" in err
    assert manifest.read_text() == "[erp]\nopenerp-addons = x\nthis is not an option\n"
    assert not (root / "buildouts" / "MANIFEST.cfg.bak").exists()


def test_nothing_to_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir()
    (root / "buildouts" / "MANIFEST.cfg").write_text("[erp]\nbuildout = standalone b.cfg\n")
    (root / "workers.cfg").write_text("[w]\npassword = secret:w\n")
    assert migrate.main([str(root)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "anybox-ci migrate: nothing to change\n")


def test_no_master_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate.main([str(tmp_path / "nowhere")]) == 1
    assert "no manifest or workers file" in capsys.readouterr().err
