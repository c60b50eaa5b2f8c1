"""Commit statuses per buildout: one per cell, plus the aggregate ``anybox-ci/<buildout>``.

The pure parts: the aggregate's state machine, the revision key, the reporters' arguments, and
Buildbot's result codes as the pure module spells them. The live test, from a manifest's
``commit-status`` line through the change flow to a recording forge, is
test_live_commit_status.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from buildbot.plugins import util
from buildbot.process import results as buildbot_results
from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS

from anybox_ci.render.reporters import aggregate as pure
from anybox_ci.render.reporters import status_reporters
from anybox_ci.render.reporters.aggregate import (
    BuildoutCells,
    CellState,
    aggregate_context,
    revision_key,
    state_of_build,
)
from anybox_ci.render.reporters.forges import GiteaStatusPush

# -- pure parts ---------------------------------------------------------------------------------

REV: tuple[tuple[str, str, str], ...] = (("", "https://example.org/acme/erp.git", "a" * 40),)


def test_aggregate_pending_then_failure_then_success_on_rerun() -> None:
    cells = BuildoutCells(["erp-pg15", "erp-pg17"])
    assert cells.aggregate(REV) is None
    cells.update(REV, "erp-pg15", CellState(1))
    cells.update(REV, "erp-pg17", CellState(2))
    agg = cells.aggregate(REV)
    assert agg is not None and not agg.complete and not agg.started

    cells.update(REV, "erp-pg15", CellState(1, started=True))
    agg = cells.aggregate(REV)
    assert agg is not None and not agg.complete and agg.started

    cells.update(REV, "erp-pg15", CellState(1, started=True, complete=True, results=SUCCESS))
    cells.update(REV, "erp-pg17", CellState(2, started=True, complete=True, results=FAILURE))
    agg = cells.aggregate(REV)
    assert agg is not None and agg.complete and agg.results == FAILURE
    assert "erp-pg17 (failure)" in agg.description

    # A stale event for the same request does not bring the cell back.
    cells.update(REV, "erp-pg17", CellState(2))
    assert cells.cells(REV)["erp-pg17"].complete

    # A newer request for the cell (force, rebuild) makes the revision pending again.
    cells.update(REV, "erp-pg17", CellState(7))
    agg = cells.aggregate(REV)
    assert agg is not None and not agg.complete
    cells.update(REV, "erp-pg17", CellState(7, started=True, complete=True, results=WARNINGS))
    agg = cells.aggregate(REV)
    assert agg is not None and agg.complete and agg.results == WARNINGS
    assert agg.description == "all 2 cells passed"


def test_aggregate_ignores_other_builders_and_takes_worst() -> None:
    cells = BuildoutCells(["a", "b"])
    cells.update(REV, "other", CellState(1, complete=True, results=FAILURE))
    assert cells.aggregate(REV) is None
    cells.update(REV, "a", CellState(2, complete=True, results=EXCEPTION))
    cells.update(REV, "b", CellState(3, complete=True, results=CANCELLED))
    agg = cells.aggregate(REV)
    assert agg is not None and agg.results == CANCELLED


def test_aggregate_forgets_oldest_revisions() -> None:
    cells = BuildoutCells(["a"], max_revisions=2)
    revs = [(("", "r", str(i)),) for i in range(3)]
    for i, rev in enumerate(revs):
        cells.update(rev, "a", CellState(i))
    assert cells.aggregate(revs[0]) is None
    assert cells.aggregate(revs[2]) is not None


def test_revision_key_keeps_only_sourcestamps_with_a_revision() -> None:
    sourcestamps: list[dict[str, Any]] = [
        {"codebase": "addons", "repository": "r2", "revision": "b" * 40},
        {"codebase": "", "repository": "r1", "revision": "a" * 40},
        {"codebase": "other", "repository": "r3", "revision": None},
    ]
    assert revision_key(sourcestamps) == (("", "r1", "a" * 40), ("addons", "r2", "b" * 40))
    assert revision_key([{"codebase": "", "repository": "r", "revision": ""}]) == ()


def test_status_reporters_refuse_plain_tokens_and_unknown_forges() -> None:
    with pytest.raises(ValueError, match="secret"):
        status_reporters("github", "https://api.github.com", "ghp_plain", ["a"], "erp")
    with pytest.raises(ValueError, match="unknown forge"):
        status_reporters("bitbucket", "https://x", util.Secret("t"), ["a"], "erp")
    with pytest.raises(ValueError, match="no builders"):
        status_reporters("github", "https://x", util.Secret("t"), [], "erp")


def test_status_reporters_names_are_unique_per_buildout() -> None:
    token = util.Interpolate("%(secret:forge_token)s")
    erp = status_reporters("gitea", "https://gitea.example", token, ["erp-pg15"], "erp")
    crm = status_reporters("gitea", "https://gitea.example", token, ["crm-pg15"], "crm")
    names = [r.name for r in erp + crm]
    assert len(set(names)) == 4
    assert isinstance(erp[0], GiteaStatusPush)
    assert aggregate_context("erp") == "anybox-ci/erp"


def test_results_codes_used_by_the_aggregate_are_buildbots() -> None:
    # RETRY means "queued again": the cell stays pending instead of counting as a result.
    state = state_of_build(3, {"complete": True, "results": RETRY, "started_at": 1})
    assert not state.complete and state.started
    state = state_of_build(3, {"complete": True, "results": SUCCESS, "started_at": 1})
    assert state.complete and state.results == SUCCESS

    # The pure module spells Buildbot's codes, names and "worst" order itself.
    for code, name in enumerate(buildbot_results.Results):
        assert getattr(pure, name.upper()) == code
        assert pure.RESULT_NAMES[code] == name
    codes = [*buildbot_results.ALL_RESULTS, None]
    for a in codes:
        for b in codes:
            assert pure.worst_result([a, b]) == buildbot_results.worst_status(a, b), (a, b)
