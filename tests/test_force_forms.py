"""Force forms at scale: one per buildout (its own cells and repositories), and the admins'
"force everything matching" form with its tag or capability filter.

Live: tests/test_live_force_forms.py forces through both on a real master.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.plugins import schedulers

from anybox_ci.core.capabilities import CapabilityRegistry
from anybox_ci.core.selection import (
    FORCE_MATCHING_SCHEDULER,
    Target,
    cell_tags,
    force_scheduler_name,
    parse_selector,
    select,
)
from anybox_ci.core.versions import Version
from anybox_ci.www.authz import ForceSchedulerEndpointMatcher, authz_config
from tests.test_render import configured, make_master


def _target(name: str, buildout: str, tags: tuple[str, ...], *pg: str) -> Target:
    return Target(name, buildout, tags, tuple(("postgresql", Version.parse(v)) for v in pg))


TARGETS = [
    _target("erp-pg15", "erp", ("odoo", "pg15"), "15"),
    _target("erp-pg17", "erp", ("odoo", "pg17"), "17"),
    _target("site-pg15", "site", ("pg15",), "15"),
    _target("plain", "plain", ()),
]


@pytest.mark.parametrize(
    "text, chosen",
    [
        ("pg15", {"erp": ["erp-pg15"], "site": ["site-pg15"]}),
        ("odoo", {"erp": ["erp-pg15", "erp-pg17"]}),
        ("postgresql >= 16", {"erp": ["erp-pg17"]}),
        ("postgresql", {"erp": ["erp-pg15", "erp-pg17"], "site": ["site-pg15"]}),
        ("postgresql != 15", {"erp": ["erp-pg17"]}),
        (" * ", {"erp": ["erp-pg15", "erp-pg17"], "site": ["site-pg15"], "plain": ["plain"]}),
    ],
)
def test_selectors(text: str, chosen: dict[str, list[str]]) -> None:
    assert select(parse_selector(text, TARGETS), TARGETS) == chosen


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("pg99", "not a known tag"),
        ("python >= 3", "not a known tag nor a capability with versions"),
        ("postgresql >= x", "not a known tag nor a capability filter"),
        ("--upload-pack=x", "not a known tag"),
        ("pg15\nx", "several lines"),
        ("a" * 201, "longer than"),
    ],
)
def test_bad_selectors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_selector(text, TARGETS)


def test_scheduler_names_are_identifiers_and_distinct() -> None:
    assert force_scheduler_name("erp") == "force-erp"
    dotted, underscored = force_scheduler_name("a.b"), force_scheduler_name("a_b")
    assert dotted.startswith("force-a_b-") and dotted != underscored
    assert FORCE_MATCHING_SCHEDULER not in {force_scheduler_name(n) for n in ("matching", "_")}
    assert cell_tags(
        ["odoo", "odoo"], [("postgresql", Version.parse("15"))], CapabilityRegistry()
    ) == ("odoo", "pg15")


def test_each_buildout_form_lists_only_its_own_repositories(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path))
    forms = {s.name: s for s in d["schedulers"] if isinstance(s, schedulers.ForceScheduler)}
    assert sorted(forms) == ["force-erp", "force-site", FORCE_MATCHING_SCHEDULER]

    def repositories(form: Any) -> list[str]:
        return sorted(cb.label for cb in form._config_kwargs["codebases"] if cb.codebase)

    assert repositories(forms["force-erp"]) == [
        "https://e.com/addons.git 17.0",
        "https://e.com/erp.git main",
        "https://e.com/hgaddons default",
    ]
    assert repositories(forms["force-site"]) == []  # standalone: nothing to choose
    assert forms["force-erp"]._config_kwargs["label"] == "Force erp"
    matching = forms[FORCE_MATCHING_SCHEDULER]
    assert repositories(matching) == []
    targets = {t.name: t.tags for t in matching._config_kwargs["targets"]}
    assert targets == {
        "erp-pg15": ("odoo", "pg15"),
        "erp-pg17": ("odoo", "pg17"),
        "site-pg15": ("pg15",),
    }
    # each selected buildout is forced with its own repositories at their branches
    assert sorted(matching._config_kwargs["sources"]["erp"]) == sorted(
        cb.codebase for cb in forms["force-erp"]._config_kwargs["codebases"]
    )


def test_the_matching_form_is_for_admins_only() -> None:
    authz = authz_config(admins=["alice"], anonymous_read=True, force_roles=["developers"])
    first = authz.allowRules[0]
    assert isinstance(first, ForceSchedulerEndpointMatcher)
    assert (first.scheduler, first.role, first.defaultDeny) == (
        FORCE_MATCHING_SCHEDULER,
        "admins",
        True,
    )
