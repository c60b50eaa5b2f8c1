"""The reference docs are generated from the code, and the committed ones are fresh."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from anybox_ci.cli import docs
from anybox_ci.core.schema import MANIFEST_OPTIONS, WORKER_OPTIONS

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"


def test_committed_reference_is_fresh() -> None:
    stale = docs.check(REFERENCE)
    assert stale == [], f"stale reference docs {stale}; {docs.FIX_HINT}"


def test_changing_an_option_doc_changes_the_output() -> None:
    """The pages come from the schema: edit a copy of it, the page follows."""
    manifest = dict(MANIFEST_OPTIONS)
    manifest["tree-stable-timer"] = dataclasses.replace(
        manifest["tree-stable-timer"], doc="A doc that exists only in this test."
    )
    workers = dict(WORKER_OPTIONS)
    workers["db_prefix"] = dataclasses.replace(workers["db_prefix"], default="elsewhere")

    fresh = docs.render()
    changed = docs.render(manifest_options=manifest, worker_options=workers)

    assert "A doc that exists only in this test." not in fresh[docs.MANIFEST_PAGE]
    assert "A doc that exists only in this test." in changed[docs.MANIFEST_PAGE]
    assert "`elsewhere`" in changed[docs.WORKERS_PAGE]
    assert changed[docs.MANIFEST_PAGE] != fresh[docs.MANIFEST_PAGE]
    assert changed[docs.WORKERS_PAGE] != fresh[docs.WORKERS_PAGE]


def test_every_option_alias_step_set_and_capability_is_documented() -> None:
    from anybox_ci.core.capabilities import DEFAULT_CAPABILITIES
    from anybox_ci.core.stepset_catalogue import BUILTIN

    pages = docs.render()
    for options, page in (
        (MANIFEST_OPTIONS, docs.MANIFEST_PAGE),
        (WORKER_OPTIONS, docs.WORKERS_PAGE),
    ):
        for opt in options.values():
            assert f"| `{opt.name}` |" in pages[page]
            for alias in opt.aliases:
                assert f"| `{alias}` | `{opt.name}` |" in pages[page]
    for spec in BUILTIN.specs:
        assert f"| `{spec.name}` |" in pages[docs.MANIFEST_PAGE]
        for alias in spec.aliases:
            assert f"`{alias}` (deprecated)" in pages[docs.MANIFEST_PAGE]
        for needed in spec.requires:
            assert f"`{needed.name}`" in pages[docs.MANIFEST_PAGE]
    for name, spec in DEFAULT_CAPABILITIES.items():
        row = f"| `{name}` | `{spec.abbrev}` | `{spec.version_prop}` |"
        assert row in pages[docs.WORKERS_PAGE]
        for var in (*spec.env, *spec.prepend_env, *spec.secret_env):
            assert f"`{var}`" in pages[docs.WORKERS_PAGE]


def test_generate_then_check(tmp_path: Path) -> None:
    dest = tmp_path / "reference"
    assert sorted(docs.check(dest)) == [str(dest / "manifest.md"), str(dest / "workers.md")]

    written = docs.generate(dest)
    assert sorted(p.name for p in written) == ["manifest.md", "workers.md"]
    assert docs.check(dest) == []

    page = dest / "workers.md"
    page.write_text(page.read_text() + "\nhand edit\n")
    assert docs.check(dest) == [str(page)]


def test_main_check_exit_code_and_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "reference"
    assert docs.main(["--check", "--dest", str(dest)]) == 1
    out = capsys.readouterr().out
    assert f"stale: {dest / 'manifest.md'}" in out
    assert out.rstrip().endswith("run: anybox-ci docs")

    assert docs.main(["--dest", str(dest)]) == 0
    capsys.readouterr()
    assert docs.main(["--check", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- migration tables


MIGRATION = REFERENCE.parent / "migration.md"


def test_committed_migration_tables_are_fresh() -> None:
    text = MIGRATION.read_text()
    assert docs.BEGIN in text and docs.END in text
    assert docs.with_migration_tables(text) == text, f"stale {MIGRATION}; {docs.FIX_HINT}"


def test_every_ancestor_name_is_accepted() -> None:
    """No name the ancestor knew is refused: each is same, renamed, ignored or removed."""
    from anybox_ci.core.schema import (
        ANCESTOR_MANIFEST_OPTIONS,
        ANCESTOR_WORKER_OPTIONS,
        REMOVED_MANIFEST_OPTIONS,
    )
    from anybox_ci.core.stepset_catalogue import ANCESTOR_STEP_SETS, BUILTIN

    for name in ANCESTOR_MANIFEST_OPTIONS:
        assert docs.option_status(name, MANIFEST_OPTIONS, REMOVED_MANIFEST_OPTIONS), name
    for name in ANCESTOR_WORKER_OPTIONS:
        assert docs.option_status(name, WORKER_OPTIONS), name
    for kind, names in ANCESTOR_STEP_SETS.items():
        for name in names:
            assert docs.step_set_status(kind, name, BUILTIN), (kind, name)
    assert "| refused |" not in docs.migration_markdown()


def test_migration_rows_follow_the_schema() -> None:
    """A renamed option, an ignored one and a step-set alias show as such; edit a copy of
    the schema and the tables follow."""
    tables = docs.migration_markdown()
    assert "| `openerp-addons` | `odoo-addons` | renamed |  |" in tables
    assert "| `slave_priority` | `priority` | renamed |  |" in tables
    assert "| `packaging.vcs` |  | removed |" in tables
    assert "| `virtualenv` | `virtualenv` | ignored |" in tables
    assert "| `post-buildout-steps` | `update-openerp` | `update-modules` | renamed |  |" in tables
    assert "| `db-steps` | `simple-create` | `simple_create` | renamed |  |" in tables
    manifest = dict(MANIFEST_OPTIONS)
    manifest["git-shallow"] = dataclasses.replace(manifest["git-shallow"], ignored="why not")
    changed = docs.migration_markdown(manifest_options=manifest)
    assert "| `git-shallow` | `git-shallow` | ignored | why not |" in changed
    assert "| `git-shallow` | `git-shallow` | same |  |" in tables


def test_stale_migration_tables_are_found(tmp_path: Path) -> None:
    dest = tmp_path / "reference"
    docs.generate(dest)
    page = tmp_path / "migration.md"
    page.write_text(f"# Migration\n\n{docs.BEGIN}\nold table\n{docs.END}\n\nmore\n")
    assert docs.check(dest) == [str(page)]
    assert str(page) in [str(p) for p in docs.generate(dest)]
    assert docs.check(dest) == []
    text = page.read_text()
    assert text.startswith(f"# Migration\n\n{docs.BEGIN}\n")
    assert text.endswith(f"{docs.END}\n\nmore\n")
    assert "old table" not in text
