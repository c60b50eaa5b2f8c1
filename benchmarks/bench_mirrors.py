"""Benchmark of ``update_mirrors`` (issue 4, mirror throughput). A script, not a test.

It creates N small local git repositories, mirrors them once (the baseline clone), then
times update passes over the N mirrors with nothing new: ``jobs=8`` (parallel) against
``jobs=1`` (sequential), alternating, several runs each, and prints the medians and their
ratio. Each pass does what production does per mirror: read the recorded refs, ``git fetch
--prune``, read the refs again, compare.

Usage::

    .venv/bin/python benchmarks/bench_mirrors.py [--repos 200] [--runs 3] [--jobs 8]
        [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anybox_ci.changes.layout import Remote  # noqa: E402
from anybox_ci.changes.update import update_mirrors  # noqa: E402

GIT_ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="Bench",
    GIT_AUTHOR_EMAIL="bench@example.com",
    GIT_COMMITTER_NAME="Bench",
    GIT_COMMITTER_EMAIL="bench@example.com",
)


def make_repos(base: Path, count: int) -> list[Remote]:
    """One small repository (3 commits, 2 branches), copied ``count`` times."""
    template = base / "template"
    template.mkdir(parents=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["commit", "-q", "--allow-empty", "-m", "one"],
        ["commit", "-q", "--allow-empty", "-m", "two"],
        ["branch", "stable"],
        ["commit", "-q", "--allow-empty", "-m", "three"],
    ):
        subprocess.run(["git", *args], cwd=template, env=GIT_ENV, check=True)
    remotes = []
    for i in range(count):
        repo = base / "sources" / f"repo{i:03d}"
        shutil.copytree(template, repo, symlinks=True)
        remotes.append(Remote("git", str(repo)))
    return remotes


def timed_pass(remotes: list[Remote], root: Path, jobs: int) -> float:
    started = time.perf_counter()
    report = update_mirrors(remotes, root, jobs=jobs)
    elapsed = time.perf_counter() - started
    if report.failed or report.changes:
        raise SystemExit(f"unexpected: {len(report.failed)} failed, {len(report.changes)} changes")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-mirrors-"))
    try:
        started = time.perf_counter()
        remotes = make_repos(base, args.repos)
        print(f"created {args.repos} repositories in {time.perf_counter() - started:.1f} s")
        root = base / "mirrors"
        started = time.perf_counter()
        report = update_mirrors(remotes, root, jobs=args.jobs)
        assert not report.failed, report.failed[:3]
        print(f"first pass (clone) jobs={args.jobs}: {time.perf_counter() - started:.2f} s")
        parallel, sequential = [], []
        for run in range(args.runs):
            parallel.append(timed_pass(remotes, root, args.jobs))
            sequential.append(timed_pass(remotes, root, 1))
            print(
                f"run {run + 1}: jobs={args.jobs} {parallel[-1]:.2f} s, "
                f"jobs=1 {sequential[-1]:.2f} s"
            )
        par, seq = statistics.median(parallel), statistics.median(sequential)
        print(
            f"update-mirrors over {args.repos} mirrors, nothing new "
            f"(median of {args.runs}, {os.cpu_count()} CPUs): "
            f"jobs={args.jobs} {par:.2f} s, jobs=1 {seq:.2f} s, speed-up x{seq / par:.1f}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
