"""A real Odoo cell: cold build, warm build, and the floor under them. A script: it prints
figures.

The real Odoo 18 sample (``buildouts/samples/odoo``, Odoo from ``ANYBOX_CI_ODOO_SRC``, by
default the trimmed archive in ``shared/odoo/`` beside the checkout) is built as
``anybox-ci run`` builds it: its manifest, the configurator of master.cfg.sample, a real
master, one real worker, a throwaway PostgreSQL (``--pg``, default 15). Three figures,
medians of ``--runs`` each:

- **cold**: the first build of a fresh worker: empty eggs and download caches, no
  bootstrap virtualenv, an empty pip cache (``PIP_CACHE_DIR``); a new master, worker and
  cluster for each run (their start-up is not timed);
- **warm**: the same cell built again on the last of those workers, its caches full;
- **floor**: right after each warm build, in its folder and with its environment (both
  read from the worker's log headers), the work no CI can avoid, by hand: create the
  database as the build did, run ``bin/test_openerp -i anybox_ci_sample -d DB`` (Odoo
  installs ``base`` and the addon and runs its 4 tests), drop the database.

Builds are timed by this script's clock from the force request until the buildset is
complete. Targets: warm/floor <= 1.2 (a warm build costs little more than Odoo itself),
cold/warm >= 5 (the caches pay). Where one is missed, the steps of the builds (REST
timestamps, whole seconds; the worker's own ``elapsedTime``) show where the time goes.

    .venv/bin/python benchmarks/bench_odoo.py [--pg 15] [--runs 3] [--keep DIR]

``--runs 1`` is the quick mode (about 5 minutes on 2 cores; the full one about 20).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench_build import Command, parse_headers

from anybox_ci.devtools.localmaster import Master, make_sample_repo
from anybox_ci.devtools.localrun import LocalRun, cache_root
from anybox_ci.devtools.odoosamples import configured_src, odoo_manifest, odoo_source

WARM_FLOOR_TARGET = 1.2
COLD_WARM_TARGET = 5.0
TEST_STEP = "install_modules_test"
ODOO_RESULT = "0 failed, 0 error(s) of 4 tests"


@dataclass
class Build:
    wall: float
    #: step name -> complete_at - started_at (whole seconds), in build order
    rest_steps: dict[str, int]
    commands: list[Command]

    def worker_steps(self) -> dict[str, float]:
        """Step name -> the worker's own measure of its commands (seconds)."""
        result: dict[str, float] = {}
        for c in self.commands:
            result[c.step] = result.get(c.step, 0.0) + (c.elapsed or 0.0)
        return result

    def command(self, step: str) -> Command:
        found = [c for c in self.commands if c.step == step]
        if len(found) != 1:
            raise RuntimeError(f"step {step}: {len(found)} commands in the log headers")
        return found[0]


def run_build(master: Master, cell: str, poll: float) -> Build:
    start = time.perf_counter()
    bsid = master.force(cell)
    while not master.get(f"buildsets/{bsid}")["buildsets"][0]["complete"]:
        time.sleep(poll)
    wall = time.perf_counter() - start
    build = master.builds(cell)[-1]
    if build["results"] != 0:
        raise RuntimeError(f"{cell} failed: {build['state_string']}\n{master.log_tail()}")
    rest_steps: dict[str, int] = {}
    commands: list[Command] = []
    for step in master.steps(build["buildid"]):
        begun, ended = step["started_at"], step["complete_at"]
        rest_steps[step["name"]] = ended - begun if begun is not None and ended else 0
        logs = master.get(f"steps/{step['stepid']}/logs")["logs"]
        if any(log["slug"] == "stdio" for log in logs):
            raw = master.raw(f"steps/{step['stepid']}/logs/stdio/raw").decode(errors="replace")
            commands += parse_headers(step["name"], raw)
    return Build(wall, rest_steps, commands)


def _by_hand(argv: Sequence[str], like: Command) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        cwd=like.cwd,
        env=like.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"by hand: {' '.join(argv)} exited {proc.returncode}\n{proc.stdout}")
    return seconds, proc.stdout


def floor(build: Build) -> dict[str, float]:
    """The database and Odoo commands of ``build``, run by hand: seconds for each."""
    create, test, drop = (build.command(s) for s in ("create_db", TEST_STEP, "drop_db"))
    # the step runs Odoo through the log analyser: ``... odoo_log run --log F -- ODOO...``
    odoo = test.argv[test.argv.index("--") + 1 :]
    times = {"create_db": _by_hand(create.argv, create)[0]}
    times["odoo"], out = _by_hand(odoo, test)
    if ODOO_RESULT not in out:
        raise RuntimeError(f"by hand, Odoo did not log {ODOO_RESULT!r}:\n{out[-3000:]}")
    times["drop_db"] = _by_hand(drop.argv, drop)[0]
    return times


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg", type=int, default=15, metavar="MAJOR")
    parser.add_argument("--runs", type=int, default=3, help="of each figure (1: quick mode)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls")
    parser.add_argument("--keep", type=Path, help="work here and keep everything")
    args = parser.parse_args(argv)
    src, origin = configured_src(os.environ)
    if not src.exists():
        print(f"bench_odoo: no Odoo source: {src} ({origin}) does not exist", file=sys.stderr)
        return 2
    try:
        odoo_src = odoo_source(src, cache_root() / "odoo", print)
    except ValueError as exc:
        print(f"bench_odoo: {exc}", file=sys.stderr)
        return 2
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return bench(args.keep, odoo_src, args)
    with tempfile.TemporaryDirectory(prefix="anybox-bench-odoo-") as tmp:
        return bench(Path(tmp), odoo_src, args)


def bench(root: Path, odoo_src: Path, args: argparse.Namespace) -> int:
    cell = f"odoo-pg{args.pg}"
    print(
        f"{cell}: {args.runs} run(s) of each figure; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    repo = make_sample_repo("odoo", root / "repos", with_fake_odoo=False)
    manifest = root / "buildouts" / "MANIFEST.cfg"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        odoo_manifest({"odoo": repo}, odoo_src, {"odoo": f"postgresql == {args.pg}"})
    )
    colds: list[Build] = []
    warms: list[Build] = []
    floors: list[dict[str, float]] = []
    with ExitStack() as keep:
        for run in range(1, args.runs + 1):
            stack = ExitStack()
            folder = root / f"cold{run}"
            session = LocalRun(
                root=folder,
                manifests=[manifest],
                majors=[args.pg],
                max_builds=1,
                title="bench_odoo",
                say=lambda _text: None,
                # a fresh worker: its own empty eggs, downloads and bootstrap venv
                buildout_cache=None,
                env={"PIP_CACHE_DIR": str(folder / "pip-cache")},
            )
            with stack:
                master = stack.enter_context(session.running())
                colds.append(run_build(master, cell, args.poll))
                print(f"cold {run}: {colds[-1].wall:7.1f} s", flush=True)
                if run == args.runs:
                    keep.enter_context(stack.pop_all())  # the warm runs use this worker
        for run in range(1, args.runs + 1):
            warms.append(run_build(master, cell, args.poll))
            floors.append(floor(warms[-1]))
            print(
                f"warm {run}: {warms[-1].wall:7.1f} s   floor: {sum(floors[-1].values()):6.1f} s "
                f"({', '.join(f'{k} {v:.1f} s' for k, v in floors[-1].items())})",
                flush=True,
            )
    return report(colds, warms, floors)


def report(colds: list[Build], warms: list[Build], floors: list[dict[str, float]]) -> int:
    cold, warm = med([b.wall for b in colds]), med([b.wall for b in warms])
    floor_total = med([sum(f.values()) for f in floors])
    n = len(warms)
    print(f"\nmedians of {n} run(s):")
    print(f"  cold build (fresh caches):                            {cold:7.1f} s")
    print(f"  warm build:                                           {warm:7.1f} s")
    print(f"  floor (create db + bin/test_openerp + drop db by hand): {floor_total:5.1f} s")
    warm_floor, cold_warm = warm / floor_total, cold / warm
    ok_floor, ok_cold = warm_floor <= WARM_FLOOR_TARGET, cold_warm >= COLD_WARM_TARGET
    print(
        f"\nwarm/floor = {warm_floor:.2f} (target <= {WARM_FLOOR_TARGET}) -> "
        f"{'PASS' if ok_floor else 'MISS'}"
    )
    print(
        f"cold/warm  = {cold_warm:.2f} (target >= {COLD_WARM_TARGET:.0f}) -> "
        f"{'PASS' if ok_cold else 'MISS'}"
    )
    if not (ok_floor and ok_cold):
        steps_table(colds, warms, floors)
    return 0 if ok_floor and ok_cold else 1


def steps_table(colds: list[Build], warms: list[Build], floors: list[dict[str, float]]) -> None:
    """Where the time goes: each step of the builds, medians (REST: whole seconds)."""
    names = list(dict.fromkeys([*colds[-1].rest_steps, *warms[-1].rest_steps]))
    width = max(len(n) for n in names)
    print("\nper step, medians (REST: whole seconds; worker: its elapsedTime)")
    print(f"  {'step':<{width}} {'cold REST':>9} {'worker':>8} {'warm REST':>9} {'worker':>8}")
    for name in names:
        cells = []
        for builds in (colds, warms):
            rest = med([b.rest_steps.get(name, 0) for b in builds])
            work = med([b.worker_steps().get(name, 0.0) for b in builds])
            cells += [f"{rest:8.0f}s", f"{work:7.1f}s"]
        print(f"  {name:<{width}} {cells[0]:>9} {cells[1]:>8} {cells[2]:>9} {cells[3]:>8}")
    for label, builds in (("cold", colds), ("warm", warms)):
        in_steps = med([sum(b.worker_steps().values()) for b in builds])
        wall = med([b.wall for b in builds])
        print(
            f"  {label}: commands {in_steps:.1f} s of {wall:.1f} s; outside the commands "
            f"(scheduling, step setup, transfers): {wall - in_steps:.1f} s"
        )
    print(
        "  floor by hand: "
        + ", ".join(f"{k} {med([f[k] for f in floors]):.1f} s" for k in floors[0])
    )


if __name__ == "__main__":
    sys.exit(main())
