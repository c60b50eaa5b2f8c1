"""Odoo/OpenERP test-log analyser (worker side, Python standard library only).

Odoo does not reliably report test failures through its exit code (before 12 it exits 0
even when tests fail), so builds run Odoo through this script and judge the log instead:

    python3 odoo_log.py run --log FILE -- CMD ARGS...   # run CMD, tee output, then analyse
    python3 odoo_log.py analyse FILE                    # analyse an existing log

Understood formats, Odoo 8 to 18 (``openerp.`` loggers up to 9, ``odoo.`` after), checked
against real Odoo 18.0 logs (``tests/data/odoo_logs/odoo18_real_*.log``):

* records ``2024-01-01 12:00:00,123 4242 LEVEL dbname logger.name: message``; lines that do
  not start a record (tracebacks of 10+) belong to the previous record;
* test failures: ``FAIL: test_foo (odoo.addons.mod.tests.test_x.TestX)`` (unittest text
  runner, 8 to 13) and ``FAIL: TestX.test_foo`` logged by ``odoo.addons.mod.tests.test_x``
  (Odoo's own result class, 14+), ``ERROR:`` likewise, subtests and ``setUpClass`` included;
  the summary names them ``TestX.test_foo``;
* test counts, summed over every line (one per database, module or phase):
  ``N failed, M error(s) of K tests when loading database`` (``odoo.tests.result``, 16+),
  else ``mod: N tests 1.2s 34 queries`` (``odoo.tests.stats``; Odoo counts each class's
  ``setUpClass``/``tearDownClass`` there too, so it only stands in when the result line
  is missing), else ``Ran N tests in`` (8 to 13), else ``Starting TestX.test_foo ...``
  (14+); failure counts also from ``Module X: N failures, M errors [of K tests]``;
* ``ImportError``/``ModuleNotFoundError`` tracebacks and ``No module named`` messages;
* missing modules: ``module X: not installable, skipped``, ``module X: module not found``,
  ``Unmet dependencies``, ``invalid module names, ignored``, ``Some modules are not loaded``;
* a database Odoo cannot reach or initialise: ``psycopg2.OperationalError: ...`` (even in
  the bare traceback Odoo 18 prints after an INFO ``Connection to the database failed``),
  ``could not connect to server``, ``Database X does not exist``;
* the PostgreSQL version check of the sample addons (a test failing with ``PG_VERSION=13
  but the test database is on PostgreSQL 15.18 ...``);
* any ``CRITICAL`` record, and any other ``ERROR`` record.

Exit status is 0 only when the command (if any) succeeded and the log shows no failure, error
or critical record. Before the summary comes the analysis block that the master's run report
reads (``tests run: N``, one ``FAIL:``/``ERROR:`` line per failed test, ending with
``error/critical records: N``); the last stdout line is ``anybox-ci summary: <text>``, e.g.
``25 tests, 0 failed``, ``19 tests, 1 failed: TestSample.test_invoice_rounding``,
``import error: No module named 'x'``, ``missing module: foo``, ``database error: ...``,
``critical: ...`` or ``ok: no test results in log``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import SUMMARY_PREFIX, ArgumentParser
except ImportError:
    from summary import SUMMARY_PREFIX, ArgumentParser  # type: ignore[no-redef]

MAX_SUMMARY = 300
MAX_LISTED = 5

ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
RECORD_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) (?P<pid>\d+) "
    r"(?P<level>[A-Z]+|\?) (?P<db>\S+) (?P<logger>[^\s:]+): ?(?P<msg>.*)$"
)
# unittest text runner (Odoo 8 to 13): "FAIL: test_foo (odoo.addons.mod.tests.test_x.TestX)";
# also setUpClass errors of any version, whose description is the same shape.
OLD_TEST_RE = re.compile(
    r"^(?P<kind>FAIL|ERROR): (?P<name>\w+) \((?P<path>\w+(?:\.\w+)+)\)(?P<sub> \(.*\))?\s*$"
)
# Odoo's own result class (14+): "FAIL: TestX.test_foo", "ERROR: Subtest TestX.test_foo (i=1)"
NEW_TEST_RE = re.compile(
    r"^(?P<kind>FAIL|ERROR): (?:Subtest )?(?:(?P<cls>[\w.]+)\.)?(?P<name>\w+)(?P<sub> \(.*\))?\s*$"
)
NEW_SUBTEST_ONLY_RE = re.compile(r"^(?P<kind>FAIL|ERROR): Subtest (?P<sub>\(.*\))\s*$")
RESULT_RE = re.compile(
    r"(?P<failed>\d+) failed, (?P<errors>\d+) error\(s\) of (?P<total>\d+) tests"
)
RAN_RE = re.compile(r"^Ran (?P<n>\d+) tests? in ")
STATS_RE = re.compile(r"^(?P<module>\S+): (?P<n>\d+) tests [\d.]+s")
STARTING_RE = re.compile(r"^Starting (?P<desc>\S+(?: \(.*\))?) \.\.\.\s*$")
MODULE_RESULT_RE = re.compile(
    r"^Module (?P<module>\S+): (?P<failures>\d+) failures?, (?P<errors>\d+) errors?"
    r"(?: of (?P<total>\d+) tests)?"
)
IMPORT_ERROR_RE = re.compile(r"\b(?:ImportError|ModuleNotFoundError): (?P<msg>.+?)\s*$")
NO_MODULE_MSG_RE = re.compile(r"^(?P<msg>No module named .+?)\s*$")
MISSING_PATTERNS = (
    re.compile(r"^module (?P<names>\S+): not installable, skipped"),
    re.compile(r"^module (?P<names>\S+): module not found"),
    re.compile(r"^module \S+: Unmet dependencies: (?P<names>.+)$"),
    re.compile(r"^invalid module names, ignored: (?P<names>.+)$"),
    re.compile(
        r"^Some modules are not loaded, some dependencies or manifest may be missing: (?P<names>.+)$"
    ),
    re.compile(
        r"^Some modules have inconsistent states, some dependencies may be missing: (?P<names>.+)$"
    ),
)
# A database Odoo cannot reach or create, read in traceback lines whatever the level of
# their record: Odoo 18 logs "Connection to the database failed" at INFO (alone, that line
# means nothing: Odoo 12 logs it whenever it probes a database it is about to create), then
# the exception escapes as a bare traceback ending with "psycopg2.OperationalError:
# connection to server on socket ... failed: FATAL:  database "x" does not exist" (older
# libpq: "could not connect to server: Connection refused"); `odoo-bin db` exits with
# "Database X does not exist."
DB_ERROR_PATTERNS = (
    re.compile(r"^(?:[\w.]+\.)?OperationalError: (?P<msg>\S.*?)\s*$"),
    re.compile(r"^(?P<msg>could not connect to server\b.*?)\s*$"),
    re.compile(r"^(?P<msg>[Dd]atabase \S+ does not exist)\.?\s*$"),
)
# the same in the message of an ERROR or CRITICAL record, not anchored
DB_ERROR_IN_RECORD_RE = re.compile(
    r"\bOperationalError: (?P<msg>\S.*?)\s*$|(?P<connect>\bcould not connect to server\b.*?)\s*$"
)
# the assertion messages of the sample addons' PostgreSQL check (PG_VERSION is the major
# version the CI expects of the cell's server), read in the traceback of a failed test
PG_MISMATCH_RE = re.compile(
    r"(?P<msg>PG_VERSION=\S+ but the test database is on PostgreSQL .+?"
    r"|Odoo \d+ needs PostgreSQL \d+ or later, not .+?)\s*$"
)
# Odoo 8-13 log every line of the unittest text output; these ERROR lines only echo a failure
TEST_NOISE_RE = re.compile(r"^(?:` |Traceback|FAIL\b|ERROR\b|FAILED\b|={10,})")
ADDON_PREFIXES = ("odoo.addons.", "openerp.addons.")
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
WARNING_LEVELS = ERROR_LEVELS | {"WARNING"}


@dataclass(frozen=True)
class FailedTest:
    """One failing or erroring test: ``TestX.test_foo`` in the summary, with its module
    (``mod.tests.test_x``) in the analysis block."""

    kind: str  # "FAIL" or "ERROR"
    name: str  # method, with the parameters of a subtest: "test_foo (i=1)"
    location: str  # test module without the addons prefix: "mod.tests.test_x"
    cls: str = ""  # test class, when the log names it

    @property
    def short(self) -> str:
        return f"{self.cls}.{self.name}" if self.cls else self.name

    @property
    def label(self) -> str:
        return f"{self.short} ({self.location})" if self.location else self.short


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class Analysis:
    """What a log says; ``ok`` and ``summary()`` turn it into the step result."""

    failed: list[FailedTest] = field(default_factory=list)
    import_errors: list[str] = field(default_factory=list)
    missing_modules: list[str] = field(default_factory=list)
    db_errors: list[str] = field(default_factory=list)
    pg_mismatches: list[str] = field(default_factory=list)
    criticals: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    module_results: list[str] = field(default_factory=list)
    error_records: int = 0
    #: ``odoo.tests.result`` lines (without "when loading database"), and their sums
    result_lines: list[str] = field(default_factory=list)
    result_failed: int = 0
    result_errors: int = 0
    result_total: int | None = None
    #: sums of the ``Module X: N failures, M errors`` lines
    module_failures: int = 0
    module_errors: int = 0
    stats_total: int | None = None
    ran_total: int | None = None
    started: int = 0

    @property
    def tests_run(self) -> int | None:
        """Best available test count, most authoritative source first."""
        for value in (self.result_total, self.stats_total, self.ran_total):
            if value is not None:
                return value
        return self.started or None

    @property
    def n_failed(self) -> int:
        """Failed tests: the largest of Odoo's counts and the failures named in the log."""
        named = sum(1 for t in self.failed if t.kind == "FAIL")
        return max(self.result_failed, self.module_failures, named)

    @property
    def n_errors(self) -> int:
        """Tests in error (``setUpClass`` included), counted like :attr:`n_failed`."""
        named = sum(1 for t in self.failed if t.kind != "FAIL")
        return max(self.result_errors, self.module_errors, named)

    @property
    def ok(self) -> bool:
        return not (
            self.failed
            or self.n_failed
            or self.n_errors
            or self.import_errors
            or self.missing_modules
            or self.db_errors
            or self.pg_mismatches
            or self.criticals
            or self.errors
            or self.module_results
            or self.error_records
        )

    def tests_text(self) -> str | None:
        """``25 tests, 0 failed``, ``4 tests, 2 failed, 1 error: TestX.test_a, ...``; None
        when the log shows neither a test count nor a failure."""
        total, n_failed, n_errors = self.tests_run, self.n_failed, self.n_errors
        if total is None and not (n_failed or n_errors):
            return None
        parts = [] if total is None else [plural(total, "test")]
        if n_failed or not n_errors:
            parts.append(f"{n_failed} failed")
        if n_errors:
            parts.append(plural(n_errors, "error"))
        text = ", ".join(parts)
        ordered = [t for t in self.failed if t.kind == "FAIL"]
        ordered += [t for t in self.failed if t.kind != "FAIL"]
        if ordered:
            text += ": " + listing([t.short for t in ordered])
        return text

    def summary(self, returncode: int | None = None) -> str:
        """Short text for the master: the most telling problem first, or the test count."""
        text = self._problem_text()
        if text is None and returncode:
            text = f"command exited with code {returncode}"
            if returncode < 0:
                text = f"command killed by signal {-returncode}"
        if text is None:
            text = self.tests_text() or "ok: no test results in log"
        return shorten(text)

    def _problem_text(self) -> str | None:
        if self.failed or self.n_failed or self.n_errors:
            text = self.tests_text()
            if self.pg_mismatches:
                text = f"PostgreSQL version mismatch: {self.pg_mismatches[0]}; {text}"
            return text
        if self.import_errors:
            text = f"import error: {self.import_errors[0]}"
            if len(self.import_errors) > 1:
                text += f" (+{len(self.import_errors) - 1} more)"
            return text
        if self.missing_modules:
            word = "missing module" if len(self.missing_modules) == 1 else "missing modules"
            return f"{word}: " + listing(self.missing_modules)
        if self.db_errors:
            return f"database error: {self.db_errors[0]}"
        if self.pg_mismatches:
            return f"PostgreSQL version mismatch: {self.pg_mismatches[0]}"
        if self.criticals:
            return f"critical: {self.criticals[0]}"
        if self.module_results:
            return self.module_results[0]
        if self.errors:
            if len(self.errors) == 1:
                return f"error: {self.errors[0]}"
            return f"{len(self.errors)} errors, first: {self.errors[0]}"
        if self.error_records:
            return f"{self.error_records} error records in log"
        return None

    def report_lines(self) -> list[str]:
        """Human-readable detail printed before the summary line.

        The master's run report reads ``tests run:`` and counts the ``FAIL:``/``ERROR:``
        lines up to ``error/critical records:`` (``anybox_ci.devtools.cellreport``)."""
        lines = ["=== anybox-ci odoo log analysis ==="]
        total = self.tests_run
        lines.append(f"tests run: {'unknown' if total is None else total}")
        lines.extend(f"{t.kind}: {t.label}" for t in self.failed)
        lines.extend(f"PostgreSQL version mismatch: {m}" for m in self.pg_mismatches)
        lines.extend(f"import error: {m}" for m in self.import_errors)
        lines.extend(f"missing module: {m}" for m in self.missing_modules)
        lines.extend(f"database error: {m}" for m in self.db_errors)
        lines.extend(f"critical: {m}" for m in self.criticals)
        lines.extend(f"module result: {m}" for m in self.module_results)
        lines.extend(f"result: {m}" for m in self.result_lines)
        lines.extend(f"error: {m}" for m in self.errors)
        lines.append(f"error/critical records: {self.error_records}")
        return lines


def shorten(text: str, limit: int = MAX_SUMMARY) -> str:
    """Keep the summary to one reasonably short line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def listing(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", +{len(items) - limit} more"
    return shown


def strip_addon_prefix(dotted: str) -> str:
    for prefix in ADDON_PREFIXES:
        if dotted.startswith(prefix):
            return dotted[len(prefix) :]
    return dotted


def parse_module_names(text: str) -> list[str]:
    """Names from ``['a', 'b']`` (repr of a list) or ``a, b`` forms."""
    quoted = re.findall(r"'([^']+)'", text)
    if quoted:
        return quoted
    return [n for n in re.split(r"[,\s]+", text.strip(" []")) if n]


def parse_failure(msg: str, logger: str) -> FailedTest | None:
    """Recognise a ``FAIL:``/``ERROR:`` test report of any supported Odoo version."""
    m = OLD_TEST_RE.match(msg)
    if m:
        parts = m.group("path").split(".")
        if parts[-1] == m.group("name") and len(parts) > 2:
            parts = parts[:-1]  # Python 3.11+ unittest appends the method name
        location = strip_addon_prefix(".".join(parts[:-1]))  # drop the class name
        name = m.group("name") + (m.group("sub") or "")
        return FailedTest(m.group("kind"), name, location, parts[-1])
    location = strip_addon_prefix(logger) if ".tests" in logger else ""
    m = NEW_SUBTEST_ONLY_RE.match(msg)
    if m and location:
        return FailedTest(m.group("kind"), "subtest " + m.group("sub"), location)
    m = NEW_TEST_RE.match(msg)
    if m and (location or m.group("cls")):
        name = m.group("name") + (m.group("sub") or "")
        return FailedTest(m.group("kind"), name, location, m.group("cls") or "")
    return None


def _name_subtest(failure: FailedTest, started: str | None) -> FailedTest:
    """``subtest (i=3)`` of Odoo 14 gets the name of the test its logger last started."""
    if failure.cls or not failure.name.startswith("subtest (") or not started:
        return failure
    cls, _, method = started.partition(" ")[0].rpartition(".")
    params = failure.name[len("subtest ") :]
    return dataclasses.replace(failure, name=f"{method} {params}", cls=cls)


def _add_unique(items: list[str], values: Iterable[str]) -> None:
    for value in values:
        if value not in items:
            items.append(value)


def _db_error(line: str) -> str | None:
    for pattern in DB_ERROR_PATTERNS:
        m = pattern.match(line)
        if m:
            return " ".join(m.group("msg").split())
    return None


def analyse_lines(lines: Iterable[str]) -> Analysis:
    """Analyse log lines (with or without trailing newlines)."""
    result = Analysis()
    seen_failures: set[FailedTest] = set()
    last_started: dict[str, str] = {}
    current_level = ""
    in_failure = False  # inside the traceback of a failed test
    for raw in lines:
        line = ANSI_RE.sub("", raw.rstrip("\r\n"))
        record = RECORD_RE.match(line)
        if record is None:
            # continuation line (traceback of a multi-line record), or Odoo's own stderr
            db_error = _db_error(line)
            if db_error:
                _add_unique(result.db_errors, [db_error])
            if in_failure:
                m = PG_MISMATCH_RE.search(line)
                if m:
                    _add_unique(result.pg_mismatches, [m.group("msg")])
            if current_level in ERROR_LEVELS:
                m = IMPORT_ERROR_RE.search(line)
                if m:
                    _add_unique(result.import_errors, [m.group("msg")])
            continue
        level, logger = record.group("level"), record.group("logger")
        msg = record.group("msg").rstrip()
        current_level = level
        in_failure = False
        is_error = level in ERROR_LEVELS
        if is_error:
            result.error_records += 1

        failure = parse_failure(msg, logger) if is_error else None
        if failure is not None:
            failure = _name_subtest(failure, last_started.get(logger))
            in_failure = True
            if failure not in seen_failures:
                seen_failures.add(failure)
                result.failed.append(failure)
            continue

        m = RESULT_RE.search(msg)
        if m:
            result.result_lines.append(msg.split(" when loading database")[0])
            result.result_failed += int(m.group("failed"))
            result.result_errors += int(m.group("errors"))
            result.result_total = (result.result_total or 0) + int(m.group("total"))
            continue
        m = MODULE_RESULT_RE.match(msg)
        if m:
            result.module_failures += int(m.group("failures"))
            result.module_errors += int(m.group("errors"))
            if int(m.group("failures")) or int(m.group("errors")):
                _add_unique(result.module_results, [msg])
            continue
        m = RAN_RE.match(msg)
        if m:
            result.ran_total = (result.ran_total or 0) + int(m.group("n"))
            continue
        if logger.endswith("tests.stats"):
            m = STATS_RE.match(msg)
            if m:
                result.stats_total = (result.stats_total or 0) + int(m.group("n"))
                continue
        m = STARTING_RE.match(msg)
        if m and ".tests" in logger:
            result.started += 1
            last_started[logger] = m.group("desc")
            continue

        missing = _match_missing(msg) if level in WARNING_LEVELS else []
        if missing:
            _add_unique(result.missing_modules, missing)
            continue
        if is_error:
            m = IMPORT_ERROR_RE.search(msg) or NO_MODULE_MSG_RE.match(msg)
            if m:
                _add_unique(result.import_errors, [m.group("msg")])
                continue
            m = DB_ERROR_IN_RECORD_RE.search(msg)
            db_error = " ".join((m.group("msg") or m.group("connect")).split()) if m else None
            db_error = db_error or _db_error(msg)
            if db_error:
                _add_unique(result.db_errors, [db_error])
                continue
            if level == "CRITICAL":
                _add_unique(result.criticals, [msg])
                continue
            if ".tests" in logger and TEST_NOISE_RE.match(msg):
                continue
            if msg.startswith("At least one test failed"):
                continue  # restates failures reported elsewhere
            _add_unique(result.errors, [msg])
    return result


def _match_missing(msg: str) -> list[str]:
    for pattern in MISSING_PATTERNS:
        m = pattern.match(msg)
        if m:
            return parse_module_names(m.group("names"))
    return []


def analyse_file(path: str | os.PathLike[str]) -> Analysis:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return analyse_lines(handle)


def run_and_tee(cmd: Sequence[str], log_path: str | os.PathLike[str]) -> int:
    """Run ``cmd`` (argv, no shell), copying its merged output to stdout and ``log_path``.

    SIGTERM/SIGINT received while the command runs are forwarded to it, so that an
    interrupted build does not leave Odoo running.
    """
    out = sys.stdout.buffer
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def forward(signum: int, _frame: FrameType | None) -> None:
            if proc.poll() is None:
                proc.send_signal(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            stream = proc.stdout
            assert isinstance(stream, io.BufferedReader)
            while True:
                chunk = stream.read1(65536)
                if not chunk:
                    break
                out.write(chunk)
                out.flush()
                log.write(chunk)
            return proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def print_summary(text: str) -> None:
    sys.stdout.flush()
    print(SUMMARY_PREFIX + shorten(text), flush=True)


def report(analysis: Analysis, returncode: int | None = None) -> int:
    """Print the detail and the summary line; return the exit status."""
    for line in analysis.report_lines():
        print(line)
    if returncode is not None:
        print(f"command exit code: {returncode}")
    print_summary(analysis.summary(returncode))
    return 0 if analysis.ok and not returncode else 1


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Run Odoo and/or analyse its test log.")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run a command, tee its output to a log, analyse it")
    run.add_argument("--log", required=True, help="file receiving a copy of the output")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    analyse = sub.add_parser("analyse", aliases=["analyze"], help="analyse an existing log")
    analyse.add_argument("logfile")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "run":
        cmd = list(args.cmd)
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            print_summary("no command given")
            return 2
        try:
            returncode = run_and_tee(cmd, args.log)
        except FileNotFoundError:
            print_summary(f"command not found: {cmd[0]}")
            return 2
        except PermissionError as exc:
            print_summary(f"cannot run {cmd[0]}: {exc.strerror}")
            return 2
        return report(analyse_file(args.log), returncode)
    try:
        analysis = analyse_file(args.logfile)
    except OSError as exc:
        print_summary(f"cannot read log {args.logfile}: {exc.strerror}")
        return 2
    return report(analysis)


if __name__ == "__main__":
    sys.exit(main())
