"""Tests of build_utils/odoo_log.py: log fixtures of Odoo 8 to 18, and real `run` invocations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from build_utils import odoo_log
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "tests" / "data" / "odoo_logs"

EXPECTED = {
    "odoo8_pass.log": (True, "ok: 4 tests"),
    "odoo8_fail.log": (
        False,
        "1 failed, 1 error: test_margin_with_discount (sale_margin_extra.tests.test_margin), "
        "test_margin_zero_cost (sale_margin_extra.tests.test_margin)",
    ),
    "odoo8_import_error.log": (False, "import error: No module named paramiko"),
    "odoo8_missing_module.log": (False, "missing module: sale_margn"),
    "odoo12_pass.log": (True, "ok: 4 tests"),
    "odoo12_fail.log": (
        False,
        "1 failed: test_batch_done_partial (stock_picking_batch_extra.tests.test_batch)",
    ),
    "odoo12_import_error.log": (False, "import error: No module named 'schwifty'"),
    "odoo12_missing_module.log": (False, "missing module: web_widget_x2many_matrix"),
    "odoo16_pass.log": (True, "ok: 5 tests"),
    "odoo16_fail.log": (
        False,
        "2 failed: test_score_full_lead (crm_lead_scoring_extra.tests.test_scoring), "
        "test_frequency_update (crm_lead_scoring_extra.tests.test_frequency)",
    ),
    "odoo16_import_error.log": (False, "import error: No module named 'sklearn'"),
    "odoo16_missing_module.log": (False, "missing module: crm_lead_scorng_extra"),
    "odoo17_pass.log": (True, "ok: 5 tests"),
    "odoo17_fail.log": (
        False,
        "2 failed, 1 error: test_approve_second_tier (purchase_approval_tiers.tests.test_tiers), "
        "test_tier_amounts (amount=1000) (purchase_approval_tiers.tests.test_tiers), "
        "setUpClass (purchase_approval_tiers.tests.test_mail)",
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
    assert summary_of(proc.stdout) == "ok: 5 tests"


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
            odoo_log.FailedTest("FAIL", "test_foo", "mod.tests.test_x"),
        ),
        (  # Python 3.11+ unittest descriptions repeat the method name
            "ERROR: test_foo (odoo.addons.mod.tests.test_x.TestX.test_foo)",
            "odoo.addons.mod.tests.test_x",
            odoo_log.FailedTest("ERROR", "test_foo", "mod.tests.test_x"),
        ),
        (
            "FAIL: test_foo (openerp.addons.mod.tests.test_x.TestX) (i=2)",
            "openerp.addons.mod.tests.test_x",
            odoo_log.FailedTest("FAIL", "test_foo (i=2)", "mod.tests.test_x"),
        ),
        (
            "FAIL: TestX.test_bar",
            "odoo.addons.mod.tests.test_y",
            odoo_log.FailedTest("FAIL", "test_bar", "mod.tests.test_y"),
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
    assert text.startswith("7 failed: test_0 (mod.tests.test_x), ")
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
    assert analysis.summary() == "ok: 2 tests"


def test_empty_log() -> None:
    analysis = odoo_log.analyse_lines([])
    assert analysis.ok
    assert analysis.summary() == "ok: no test results in log"
    assert analysis.summary(returncode=-9) == "command killed by signal 9"
