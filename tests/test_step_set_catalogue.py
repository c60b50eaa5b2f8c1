"""The pure step-set catalogue and the render registry describe the same step sets, and
what a built-in step set needs is checked by the loader, at the line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from anybox_ci.core import schema
from anybox_ci.core.loader import check
from anybox_ci.core.stepset_catalogue import BUILTIN, KINDS, StepSetSpec
from anybox_ci.render.stepsets import DEFAULT_STEP_SETS


def test_every_catalogue_entry_has_one_implementation() -> None:
    assert set(DEFAULT_STEP_SETS.catalogue().specs) == set(BUILTIN.specs)
    for spec in BUILTIN.specs:
        for name in (spec.name, *spec.aliases):
            assert DEFAULT_STEP_SETS.get(spec.kind, name) is DEFAULT_STEP_SETS.get(
                spec.kind.name, spec.name
            )


def test_names_are_unique_per_kind() -> None:
    for kind in KINDS:
        specs = [s for s in BUILTIN.specs if s.kind is kind]
        names = [n for s in specs for n in (s.name, *s.aliases)]
        assert len(names) == len(set(names)), kind.name


NEEDS = [(spec, needed) for spec in BUILTIN.specs for needed in spec.requires]


@pytest.mark.parametrize("spec, needed", NEEDS, ids=lambda x: getattr(x, "name", ""))
def test_a_missing_need_is_an_error_at_the_step_set_line(
    tmp_path: Path, spec: StepSetSpec, needed: schema.Option[object]
) -> None:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir()
    # the other needs of the step set are given; the tested one is not, or is emptied
    # when its default has a value
    lines = [f"{o.name} = x" for o in spec.requires if o is not needed]
    lines += [f"{needed.name} ="] if needed.default else []
    lines += [f"{spec.kind.name} =", f"    {spec.name}"]
    (root / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\n" + "\n".join(lines) + "\n"
    )
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.cfg").write_text("[w1]\npassword = secret:w1\n")
    line = 2 + len(lines)
    assert [str(d) for d in check(root).diagnostics.errors] == [
        f"{root}/buildouts/MANIFEST.cfg:{line}: [erp] {spec.kind.name}: step set "
        f"{spec.name!r} needs a value for {needed.name!r}"
    ]


def test_a_need_that_does_not_parse_is_reported_once(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir()
    (root / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\ndb-steps = restore\ndb-restore-command =\n"
    )
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.cfg").write_text("[w1]\npassword = secret:w1\n")
    assert [str(d) for d in check(root).diagnostics.errors] == [
        f"{root}/buildouts/MANIFEST.cfg:4: [erp] db-restore-command: empty command"
    ]
