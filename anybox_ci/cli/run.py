"""``anybox-ci run [DIR]``: build and test a master folder's buildouts on this machine.

Like ``act`` for GitHub Actions: DIR's manifests (default ``buildouts/MANIFEST.cfg``)
run on a throwaway master with throwaway PostgreSQL servers (``--pg``) and one local
worker offering them; DIR's own master.cfg and workers are not used. Progress shows per
cell, then a table: cell, worker, result, time, tests run/failed, first failure. Exit 1
when a cell does not end as expected (``--expect-fail`` names sections meant to fail).
Everything started is stopped at the end, Ctrl-C included. Buildout eggs and downloads
are kept in ~/.cache/anybox-ci/buildout between runs.

``--masters N`` runs N masters as a multi-master installation does: one PostgreSQL database
for all, a crossbar router between them (installed once into ~/.cache/anybox-ci/crossbar),
and one local worker per master.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ..core.loader import Loaded, check, unmatched_warnings
from ..devtools import localrun
from ..devtools.cellreport import CellResult, collect, table
from ..devtools.localmaster import Master
from .common import Parser, add_dir_args, describe, majors

DEFAULT_MANIFEST = Path("buildouts") / "MANIFEST.cfg"
Say = Callable[[str], None]


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


@dataclass
class Request:
    """What to run; ``demo`` fills one in for the shipped samples."""

    manifests: list[Path]
    majors: list[int]
    only: list[str] = field(default_factory=list)
    expect_fail: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    jobs: int = field(default_factory=localrun.default_jobs)
    timeout: float = 1800
    serve: bool = False
    title: str = "anybox-ci run"
    env: dict[str, str] = field(default_factory=dict)
    masters: int = 1


@dataclass(frozen=True)
class Plan:
    """The cells to build, with the section each belongs to, and those that cannot run."""

    cells: dict[str, str]
    not_run: list[tuple[str, str]]


class Refused(Exception):
    """Input that stops the run before anything starts; the message is one line."""


def plan(request: Request, scratch: Path) -> Plan:
    """Check the manifests against the local worker, as the master will, and pick the
    cells; raises :class:`Refused` once every problem is printed."""
    offers = [f"postgresql {major}" for major in request.majors] + request.capabilities
    workers = scratch / "preflight-workers.cfg"
    workers.write_text(localrun.workers_cfg(offers, request.jobs))
    loaded: Loaded = check(scratch, request.manifests, [workers])
    # cells that cannot run are in the table instead
    unmatched = {str(d) for d in unmatched_warnings(loaded)}
    for diag in loaded.diagnostics.items:
        if str(diag) not in unmatched:
            print(diag, file=sys.stderr)
    if loaded.diagnostics.errors:
        raise Refused(f"{len(loaded.diagnostics.errors)} error(s) in the manifests")
    sections = sorted(b.name for b in loaded.config.buildouts)
    for option, names in (("--only", request.only), ("--expect-fail", request.expect_fail)):
        unknown = sorted(set(names) - set(sections))
        if unknown:
            raise Refused(
                f"{option}: no section {', '.join(unknown)} (sections: {', '.join(sections)})"
            )
    wanted = set(request.only or sections)
    cells = {c.name: c.buildout for c in loaded.matrix.cells if c.buildout in wanted}
    not_run = [
        (f"{u.buildout} {u.cell}".strip(), u.reason)
        for u in loaded.matrix.unmatched
        if u.buildout in wanted
    ]
    return Plan(cells, not_run)


def execute(request: Request, root: Path) -> int:
    """Plan, start, build, report, stop, in ``root``; 0 when every cell ended as expected."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        found = plan(request, root)
    except Refused as exc:
        print(f"anybox-ci run: error: {exc}", file=sys.stderr)
        return 1
    if not found.cells:
        print("\n".join(table([], found.not_run)))
        print("anybox-ci run: error: no cell can run on this machine", file=sys.stderr)
        return 1
    started = time.monotonic()
    run_class = localrun.LocalRun
    extra: dict[str, Any] = {}
    if request.masters > 1:
        from ..devtools.multirun import MultiMasterRun

        run_class, extra = MultiMasterRun, {"count": request.masters}
        if not request.majors:
            print("anybox-ci run: error: --masters needs --pg", file=sys.stderr)
            return 1
    session = run_class(
        root=root,
        manifests=request.manifests,
        majors=request.majors,
        capabilities=request.capabilities,
        max_builds=request.jobs,
        title=request.title,
        say=say,
        buildout_cache=localrun.cache_root() / "buildout",
        env=request.env,
        **extra,
    )
    with session.running() as master:
        builds = session.build(sorted(found.cells), request.timeout)
        workers = localrun.worker_names(master)
        rows = [
            _row(master, cell, found.cells[cell], builds.get(cell), workers, request)
            for cell in sorted(found.cells)
        ]
        print()
        print("\n".join(table(rows, found.not_run)))
        print()
        say(f"done in {time.monotonic() - started:.0f}s")
        if request.serve:
            say(f"serving {master.url} - press Ctrl-C to stop")
            _wait_for_interrupt()
    return 0 if all(r.as_expected for r in rows) else 1


def _row(
    master: Master,
    cell: str,
    section: str,
    build: dict[str, Any] | None,
    workers: dict[int, str],
    request: Request,
) -> CellResult:
    expected = "FAILURE" if section in request.expect_fail else "SUCCESS"
    if build is None:
        return CellResult(cell, "-", "TIMED OUT", request.timeout, None, "", expected)
    return collect(master, build, cell, workers.get(build["workerid"], "?"), expected)


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stop what was started, as for Ctrl-C


@contextlib.contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh temporary folder, removed afterwards unless ``keep``; SIGTERM stops
    everything as Ctrl-C does."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield root
    finally:
        signal.signal(signal.SIGTERM, previous)
        if keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``demo`` share."""
    parser.add_argument(
        "--pg",
        type=majors,
        default=[15],
        metavar="MAJORS",
        help="PostgreSQL major versions, comma separated (default: 15); binaries missing "
        "from this machine are fetched once into ~/.cache/anybox-ci/pg",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=localrun.default_jobs(),
        metavar="N",
        help="builds at once (default: one per core, at least 2)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, metavar="SECONDS", help="for all the builds"
    )
    parser.add_argument(
        "--serve", action="store_true", help="keep the web UI up after the builds, until Ctrl-C"
    )
    parser.add_argument("--keep", action="store_true", help="keep the throwaway folders")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="anybox-ci run",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dir_args(parser, workers=False)
    parser.add_argument(
        "--only",
        action="extend",
        nargs="+",
        default=[],
        metavar="SECTION",
        help="run only the cells of these manifest sections",
    )
    parser.add_argument(
        "--expect-fail",
        action="extend",
        nargs="+",
        default=[],
        metavar="SECTION",
        help="the cells of these sections are meant to fail",
    )
    parser.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="LINE",
        help="one more capability of the local worker, as in workers.cfg "
        "(e.g. 'wkhtmltopdf 0.12.6'; repeatable)",
    )
    parser.add_argument(
        "--masters",
        type=int,
        default=1,
        metavar="N",
        help="run N masters on one PostgreSQL database and a crossbar router, one local "
        "worker each, as a multi-master installation does (default: 1)",
    )
    add_run_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    manifests = [args.dir / m for m in (args.manifest or [DEFAULT_MANIFEST])]
    for path in manifests:
        if not path.is_file():
            print(f"anybox-ci run: error: no manifest {path}", file=sys.stderr)
            return 1
    if args.jobs < 1:
        print("anybox-ci run: error: --jobs must be at least 1", file=sys.stderr)
        return 1
    if not 1 <= args.masters <= 8:
        print("anybox-ci run: error: --masters must be between 1 and 8", file=sys.stderr)
        return 1
    request = Request(
        manifests=[m.resolve() for m in manifests],
        majors=args.pg,
        only=args.only,
        expect_fail=args.expect_fail,
        capabilities=args.capability,
        jobs=args.jobs,
        timeout=args.timeout,
        serve=args.serve,
        title=f"anybox-ci run {args.dir.resolve()}",
        masters=args.masters,
    )
    try:
        with scratch("anybox-ci-run-", args.keep) as root:
            return execute(request, root)
    except (RuntimeError, TimeoutError, OSError) as exc:
        return failed("anybox-ci run", exc)


def failed(prog: str, exc: BaseException) -> int:
    """A failure to set up or run: one error line, then any detail it carries (a log tail)."""
    first, *detail = (str(exc).strip() or type(exc).__name__).splitlines()
    print(f"{prog}: error: {first}", file=sys.stderr)
    for line in detail:
        print(f"  {line}", file=sys.stderr)
    return 1
