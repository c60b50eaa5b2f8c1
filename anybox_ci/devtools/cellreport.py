"""The end-of-run table of ``anybox-ci run``: one row per cell, read from a master's REST API.

Test counts come from the analysis block that ``build_utils/odoo_log.py`` prints before
its ``anybox-ci summary:`` line (``tests run: N`` then one ``FAIL:``/``ERROR:`` line per
failed test), so they are the analyser's own figures, for fake and real Odoo alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .localmaster import RESULTS

ANALYSIS_HEADER = "=== anybox-ci odoo log analysis ==="
ANALYSIS_END = "error/critical records:"
#: log lines read from the end of a step's log: the analysis block is short
TAIL_LINES = 200
FAILED_RESULTS = {2, 4, 6}


class RestApi(Protocol):
    """What the report needs of :class:`localmaster.Master`."""

    def get(self, path: str) -> Any: ...


@dataclass(frozen=True)
class Counts:
    run: int | None
    failed: int


def parse_analysis(lines: Iterable[str]) -> Counts | None:
    """The counts of the last analysis block in ``lines``; None when there is none."""
    found: Counts | None = None
    inside, run, failed = False, None, 0
    for line in lines:
        if line.startswith(ANALYSIS_HEADER):
            inside, run, failed = True, None, 0
        elif inside and line.startswith("tests run: "):
            value = line[len("tests run: ") :].strip()
            run = int(value) if value.isdigit() else None
        elif inside and line.startswith(("FAIL: ", "ERROR: ")):
            failed += 1
        elif inside and line.startswith(ANALYSIS_END):
            inside = False
            found = Counts(run, failed)
    return found


@dataclass(frozen=True)
class CellResult:
    cell: str
    worker: str
    result: str
    seconds: float
    tests: Counts | None
    #: ``step: summary`` of the first failed step, or the build's own state
    first_failure: str
    expected: str = "SUCCESS"

    @property
    def as_expected(self) -> bool:
        return self.result == self.expected

    @property
    def tests_text(self) -> str:
        if self.tests is None:
            return "-"
        run = "?" if self.tests.run is None else str(self.tests.run)
        return f"{run}/{self.tests.failed}"


def _log_tail(api: RestApi, stepid: int) -> list[str]:
    logs = api.get(f"steps/{stepid}/logs")["logs"]
    stdio = next((log for log in logs if log["slug"] == "stdio"), None)
    if stdio is None or not stdio["num_lines"]:
        return []
    first = max(0, int(stdio["num_lines"]) - TAIL_LINES)
    chunk = api.get(f"logs/{stdio['logid']}/contents?offset={first}&limit={TAIL_LINES}")
    content = chunk["logchunks"][0]["content"] if chunk.get("logchunks") else ""
    # stdio lines carry a one-letter stream prefix (o, e, h)
    return [line[1:] for line in str(content).splitlines()]


def collect(
    api: RestApi, build: dict[str, Any], cell: str, worker: str, expected: str
) -> CellResult:
    """The row of one finished build."""
    steps = api.get(f"builds/{build['buildid']}/steps")["steps"]
    first_failure = ""
    for step in steps:
        if step.get("results") in FAILED_RESULTS:
            first_failure = f"{step['name']}: {step['state_string']}"
            break
    if not first_failure and build.get("results") in FAILED_RESULTS:
        first_failure = str(build.get("state_string", ""))
    tests = None
    for step in reversed(steps):
        if step.get("results") is None:
            continue
        tests = parse_analysis(_log_tail(api, step["stepid"]))
        if tests is not None:
            break
    seconds = (build.get("complete_at") or 0) - (build.get("started_at") or 0)
    return CellResult(
        cell=cell,
        worker=worker,
        result=RESULTS.get(build.get("results"), str(build.get("results"))),
        seconds=max(0.0, float(seconds)),
        tests=tests,
        first_failure=first_failure,
        expected=expected,
    )


def table(rows: Sequence[CellResult], not_run: Sequence[tuple[str, str]] = ()) -> list[str]:
    """Aligned lines: cell, worker, result, time, tests run/failed, first failure.

    ``not_run`` holds (cell, reason) for cells no local worker could take. A result
    other than expected is flagged; an expected failure says so.
    """
    header = ("cell", "worker", "result", "time", "tests", "first failure")
    body: list[tuple[str, ...]] = []
    for r in rows:
        result = r.result
        if r.expected != "SUCCESS" and r.as_expected:
            result += " (expected)"
        elif not r.as_expected:
            result += f" (expected {r.expected})" if r.expected != "SUCCESS" else " !"
        body.append((r.cell, r.worker, result, f"{r.seconds:.0f}s", r.tests_text, r.first_failure))
    body += [(cell, "-", "NOT RUN", "-", "-", reason) for cell, reason in not_run]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(col.ljust(w) for col, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in [header, *body]
    ]
