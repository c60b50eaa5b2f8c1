"""Per-build overhead of the framework: a build through the master against the same commands
run by hand. A script, not a test: it prints figures.

A real master, one real worker and a throwaway PostgreSQL 15 build a trivial buildout. It has
one part, zc.recipe.egg installing ``six``. Its test imports ``six`` and asks the server for
its version. The first build fills the worker's caches (cold). Then each round runs, in turn:

- **through the master**: a forced build, timed by this script from the force request until
  the buildset is complete (polled every ``--poll`` seconds);
- **by hand**: the same work as plain subprocesses. The baseline replays every command the
  worker ran in the last build. Each command's argv, working directory and full environment
  come from the header the worker writes in the step's log, so they are the same venv
  bootstrap, the same ``bin/buildout`` options and caches, create db, test and drop db, and the
  same git fetch. Each runs in the same folders with the same warm caches, and the utilities
  bundle is copied the way the master sends it. Nothing of the framework runs: no scheduler,
  no step setup, no master round trips, no log streaming, no database writes.

Overhead per build = build through the master - hand run; medians of ``--warm-runs`` rounds.
It is split in two. The commands' own time as the worker measured it (its ``elapsedTime=``
lines) minus the hand run gives the cost of running a command through the worker. The rest is
scheduling and step bookkeeping.

REST timestamps (``started_at``/``complete_at`` of builds and steps) are whole seconds, so
they are printed for reference only. A sub-second step shows as 0 or 1 s there. The figures
come from the worker's sub-second ``elapsedTime`` and from this script's clock. Timings of the
master also include this script's polling (one REST request every ``--poll`` seconds).

    .venv/bin/python benchmarks/bench_build.py [--warm-runs 5] [--poll 0.1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anybox_ci.devtools import localmaster as localrun
from anybox_ci.devtools.pgcluster import Cluster, ensure_binaries

BUILDER = "trivial-pg15"
TRIVIAL_BUILDOUT = """[buildout]
parts = tools
newest = false

[tools]
recipe = zc.recipe.egg
eggs = six
interpreter = py
"""
#: the cold build is mostly package downloads; the earlier target of this script
COLD_WARM_TARGET = 3.0


# ---------------------------------------------------------------- worker log headers


@dataclass
class Command:
    """One command as the worker ran it, from the header of a step's log."""

    step: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    #: the worker's own measure of the command (seconds)
    elapsed: float | None = None


def _text(item: str | bytes) -> str:
    return item.decode() if isinstance(item, bytes) else item


def parse_headers(step: str, log: str) -> list[Command]:
    """The commands of a step log: `` in dir``, `` argv:``, `` environment:``, ``elapsedTime=``.

    The worker writes these header lines before (and after) each command it runs."""
    commands: list[Command] = []
    cwd: str | None = None
    current: Command | None = None
    env: dict[str, str] | None = None
    for line in log.splitlines():
        if env is not None:
            if line.startswith("  ") and "=" in line:
                key, _, value = line[2:].partition("=")
                env[key] = value
                continue
            env = None
        if line.startswith(" in dir "):
            cwd = line[len(" in dir ") :].split(" (timeout")[0]
        elif line.startswith(" argv: "):
            argv = [_text(a) for a in ast.literal_eval(line[len(" argv: ") :])]
            current = Command(step, argv, cwd or ".", {})
            commands.append(current)
        elif line.startswith(" environment:") and current is not None:
            env = current.env
        elif line.startswith("elapsedTime=") and current is not None:
            current.elapsed = float(line.split("=", 1)[1])
    return commands


# ---------------------------------------------------------------- the hand run


@dataclass
class Transfer:
    """A file the master sends to the worker (FileDownload)."""

    step: str
    source: Path
    dest: Path


@dataclass
class HandRun:
    """The same work as a build, without the framework."""

    actions: list[Command | Transfer] = field(default_factory=list)

    def run(self) -> dict[str, float]:
        """Run every action in order; seconds per step."""
        times: dict[str, float] = {}
        for action in self.actions:
            start = time.perf_counter()
            if isinstance(action, Transfer):
                shutil.copyfile(action.source, action.dest)
            else:
                proc = subprocess.run(
                    action.argv,
                    cwd=action.cwd,
                    env=action.env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                )
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"hand run of {action.step} failed: {action.argv}\n"
                        f"{proc.stdout.decode(errors='replace')}"
                        f"{proc.stderr.decode(errors='replace')}"
                    )
            times[action.step] = times.get(action.step, 0.0) + time.perf_counter() - start
        return times


def transfers(master_dir: Path, builder_dir: Path) -> list[Transfer]:
    """The FileDownload steps of the builder, as the configurator generates them."""
    from buildbot.steps.transfer import FileDownload

    from anybox_ci.configurator import AnyboxConfigurator

    config: dict[str, Any] = {}
    AnyboxConfigurator(master_dir).configure(config)
    builder = next(b for b in config["builders"] if b.name == BUILDER)
    result = []
    for step in builder.factory.steps:
        if issubclass(step.step_class, FileDownload):
            kw = step.kwargs
            dest = builder_dir / kw.get("workdir", "build") / kw["workerdest"]
            result.append(Transfer(kw["name"], Path(kw["mastersrc"]), dest))
    return result


# ---------------------------------------------------------------- builds


@dataclass
class Build:
    wall: float
    rest_total: int
    #: step name -> complete_at - started_at, in build order
    rest_steps: dict[str, int]
    commands: list[Command]

    def replay(self, sent: Sequence[Transfer]) -> HandRun:
        """This build's work in its step order: its commands, and the files sent."""
        by_step = {t.step: t for t in sent}
        actions: list[Command | Transfer] = []
        for name in self.rest_steps:
            if name in by_step:
                actions.append(by_step[name])
            actions += [c for c in self.commands if c.step == name]
        return HandRun(actions)

    @property
    def worker_time(self) -> float:
        return sum(c.elapsed or 0.0 for c in self.commands)

    def worker_steps(self) -> dict[str, float]:
        result: dict[str, float] = {}
        for c in self.commands:
            result[c.step] = result.get(c.step, 0.0) + (c.elapsed or 0.0)
        return result


def run_build(master: localrun.Master, poll: float) -> Build:
    start = time.perf_counter()
    bsid = master.force(BUILDER)
    while not master.get(f"buildsets/{bsid}")["buildsets"][0]["complete"]:
        time.sleep(poll)
    wall = time.perf_counter() - start
    build = master.builds(BUILDER)[-1]
    if build["results"] != 0:
        raise RuntimeError(f"build failed: {build['state_string']}\n{master.log_tail()}")
    commands: list[Command] = []
    rest_steps: dict[str, int] = {}
    for step in master.steps(build["buildid"]):
        if step["complete_at"] is not None and step["started_at"] is not None:
            rest_steps[step["name"]] = step["complete_at"] - step["started_at"]
        else:  # skipped (doStepIf)
            rest_steps[step["name"]] = 0
        logs = master.get(f"steps/{step['stepid']}/logs")["logs"]
        if any(log["slug"] == "stdio" for log in logs):
            raw = master.raw(f"steps/{step['stepid']}/logs/stdio/raw").decode(errors="replace")
            commands += parse_headers(step["name"], raw)
    return Build(wall, build["complete_at"] - build["started_at"], rest_steps, commands)


# ---------------------------------------------------------------- main


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--keep", type=Path, help="work here and keep everything")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return bench(args.keep, args)
    with tempfile.TemporaryDirectory(prefix="anybox-bench-") as tmp:
        return bench(Path(tmp), args)


def bench(root: Path, args: argparse.Namespace) -> int:
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}", flush=True)
    cluster = Cluster(ensure_binaries(15), root / "pg").start()
    repo = root / "trivial"
    repo.mkdir()
    (repo / "buildout.cfg").write_text(TRIVIAL_BUILDOUT)
    localrun.git(repo, "init", "-q", "-b", "main")
    localrun.git(repo, "add", "-A")
    localrun.git(repo, "commit", "-q", "-m", "trivial buildout")
    manifest = (
        f"[trivial]\nbuildout = git file://{repo} main buildout.cfg\n"
        "build-for = postgresql == 15\npost-buildout-steps = test-command\n"
        'test-command = bin/py -c "import six, subprocess; '
        "subprocess.run(['psql', '-XAtc', 'SELECT version()'], check=True)\"\n"
    )
    workers = (
        f"[bench]\npassword = secret:worker-bench\ncapability =\n    "
        f"{localrun.offer_line(cluster)}\n"
    )
    master = localrun.Master(root / "master")
    master.create(manifest, workers, secrets={"worker-bench": "bench-pw"})
    worker = localrun.WorkerProcess(root / "worker", "bench", "bench-pw", master.pb_port)
    builds: list[Build] = []
    hand: list[dict[str, float]] = []
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"bench"}, 60, "worker")
        cold = run_build(master, args.poll)
        print(f"cold build (empty caches): {cold.wall:.2f} s", flush=True)
        sent = transfers(master.basedir, root / "worker" / BUILDER)
        for run in range(1, args.warm_runs + 1):
            builds.append(run_build(master, args.poll))
            # by hand right after, in the same folders: the caches are as warm
            hand.append(builds[-1].replay(sent).run())
            print(
                f"round {run}: through the master {builds[-1].wall:.2f} s "
                f"(worker-measured commands {builds[-1].worker_time:.2f} s), "
                f"by hand {sum(hand[-1].values()):.2f} s",
                flush=True,
            )
    finally:
        worker.stop()
        master.stop()
        cluster.stop()
    report(cold, builds, hand, args)
    return 0 if cold.wall / _median([b.wall for b in builds]) >= COLD_WARM_TARGET else 1


def report(
    cold: Build, builds: list[Build], hand: list[dict[str, float]], args: argparse.Namespace
) -> None:
    last = builds[-1]
    print("\ncommands replayed by hand (from the worker's log headers of the last build):")
    for c in last.commands:
        shown = " ".join(c.argv)
        print(f"  [{c.step}] {shown[:110]}{'...' if len(shown) > 110 else ''}")

    steps = list(dict.fromkeys([*last.rest_steps, *hand[-1]]))
    width = max(len(name) for name in steps)
    print(f"\nper step, medians of {len(builds)} (REST: whole seconds, for reference only)")
    print(f"  {'step':<{width}} {'REST':>5} {'worker':>8} {'by hand':>8}")
    for name in steps:
        rest = _median([b.rest_steps.get(name, 0) for b in builds])
        work = _median([b.worker_steps().get(name, 0.0) for b in builds])
        by_hand = _median([h.get(name, 0.0) for h in hand])
        print(f"  {name:<{width}} {rest:>4.0f}s {work:>7.2f}s {by_hand:>7.2f}s")

    walls = [b.wall for b in builds]
    hands = [sum(h.values()) for h in hand]
    workers = [b.worker_time for b in builds]
    overheads = [w - h for w, h in zip(walls, hands, strict=True)]
    in_commands = [w - h for w, h in zip(workers, hands, strict=True)]
    # medians of each series do not add up: the second part is the remainder
    overhead, through_worker = _median(overheads), _median(in_commands)
    outside = overhead - through_worker
    rest_total = _median([b.rest_total for b in builds])
    print(
        f"\nwarm builds, medians of {len(builds)} rounds (this script's clock; it polls "
        f"every {args.poll:.2f} s)"
    )
    print(f"  through the master (force -> buildset complete): {_median(walls):6.2f} s")
    print(f"  REST build duration (whole seconds):             {rest_total:6.0f} s")
    print(f"  the same commands by hand (baseline):            {_median(hands):6.2f} s")
    print(f"  framework overhead per build (master - hand):    {overhead:6.2f} s")
    print(f"    running the commands through the worker:       {through_worker:6.2f} s")
    print(
        f"    the rest: scheduling, step setup, bookkeeping: {outside:6.2f} s "
        f"({outside / len(last.rest_steps):.2f} s for each of the {len(last.rest_steps)} steps)"
    )
    ratio = cold.wall / _median(walls)
    verdict = "PASS" if ratio >= COLD_WARM_TARGET else "MISS"
    print(
        f"\ncold build {cold.wall:.2f} s / warm {_median(walls):.2f} s = {ratio:.1f}x "
        f"(target >= {COLD_WARM_TARGET:.0f}x) -> {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
