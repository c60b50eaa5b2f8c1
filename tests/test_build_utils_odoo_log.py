"""Tests of build_utils/odoo_log.py: log fixtures of Odoo 8 to 18, and real `run` invocations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anybox_ci.devtools.cellreport import Counts, parse_analysis
from build_utils import odoo_log
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "tests" / "data" / "odoo_logs"

EXPECTED = {
    "odoo8_pass.log": (True, "4 tests, 0 failed"),
    "odoo8_fail.log": (
        False,
        "3 tests, 1 failed, 1 error: TestMargin.test_margin_with_discount, "
        "TestMargin.test_margin_zero_cost",
    ),
    "odoo8_import_error.log": (False, "import error: No module named paramiko"),
    "odoo8_missing_module.log": (False, "missing module: sale_margn"),
    "odoo12_pass.log": (True, "4 tests, 0 failed"),
    "odoo12_fail.log": (False, "3 tests, 1 failed: TestBatch.test_batch_done_partial"),
    "odoo12_import_error.log": (False, "import error: No module named 'schwifty'"),
    "odoo12_missing_module.log": (False, "missing module: web_widget_x2many_matrix"),
    "odoo16_pass.log": (True, "5 tests, 0 failed"),
    "odoo16_fail.log": (
        False,
        "4 tests, 2 failed: TestScoring.test_score_full_lead, TestFrequency.test_frequency_update",
    ),
    "odoo16_import_error.log": (False, "import error: No module named 'sklearn'"),
    "odoo16_missing_module.log": (False, "missing module: crm_lead_scorng_extra"),
    "odoo17_pass.log": (True, "5 tests, 0 failed"),
    "odoo17_fail.log": (
        False,
        "4 tests, 2 failed, 1 error: TestTiers.test_approve_second_tier, "
        "TestTiers.test_tier_amounts (amount=1000), TestMail.setUpClass",
    ),
    "odoo17_import_error.log": (
        False,
        "import error: No module named 'odoo.addons.base_tier_validation'",
    ),
    "odoo17_missing_module.log": (
        False,
        "missing modules: account_banking_mandate, account_banking_sepa_direct_debit",
    ),
    "odoo18_critical.log": (False, "critical: Failed to initialize database `erp-pg17`."),
    # real Odoo 18.0 runs of the sample addons (see the real-log tests below)
    "odoo18_real_pass.log": (True, "4 tests, 0 failed"),
    "odoo18_real_pass_untrimmed.log": (True, "4 tests, 0 failed"),
    "odoo18_real_pg_version_unset.log": (True, "4 tests, 0 failed"),
    "odoo18_real_fail.log": (False, "4 tests, 1 failed: TestSample.test_invoice_rounding"),
    "odoo18_real_fail_untrimmed.log": (
        False,
        "4 tests, 1 failed: TestSample.test_invoice_rounding",
    ),
    "odoo18_real_pg_mismatch.log": (
        False,
        "PostgreSQL version mismatch: PG_VERSION=13 but the test database is on PostgreSQL "
        "15.18 (Debian 15.18-0+deb12u1); 4 tests, 1 failed: "
        "TestPostgreSQL.test_server_major_version",
    ),
    "odoo18_real_import_error.log": (
        False,
        "import error: No module named 'anybox_ci_missing_lib'",
    ),
    "odoo18_real_db_init_critical.log": (
        False,
        'database error: connection to server on socket "/tmp/odoo-work/pg15/sock/.s.PGSQL.55432" '
        'failed: FATAL: database "ci_nocreatedb" does not exist',
    ),
    "odoo18_real_no_server.log": (
        False,
        'database error: connection to server on socket "/tmp/odoo-work/pg15/sock/.s.PGSQL.55499" '
        "failed: No such file or directory",
    ),
}


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """The script copied alone into a build_utils folder, as the master ships it."""
    return ship(tmp_path, "odoo_log")


def test_every_fixture_is_covered() -> None:
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_analysis(name: str) -> None:
    ok, text = EXPECTED[name]
    analysis = odoo_log.analyse_file(LOGS / name)
    assert analysis.ok is ok
    assert analysis.summary() == text


def test_fixture_details() -> None:
    a8 = odoo_log.analyse_file(LOGS / "odoo8_fail.log")
    assert a8.tests_run == 3
    assert a8.module_results == ["Module sale_margin_extra: 1 failures, 1 errors"]
    assert a8.errors == []  # the echoed unittest lines are not separate problems
    a17 = odoo_log.analyse_file(LOGS / "odoo17_fail.log")
    assert (a17.result_failed, a17.result_errors, a17.result_total) == (2, 1, 4)
    assert [t.kind for t in a17.failed] == ["FAIL", "FAIL", "ERROR"]
    a12 = odoo_log.analyse_file(LOGS / "odoo12_import_error.log")
    assert a12.import_errors == ["No module named 'schwifty'"]
    assert "Couldn't load module account_payment_sepa_extra" in a12.criticals


def test_analyse_cli_on_fixtures(script: Path) -> None:
    for name, expected_code in (("odoo17_pass.log", 0), ("odoo12_fail.log", 1)):
        proc = subprocess.run(
            [sys.executable, str(script), "analyse", str(LOGS / name)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == expected_code, proc.stdout + proc.stderr
        assert summary_of(proc.stdout) == EXPECTED[name][1]


def test_analyse_missing_file(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "analyse", str(tmp_path / "nope.log")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert summary_of(proc.stdout).startswith("cannot read log")


def _cat_cmd(log: Path, code: int = 0, to_stderr: bool = False) -> list[str]:
    """A command replaying a log on stdout or stderr (Odoo logs to stderr)."""
    stream = "stderr" if to_stderr else "stdout"
    program = (
        "import sys; from pathlib import Path; "
        f"getattr(sys, {stream!r}).write(Path(sys.argv[1]).read_text()); sys.exit({code})"
    )
    return [sys.executable, "-c", program, str(log)]


def test_run_tees_and_passes(script: Path, tmp_path: Path) -> None:
    log = tmp_path / "odoo.log"
    source = LOGS / "odoo16_pass.log"
    proc = subprocess.run(
        [sys.executable, str(script), "run", "--log", str(log), "--", *_cat_cmd(source, 0, True)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert log.read_text() == source.read_text()
    assert source.read_text() in proc.stdout  # teed to stdout as well
    assert summary_of(proc.stdout) == "5 tests, 0 failed"


def test_run_fails_on_failures_despite_exit_zero(script: Path, tmp_path: Path) -> None:
    # Odoo before 12 exits 0 even when tests fail: the log decides
    log = tmp_path / "odoo.log"
    proc = subprocess.run(
        [sys.executable, str(script), "run", "--log", str(log), "--"]
        + _cat_cmd(LOGS / "odoo8_fail.log", 0),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout) == EXPECTED["odoo8_fail.log"][1]


def test_run_fails_on_command_failure_with_clean_log(script: Path, tmp_path: Path) -> None:
    log = tmp_path / "odoo.log"
    proc = subprocess.run(
        [sys.executable, str(script), "run", "--log", str(log), "--"]
        + _cat_cmd(LOGS / "odoo17_pass.log", 3),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout) == "command exited with code 3"


def test_run_command_not_found(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "run",
            "--log",
            str(tmp_path / "x.log"),
            "--",
            "no-such-odoo",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert summary_of(proc.stdout) == "command not found: no-such-odoo"


def test_run_argument_is_never_shell_interpreted(script: Path, tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    proc = subprocess.run(
        [sys.executable, str(script), "run", "--log", str(log), "--", "echo", "$(touch pwned)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0
    assert "$(touch pwned)" in log.read_text()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("message", "logger", "expected"),
    [
        (
            "FAIL: test_foo (odoo.addons.mod.tests.test_x.TestX)",
            "odoo.addons.mod.tests.test_x",
            odoo_log.FailedTest("FAIL", "test_foo", "mod.tests.test_x", "TestX"),
        ),
        (  # Python 3.11+ unittest descriptions repeat the method name
            "ERROR: test_foo (odoo.addons.mod.tests.test_x.TestX.test_foo)",
            "odoo.addons.mod.tests.test_x",
            odoo_log.FailedTest("ERROR", "test_foo", "mod.tests.test_x", "TestX"),
        ),
        (
            "FAIL: test_foo (openerp.addons.mod.tests.test_x.TestX) (i=2)",
            "openerp.addons.mod.tests.test_x",
            odoo_log.FailedTest("FAIL", "test_foo (i=2)", "mod.tests.test_x", "TestX"),
        ),
        (
            "FAIL: TestX.test_bar",
            "odoo.addons.mod.tests.test_y",
            odoo_log.FailedTest("FAIL", "test_bar", "mod.tests.test_y", "TestX"),
        ),
        (  # Odoo 14 subtests carry only the parameters
            "FAIL: Subtest (i=3)",
            "odoo.addons.mod.tests.test_y",
            odoo_log.FailedTest("FAIL", "subtest (i=3)", "mod.tests.test_y"),
        ),
        ("FAIL", "odoo.addons.mod.tests.test_y", None),
        ("FAILED (failures=1)", "odoo.addons.mod.tests.test_y", None),
    ],
)
def test_parse_failure(message: str, logger: str, expected: odoo_log.FailedTest | None) -> None:
    assert odoo_log.parse_failure(message, logger) == expected


def test_summary_lists_at_most_five_names() -> None:
    lines = [
        f"2024-01-01 12:00:00,123 4242 ERROR db odoo.addons.mod.tests.test_x: FAIL: TestX.test_{i}"
        for i in range(7)
    ]
    text = odoo_log.analyse_lines(lines).summary()
    assert text.startswith("7 failed: TestX.test_0, TestX.test_1, ")
    assert text.endswith(", +2 more")


def test_colours_and_other_errors() -> None:
    lines = [
        "\x1b[1;31m2024-01-01 12:00:00,123 4242 ERROR db odoo.sql_db: bad query: SELECT 1/0\x1b[0m",
        "2024-01-01 12:00:00,124 4242 INFO db odoo.modules.loading: Modules loaded.",
    ]
    analysis = odoo_log.analyse_lines(lines)
    assert not analysis.ok
    assert analysis.summary() == "error: bad query: SELECT 1/0"


def test_warning_traceback_with_import_error_is_not_a_failure() -> None:
    # optional libraries are commonly reported at WARNING with a traceback
    lines = [
        "2024-01-01 12:00:00,123 4242 WARNING ? odoo.addons.base.models.ir_mail_server: optional lib",
        "Traceback (most recent call last):",
        "ModuleNotFoundError: No module named 'optional_lib'",
        "2024-01-01 12:00:01,000 4242 INFO db odoo.tests.result: 0 failed, 0 error(s) of 2 tests when loading database 'db'",
    ]
    analysis = odoo_log.analyse_lines(lines)
    assert analysis.ok
    assert analysis.summary() == "2 tests, 0 failed"


def test_empty_log() -> None:
    analysis = odoo_log.analyse_lines([])
    assert analysis.ok
    assert analysis.summary() == "ok: no test results in log"
    assert analysis.summary(returncode=-9) == "command killed by signal 9"


# --- real Odoo 18.0 logs: the sample addons run by a trimmed Odoo 18.0 on PostgreSQL 15 ---
# (``odoo.modules.loading: loading <file>`` and computation lines left out of the trimmed
# ones, every kept line as Odoo printed it; the ``_untrimmed`` ones are whole)

REAL_EXIT_CODES = {name: 0 if ok else 1 for name, (ok, _) in EXPECTED.items() if "_real_" in name}


def _record(level: str, logger: str, msg: str, db: str = "db") -> str:
    return f"2026-12-01 09:40:30,676 24527 {level} {db} {logger}: {msg}"


def test_real_pass_counts_from_the_result_line_not_the_stats() -> None:
    a = odoo_log.analyse_file(LOGS / "odoo18_real_pass.log")
    assert (a.result_failed, a.result_errors, a.result_total) == (0, 0, 4)
    # odoo.tests.stats counts each class's setUpClass and tearDownClass as tests
    assert a.stats_total == 8
    assert a.started == 4
    assert a.tests_run == 4
    assert (a.n_failed, a.n_errors, a.failed, a.error_records) == (0, 0, [], 0)
    assert a.report_lines() == [
        "=== anybox-ci odoo log analysis ===",
        "tests run: 4",
        "result: 0 failed, 0 error(s) of 4 tests",
        "error/critical records: 0",
    ]


def test_real_fail_names_the_failing_test() -> None:
    for name in ("odoo18_real_fail.log", "odoo18_real_fail_untrimmed.log"):
        a = odoo_log.analyse_file(LOGS / name)
        assert a.failed == [
            odoo_log.FailedTest(
                "FAIL",
                "test_invoice_rounding",
                "anybox_ci_sample_failing.tests.test_sample",
                "TestSample",
            )
        ], name
        assert (a.result_failed, a.result_errors, a.result_total, a.stats_total) == (1, 0, 4, 8)
        assert (a.module_failures, a.module_errors) == (1, 0)
        assert (a.tests_run, a.n_failed, a.n_errors) == (4, 1, 0)
        assert a.errors == []  # "At least one test failed" only restates the failure
        assert a.db_errors == a.pg_mismatches == a.import_errors == a.criticals == []
        assert (
            "FAIL: TestSample.test_invoice_rounding (anybox_ci_sample_failing.tests.test_sample)"
            in a.report_lines()
        )


def test_real_pg_mismatch_gives_the_reason() -> None:
    a = odoo_log.analyse_file(LOGS / "odoo18_real_pg_mismatch.log")
    assert a.pg_mismatches == [
        "PG_VERSION=13 but the test database is on PostgreSQL 15.18 (Debian 15.18-0+deb12u1)"
    ]
    assert [t.short for t in a.failed] == ["TestPostgreSQL.test_server_major_version"]
    assert (a.tests_run, a.n_failed, a.n_errors) == (4, 1, 0)


def test_real_pg_version_unset_is_green() -> None:
    # the sample's test only logs "PG_VERSION is not set" at INFO
    a = odoo_log.analyse_file(LOGS / "odoo18_real_pg_version_unset.log")
    assert a.ok
    assert (a.tests_run, a.pg_mismatches, a.error_records) == (4, [], 0)


def test_real_import_error() -> None:
    a = odoo_log.analyse_file(LOGS / "odoo18_real_import_error.log")
    assert a.import_errors == ["No module named 'anybox_ci_missing_lib'"]
    assert a.criticals == [
        "Couldn't load module anybox_ci_sample",
        "Failed to initialize database `ci_import1`.",
    ]
    assert a.errors == ["Failed to load registry"]
    assert (a.tests_run, a.failed, a.db_errors) == (None, [], [])


def test_real_database_that_cannot_be_created() -> None:
    a = odoo_log.analyse_file(LOGS / "odoo18_real_db_init_critical.log")
    assert a.db_errors == [
        'connection to server on socket "/tmp/odoo-work/pg15/sock/.s.PGSQL.55432" failed: '
        'FATAL: database "ci_nocreatedb" does not exist'
    ]
    assert a.criticals == ["Failed to initialize database `ci_nocreatedb`."]
    assert a.import_errors == []


def test_real_no_server_is_red_without_any_error_record() -> None:
    # Odoo logs "Connection to the database failed" at INFO, then a bare traceback
    a = odoo_log.analyse_file(LOGS / "odoo18_real_no_server.log")
    assert a.error_records == 0
    assert a.db_errors == [
        'connection to server on socket "/tmp/odoo-work/pg15/sock/.s.PGSQL.55499" failed: '
        "No such file or directory"
    ]
    assert not a.ok


def test_connection_failed_at_info_alone_is_no_problem() -> None:
    # Odoo 12 logs it when it probes the database it is about to create (odoo12_pass.log)
    lines = [
        _record("INFO", "odoo.sql_db", "Connection to the database failed", "?"),
        _record(
            "INFO",
            "odoo.tests.result",
            "0 failed, 0 error(s) of 3 tests when loading database 'db'",
        ),
    ]
    a = odoo_log.analyse_lines(lines)
    assert a.ok
    assert a.summary() == "3 tests, 0 failed"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "psycopg2.OperationalError: could not connect to server: Connection refused",
            "could not connect to server: Connection refused",
        ),
        (
            'OperationalError: FATAL:  database "erp" does not exist',
            'FATAL: database "erp" does not exist',
        ),
        ("Database erp-pg16 does not exist.", "Database erp-pg16 does not exist"),
    ],
)
def test_database_errors_in_bare_lines(line: str, reason: str) -> None:
    a = odoo_log.analyse_lines([_record("INFO", "odoo", "Odoo version 18.0", "?"), line])
    assert a.db_errors == [reason]
    assert a.summary() == f"database error: {reason}"


def test_database_error_in_an_error_record() -> None:
    msg = "could not connect to server: Connection refused"
    a = odoo_log.analyse_lines([_record("ERROR", "odoo.sql_db", msg, "?")])
    assert a.summary() == f"database error: {msg}"


def test_counts_are_summed_over_databases_and_modules() -> None:
    lines = [
        _record("INFO", "odoo.tests.stats", "mod_a: 3 tests 0.53s 451 queries"),
        _record("INFO", "odoo.tests.stats", "mod_b: 5 tests 0.10s 12 queries"),
        _record(
            "INFO", "odoo.tests.result", "0 failed, 0 error(s) of 2 tests when loading database 'a'"
        ),
        _record(
            "INFO", "odoo.tests.result", "0 failed, 0 error(s) of 4 tests when loading database 'b'"
        ),
    ]
    a = odoo_log.analyse_lines(lines)
    assert (a.stats_total, a.result_total, a.tests_run) == (8, 6, 6)
    assert a.summary() == "6 tests, 0 failed"
    # without a result line, the stats stand in
    assert odoo_log.analyse_lines(lines[:2]).summary() == "8 tests, 0 failed"


def test_failures_counted_by_odoo_but_not_named() -> None:
    lines = [
        _record(
            "ERROR",
            "odoo.tests.result",
            "2 failed, 1 error(s) of 7 tests when loading database 'a'",
        ),
        _record(
            "INFO", "odoo.tests.result", "0 failed, 0 error(s) of 3 tests when loading database 'b'"
        ),
    ]
    a = odoo_log.analyse_lines(lines)
    assert not a.ok
    assert a.summary() == "10 tests, 2 failed, 1 error"
    assert a.report_lines()[-3:] == [
        "result: 2 failed, 1 error(s) of 7 tests",
        "result: 0 failed, 0 error(s) of 3 tests",
        "error/critical records: 1",
    ]


def test_odoo14_subtest_takes_the_name_of_the_started_test() -> None:
    logger = "odoo.addons.mod.tests.test_y"
    lines = [
        _record("INFO", logger, "Starting TestY.test_amounts ..."),
        _record("ERROR", logger, "FAIL: Subtest (i=3)"),
    ]
    a = odoo_log.analyse_lines(lines)
    assert a.failed == [
        odoo_log.FailedTest("FAIL", "test_amounts (i=3)", "mod.tests.test_y", "TestY")
    ]
    assert a.summary() == "1 test, 1 failed: TestY.test_amounts (i=3)"


def test_errors_only() -> None:
    lines = [
        _record(
            "ERROR", "odoo.tests.suite", "ERROR: setUpClass (odoo.addons.mod.tests.test_m.TestM)"
        ),
        _record(
            "ERROR",
            "odoo.tests.result",
            "0 failed, 1 error(s) of 2 tests when loading database 'db'",
        ),
    ]
    assert odoo_log.analyse_lines(lines).summary() == "2 tests, 1 error: TestM.setUpClass"


def test_analyse_cli_on_real_logs(script: Path) -> None:
    for name, expected_code in sorted(REAL_EXIT_CODES.items()):
        proc = subprocess.run(
            [sys.executable, str(script), "analyse", str(LOGS / name)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == expected_code, name + proc.stdout + proc.stderr
        assert summary_of(proc.stdout) == EXPECTED[name][1]
        # the block the master's run report reads: tests run, one line per failed test
        analysis = odoo_log.analyse_file(LOGS / name)
        assert parse_analysis(proc.stdout.splitlines()) == Counts(
            analysis.tests_run, len(analysis.failed)
        ), name


@pytest.mark.parametrize(
    ("name", "code"),
    [("odoo18_real_pass.log", 0), ("odoo18_real_fail.log", 1), ("odoo18_real_no_server.log", 1)],
)
def test_run_on_real_logs(script: Path, tmp_path: Path, name: str, code: int) -> None:
    # replayed on stderr with the exit code real Odoo gave
    log = tmp_path / "odoo.log"
    proc = subprocess.run(
        [sys.executable, str(script), "run", "--log", str(log), "--"]
        + _cat_cmd(LOGS / name, code, True),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == code
    assert f"command exit code: {code}" in proc.stdout
    assert summary_of(proc.stdout) == EXPECTED[name][1]
