"""Benchmark of ``update_mirrors`` (issue 4, mirror throughput). A script, not a test.

It creates N small bare git repositories (one template made with ``git fast-import``: three
commits on two branches, copied N times), mirrors them once (the clone pass), then times
update passes over the N mirrors with nothing new: ``jobs=8`` (parallel) against ``jobs=1``
(sequential), alternating, several runs each, and prints the medians and their ratio. Each
pass does what production does per mirror: read the recorded refs, ``git fetch --prune``,
read the refs again, compare.

Two transports, each for 200 and 1,000 repositories:

- ``file``: ``file://`` URLs (git's regular transport, an upload-pack per fetch);
- ``http``: ``http://127.0.0.1`` URLs served by ``git http-backend`` behind a small threaded
  server (bench_mirrors_support.py) that adds ``--latency`` (50 ms) to every request, as a
  remote forge would.

Each case gets ``--runs`` pairs of timed passes at most, fewer when the next pair would take
its passes past ``--budget`` seconds (the clone pass is not counted); a case whose first pair
would already exceed ``--budget`` (scaled from the smaller size of the same transport) is
skipped with a note.

Usage::

    .venv/bin/python benchmarks/bench_mirrors.py [--sizes 200,1000] [--transports file,http]
        [--runs 3] [--jobs 8] [--latency 0.05] [--budget 300] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anybox_ci.changes.layout import Remote  # noqa: E402
from anybox_ci.changes.update import update_mirrors  # noqa: E402

SUPPORT = Path(__file__).resolve().with_name("bench_mirrors_support.py")
FAST_IMPORT = """\
commit refs/heads/main
mark :1
committer Bench <bench@example.com> 1700000000 +0000
data 4
one

M 644 inline README
data 6
hello

commit refs/heads/main
mark :2
committer Bench <bench@example.com> 1700000060 +0000
data 4
two

from :1
M 644 inline module.py
data 10
x = 1 + 1

reset refs/heads/stable
from :2

commit refs/heads/main
mark :3
committer Bench <bench@example.com> 1700000120 +0000
data 6
three

from :2
M 644 inline module.py
data 10
x = 1 + 2

"""


def make_repos(base: Path, count: int) -> Path:
    """``count`` bare repositories ``sources/repoNNNN.git``, copies of one fast-imported
    template (three commits, branches ``main`` and ``stable``); returns ``sources``."""
    template = base / "template.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(template)], check=True)
    subprocess.run(
        ["git", "--git-dir", str(template), "fast-import", "--quiet"],
        input=FAST_IMPORT.encode(),
        check=True,
    )
    shutil.rmtree(template / "hooks")  # samples only: nothing a fetch needs
    sources = base / "sources"
    sources.mkdir()
    for i in range(count):
        shutil.copytree(template, sources / f"repo{i:04d}.git", symlinks=True)
    return sources


class HttpServer:
    """bench_mirrors_support.py in a process of its own, stopped by closing its stdin."""

    def __init__(self, root: Path, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SUPPORT), str(root), "--latency", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self) -> int:
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=10) as answer:
            return int(json.load(answer)["requests"])

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Case:
    transport: str
    repos: int
    clone: float = 0.0
    parallel: list[float] = field(default_factory=list)
    sequential: list[float] = field(default_factory=list)
    requests_per_pass: int | None = None
    skipped: str = ""

    @property
    def par(self) -> float:
        return statistics.median(self.parallel)

    @property
    def seq(self) -> float:
        return statistics.median(self.sequential)


def timed_pass(remotes: list[Remote], root: Path, jobs: int) -> float:
    started = time.perf_counter()
    report = update_mirrors(remotes, root, jobs=jobs)
    elapsed = time.perf_counter() - started
    if report.failed or report.changes:
        why = report.failed[0].reason if report.failed else ""
        raise SystemExit(
            f"unexpected: {len(report.failed)} failed, {len(report.changes)} changes {why}"
        )
    return elapsed


def run_case(
    case: Case,
    remotes: list[Remote],
    root: Path,
    args: argparse.Namespace,
    server: HttpServer | None,
) -> None:
    started = time.perf_counter()
    report = update_mirrors(remotes, root, jobs=args.jobs)
    if report.failed:
        raise SystemExit(f"clone pass: {len(report.failed)} failed: {report.failed[0].reason}")
    case.clone = time.perf_counter() - started
    print(f"  clone pass jobs={args.jobs}: {case.clone:.1f} s", flush=True)
    budget_end = time.perf_counter() + args.budget
    for run in range(args.runs):
        before = server.requests() if server and case.transport == "http" else 0
        case.parallel.append(timed_pass(remotes, root, args.jobs))
        if server and case.transport == "http":
            case.requests_per_pass = server.requests() - before
        case.sequential.append(timed_pass(remotes, root, 1))
        pair = case.parallel[-1] + case.sequential[-1]
        print(
            f"  run {run + 1}: jobs={args.jobs} {case.parallel[-1]:.2f} s, "
            f"jobs=1 {case.sequential[-1]:.2f} s",
            flush=True,
        )
        if run + 1 < args.runs and time.perf_counter() + pair > budget_end:
            print(
                f"  (stopping after run {run + 1}: another would pass --budget {args.budget:g} s)"
            )
            break


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--transports", default="file,http")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="http: seconds per request")
    parser.add_argument("--budget", type=float, default=300, help="seconds per case, at most")
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    transports = args.transports.split(",")
    if not set(transports) <= {"file", "http"} or not 1 <= args.runs <= 10:
        parser.error("transports are file and http; runs between 1 and 10")
    for name in ("no_proxy", "NO_PROXY"):  # never send 127.0.0.1 through a proxy
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-mirrors-"))
    cases: list[Case] = []
    server: HttpServer | None = None
    try:
        started = time.perf_counter()
        sources = make_repos(base, max(sizes))
        print(f"created {max(sizes)} bare repositories in {time.perf_counter() - started:.1f} s")
        if "http" in transports:
            server = HttpServer(sources, args.latency)
            print(f"git http-backend on {server.url}, {args.latency * 1000:.0f} ms per request")
        for transport in transports:
            smaller: Case | None = None
            for size in sizes:
                case = Case(transport, size)
                cases.append(case)
                print(f"\n{transport}, {size} repositories:", flush=True)
                if smaller is not None:
                    scale = size / smaller.repos
                    estimate = scale * (smaller.par + smaller.seq)
                    if estimate > args.budget:
                        case.skipped = (
                            f"skipped: one pair of passes would take about {estimate:.0f} s "
                            f"(scaled from {smaller.repos}), over --budget {args.budget:g} s"
                        )
                        print("  " + case.skipped)
                        continue
                    print(
                        f"  one pair of passes should take about {estimate:.0f} s, "
                        f"the clone pass about {scale * smaller.clone:.0f} s"
                    )
                if transport == "http":
                    assert server is not None
                    urls = [f"{server.url}/repo{i:04d}.git" for i in range(size)]
                else:
                    urls = [f"file://{sources}/repo{i:04d}.git" for i in range(size)]
                remotes = [Remote("git", url) for url in urls]
                run_case(case, remotes, base / f"mirrors-{transport}-{size}", args, server)
                smaller = case
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(
        f"\nupdate-mirrors, nothing new, medians ({os.cpu_count()} CPUs; "
        f"http adds {args.latency * 1000:.0f} ms per request):"
    )
    print(
        f"{'transport':<10}{'repos':>6}{'runs':>6}{'clone':>9}"
        f"{f'jobs={args.jobs}':>10}{'jobs=1':>9}{'speed-up':>10}{'req/pass':>10}"
    )
    for case in cases:
        if case.skipped:
            print(f"{case.transport:<10}{case.repos:>6}  {case.skipped}")
            continue
        print(
            f"{case.transport:<10}{case.repos:>6}{len(case.parallel):>6}{case.clone:>8.1f}s"
            f"{case.par:>9.2f}s{case.seq:>8.2f}s{case.seq / case.par:>9.1f}x"
            f"{case.requests_per_pass if case.requests_per_pass is not None else '-':>10}"
        )
    for case in cases:
        if case.requests_per_pass and not case.skipped:
            floor = case.requests_per_pass * args.latency
            print(
                f"http {case.repos}: the added latency alone is {floor:.1f} s of a sequential "
                f"pass ({case.seq:.1f} s) and {floor / args.jobs:.1f} s of an ideal "
                f"jobs={args.jobs} pass ({case.par:.1f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
