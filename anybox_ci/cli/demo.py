"""``anybox-ci demo``: the whole matrix on this machine, with nothing to set up.

It starts a throwaway master (SQLite), throwaway PostgreSQL clusters and one local
``buildbot-worker``, builds every sample buildout on every cell, shows progress, prints
a table of the cells, and stops everything it started.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from ..devtools import localmaster as localrun
from ..devtools.pgcluster import Cluster, ensure_binaries


def _say(message: str) -> None:
    print(message, flush=True)


def _majors(text: str) -> list[int]:
    try:
        majors = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected majors like 13,15,17, got {text!r}") from None
    if not majors:
        raise argparse.ArgumentTypeError("no PostgreSQL version given")
    return majors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anybox-ci demo", description=__doc__)
    parser.add_argument(
        "--pg",
        type=_majors,
        default=[15],
        metavar="MAJORS",
        help="PostgreSQL majors to run, comma separated (default: 15)",
    )
    parser.add_argument(
        "--serve", action="store_true", help="keep the web UI up after the builds, until Ctrl-C"
    )
    parser.add_argument("--keep", action="store_true", help="keep the demo folder")
    parser.add_argument("--timeout", type=int, default=900, help="seconds for all builds")
    return parser


def _row(cells: Sequence[str]) -> str:
    return "  ".join(f"{c:<22}" if i == 0 else f"{c:<10}" for i, c in enumerate(cells))


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="anybox-ci-demo-"))
    started = time.monotonic()
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, root, True)
        clusters: dict[int, Cluster] = {}
        for major in args.pg:
            install = ensure_binaries(major, progress=lambda m: _say(f"[demo] {m}"))
            cluster = Cluster(install, root / f"pg{major}")
            _say(f"[demo] starting PostgreSQL {install.version}")
            cluster.start()
            stack.callback(cluster.stop)
            clusters[major] = cluster
        repos = {n: localrun.make_sample_repo(n, root / "repos") for n in localrun.SAMPLE_NAMES}
        password = secrets.token_urlsafe(16)
        caps = "\n".join(f"    {localrun.offer_line(c)}" for c in clusters.values())
        workers = (
            f"[local]\npassword = secret:worker-local\ncapability =\n{caps}\n"
            "    wkhtmltopdf 0.12.6\n"
        )
        master = localrun.Master(root / "master")
        _say(f"[demo] creating master in {master.basedir}")
        master.create(localrun.sample_manifest(repos), workers, secrets={"worker-local": password})
        master.start()
        stack.callback(master.stop)
        worker = localrun.WorkerProcess(root / "worker", "local", password, master.pb_port)
        worker.start()
        stack.callback(worker.stop)
        master.wait(lambda: master.connected_workers() == {"local"}, 60, "the local worker")
        builders = sorted(master.builder_ids())
        _say(f"[demo] web UI: {master.url}  ({len(builders)} cells)")
        bsids = [master.force(name) for name in builders]
        states: dict[str, str] = {}

        ids = {i: n for n, i in master.builder_ids().items()}

        def progress() -> None:
            for build in master.builds():
                name = ids.get(build["builderid"], "?")
                state = build["state_string"]
                if not build["complete"]:
                    steps = master.steps(build["buildid"])
                    if steps:
                        state = f"step {steps[-1]['name']}"
                if states.get(name) != state:
                    states[name] = state
                    _say(f"[demo] {name}: {state}")

        master.wait_buildsets(bsids, args.timeout, progress)
        progress()
        unexpected = _report(master, builders)
        _say(f"[demo] done in {time.monotonic() - started:.0f}s")
        if args.serve:
            _say(f"[demo] serving {master.url} - press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 1 if unexpected else 0
    return 0


def _report(master: localrun.Master, builders: list[str]) -> list[str]:
    workers = {w["workerid"]: w["name"] for w in master.get("workers")["workers"]}
    _say("")
    _say(_row(["cell", "worker", "result", "time", "expected"]))
    unexpected = []
    for name in builders:
        build = master.builds(name)[-1]
        result = localrun.RESULTS.get(build["results"], str(build["results"]))
        expected = localrun.SAMPLE_EXPECTED.get(name.split("-")[0], "SUCCESS")
        seconds = (build.get("complete_at") or 0) - (build.get("started_at") or 0)
        mark = "yes" if result == expected else "NO"
        if result != expected:
            unexpected.append(name)
        _say(_row([name, workers.get(build["workerid"], "?"), result, f"{seconds:.0f}s", mark]))
    _say("")
    return unexpected


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"anybox-ci demo: error: {exc}", file=sys.stderr)
        return 1
