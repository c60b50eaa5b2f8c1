"""An option kept only for old manifests is accepted, warns where it is set ("ignored
since ..."), and the docs say it has no effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from anybox_ci.cli import docs
from anybox_ci.core import schema
from anybox_ci.core.loader import check

IGNORED = [o for o in schema.MANIFEST_OPTIONS.values() if o.ignored]


def _master(root: Path, manifest: str) -> Path:
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.cfg").write_text("[w1]\npassword = secret:w1\ncapability = postgresql 15\n")
    return root


def test_the_ancestor_options_that_do_nothing_are_declared() -> None:
    assert sorted(o.name for o in IGNORED) == [
        "odoo.http-port-max",
        "odoo.http-port-min",
        "odoo.http-port-step",
        "packaging.parts",
        "virtualenv",
    ]


def test_check_warns_where_an_ignored_option_is_set(tmp_path: Path) -> None:
    root = _master(
        tmp_path.resolve(),
        "[DEFAULT]\nvirtualenv = false\n\n[erp]\nbuildout = standalone b.cfg\n"
        "odoo.http-port-min = 7000\n",
    )
    loaded = check(root)
    m = root / "buildouts" / "MANIFEST.cfg"
    assert [str(d) for d in loaded.diagnostics.items] == [
        f"{m}:2: warning: [DEFAULT] virtualenv: {schema.ignored_message(schema.VIRTUALENV.ignored)}",
        f"{m}:6: warning: [erp] odoo.http-port-min: "
        f"{schema.ignored_message(schema.ODOO_HTTP_PORT_MIN.ignored)}",
    ]
    assert not loaded.diagnostics.errors
    assert [c.name for c in loaded.matrix.cells] == ["erp"]


def test_an_ignored_option_is_still_validated(tmp_path: Path) -> None:
    root = _master(
        tmp_path.resolve(), "[erp]\nbuildout = standalone b.cfg\nodoo.http-port-step = 0\n"
    )
    errors = [str(d) for d in check(root).diagnostics.errors]
    assert errors == [
        f"{root}/buildouts/MANIFEST.cfg:3: [erp] odoo.http-port-step: must be at least 1, got 0"
    ]


@pytest.mark.parametrize("option", IGNORED, ids=lambda o: o.name)
def test_the_docs_say_it_has_no_effect(option: schema.Option[object]) -> None:
    page = docs.render()[docs.MANIFEST_PAGE]
    row = next(line for line in page.splitlines() if line.startswith(f"| `{option.name}` |"))
    assert f"**Has no effect:** {option.ignored}." in row
