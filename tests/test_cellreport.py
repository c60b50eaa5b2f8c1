"""The end-of-run table of ``anybox-ci run``: test counts from the log analyser's block,
expected failures, cells that could not run."""

from __future__ import annotations

from anybox_ci.devtools.cellreport import CellResult, Counts, parse_analysis, table

PASSING = """\
2024-01-01 12:00:00,000 1 INFO db odoo.tests.result: 0 failed, 0 error(s) of 2 tests
=== anybox-ci odoo log analysis ===
tests run: 2
error/critical records: 0
anybox-ci summary: ok: 2 tests
""".splitlines()

FAILING = """\
=== anybox-ci odoo log analysis ===
tests run: 5
FAIL: test_a (mod.tests.test_x)
ERROR: test_b (mod.tests.test_y)
import error: No module named 'x'
error/critical records: 3
anybox-ci summary: 1 failed, 1 error: test_a, test_b
""".splitlines()


def test_counts_come_from_the_analysis_block() -> None:
    assert parse_analysis(PASSING) == Counts(2, 0)
    assert parse_analysis(FAILING) == Counts(5, 2)


def test_unknown_count_and_no_block() -> None:
    block = [
        "=== anybox-ci odoo log analysis ===",
        "tests run: unknown",
        "error/critical records: 0",
    ]
    assert parse_analysis(block) == Counts(None, 0)
    assert parse_analysis(["just a log line", "tests run: 3"]) is None


def test_the_last_block_wins() -> None:
    assert parse_analysis(FAILING + PASSING) == Counts(2, 0)


def test_table_marks_expected_failures_and_surprises() -> None:
    rows = [
        CellResult("a-pg15", "local", "SUCCESS", 12.4, Counts(2, 0), ""),
        CellResult("b-pg15", "local", "FAILURE", 3, Counts(None, 1), "tests: 1 failed", "FAILURE"),
        CellResult("c-pg15", "local", "FAILURE", 5, None, "buildout: failed"),
        CellResult("d-pg15", "local", "SUCCESS", 5, None, "", "FAILURE"),
    ]
    lines = table(rows, [("e pg17", "no eligible worker")])
    assert lines[0].split() == ["cell", "worker", "result", "time", "tests", "first", "failure"]
    assert lines[1].split() == ["a-pg15", "local", "SUCCESS", "12s", "2/0"]
    assert lines[2].split()[:6] == ["b-pg15", "local", "FAILURE", "(expected)", "3s", "?/1"]
    assert lines[3].split()[:5] == ["c-pg15", "local", "FAILURE", "!", "5s"]
    assert "(expected FAILURE)" in lines[4]
    assert lines[5].split()[:3] == ["e", "pg17", "-"] and "NOT RUN" in lines[5]
    assert [r.as_expected for r in rows] == [True, True, False, False]
    # columns line up
    assert len({line.index(" local ") for line in lines[1:5]}) == 1
