"""The aggregate status of a buildout for a revision, from what is known of its cells.

Pure bookkeeping, stdlib only, so that the state machine is tested without a master or a forge:
per revision, the latest build request of each cell and how far it went, merged from events and
data API reads arriving in any order; from them, pending (with a "started" flag), or done with
the worst result and a description naming the cells that did not pass.

Result codes are Buildbot's (``buildbot.process.results``); the tests pin them, and the order of
:func:`worst_result`, to Buildbot's own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "AGGREGATE_CONTEXT_PREFIX",
    "Aggregate",
    "BuildoutCells",
    "CellState",
    "aggregate_context",
    "revision_key",
    "state_of_build",
    "worst_result",
]

# Buildbot's result codes and names (buildbot.process.results).
SUCCESS, WARNINGS, FAILURE, SKIPPED, EXCEPTION, RETRY, CANCELLED = range(7)
RESULT_NAMES = ("success", "warnings", "failure", "skipped", "exception", "retry", "cancelled")
#: Worst first, as Buildbot's ``worst_status`` ranks them: a cancellation beats everything.
WORST_FIRST = (CANCELLED, RETRY, EXCEPTION, FAILURE, WARNINGS, SUCCESS, SKIPPED)

AGGREGATE_CONTEXT_PREFIX = "anybox-ci/"
#: Results that let a cell count as passed.
PASSED = frozenset({SUCCESS, WARNINGS, SKIPPED})
#: Revisions remembered per aggregate reporter; the oldest are forgotten first.
MAX_REVISIONS = 512
#: Forges cut descriptions (GitHub: 140 characters).
MAX_DESCRIPTION = 140

RevisionKey = tuple[tuple[str, str, str], ...]


def aggregate_context(buildout: str) -> str:
    """The stable status name of a buildout's aggregate: ``anybox-ci/<buildout>``."""
    return AGGREGATE_CONTEXT_PREFIX + buildout


def worst_result(results: Iterable[int | None]) -> int | None:
    """The worst of ``results`` in Buildbot's order; ``None`` when none is a known code."""
    present = set(results)
    return next((r for r in WORST_FIRST if r in present), None)


@dataclass(frozen=True)
class CellState:
    """What is known of one cell (builder) for one revision: its latest build request."""

    buildrequestid: int
    started: bool = False
    complete: bool = False
    results: int | None = None

    def merge(self, other: CellState) -> CellState:
        """A newer build request replaces the state (a rebuild makes the cell pending again);
        for the same request, knowledge only grows (events may arrive after a fresher query)."""
        if other.buildrequestid != self.buildrequestid:
            return other if other.buildrequestid > self.buildrequestid else self
        if self.complete:
            return self
        if other.complete:
            return other
        return replace(self, started=self.started or other.started)


@dataclass(frozen=True)
class Aggregate:
    """The buildout's status for one revision, as posted to the forge."""

    complete: bool
    results: int | None
    started: bool
    description: str


class BuildoutCells:
    """The cell results of one buildout, per revision (a key of its sourcestamps)."""

    def __init__(self, builders: Iterable[str], max_revisions: int = MAX_REVISIONS) -> None:
        self.builders = frozenset(builders)
        self.max_revisions = max_revisions
        self._revisions: OrderedDict[RevisionKey, dict[str, CellState]] = OrderedDict()

    def update(self, revision: RevisionKey, builder: str, state: CellState) -> None:
        if builder not in self.builders:
            return
        cells = self._revisions.setdefault(revision, {})
        self._revisions.move_to_end(revision)
        old = cells.get(builder)
        cells[builder] = state if old is None else old.merge(state)
        while len(self._revisions) > self.max_revisions:
            self._revisions.popitem(last=False)

    def cells(self, revision: RevisionKey) -> dict[str, CellState]:
        return dict(self._revisions.get(revision, {}))

    def aggregate(self, revision: RevisionKey) -> Aggregate | None:
        cells = self._revisions.get(revision)
        if not cells:
            return None
        total = len(cells)
        done = {name: c for name, c in cells.items() if c.complete}
        not_passed = sorted(name for name, c in done.items() if c.results not in PASSED)
        if len(done) < total:
            text = f"{len(done)}/{total} cells done"
            if not_passed:
                text += ", not passed: " + ", ".join(not_passed)
            started = any(c.started for c in cells.values())
            return Aggregate(False, None, started, _cut(text))
        results = worst_result(c.results for c in done.values())
        if not_passed:
            text = f"{len(not_passed)}/{total} cells not passed: " + ", ".join(
                f"{name} ({_result_name(cells[name].results)})" for name in not_passed
            )
        else:
            text = f"all {total} cells passed"
        return Aggregate(True, results, True, _cut(text))


def _result_name(results: int | None) -> str:
    if results is None or not 0 <= results < len(RESULT_NAMES):
        return "unknown"
    return RESULT_NAMES[results]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def revision_key(sourcestamps: Sequence[dict[str, Any]]) -> RevisionKey:
    """The revision a buildset is about: its sourcestamps that have a revision."""
    return tuple(
        sorted(
            (ss.get("codebase") or "", ss.get("repository") or "", ss["revision"])
            for ss in sourcestamps
            if ss.get("revision")
        )
    )


def state_of_build(buildrequestid: int, build: dict[str, Any]) -> CellState:
    """A cell's state from a data API build; a retried build counts as queued again."""
    results = build.get("results")
    complete = bool(build.get("complete")) and results != RETRY
    return CellState(
        buildrequestid=buildrequestid,
        started=bool(build.get("started_at")) or complete,
        complete=complete,
        results=results if complete else None,
    )
