"""Benchmark of the configurator against an equivalent static master.cfg. A script, not a test:
it prints figures.

Two synthetic masters (see ``_synthetic.py``):

- **best case**: one shared buildout file and one requirement shape, repeated; 50 workers.
  Every cache of the configurator hits.
- **realistic**: one buildout file per section, extending shared local bases; ``inherit``
  chains of 2 and 3 levels; ``build-for``/``build-requires`` with ``OR``, ``!=``, ranges and
  a second capability; 2 to 4 watch lines per section (own and shared repositories); 200
  workers with 2 to 4 capabilities each. About 4 cells per section.

The baseline is a static master.cfg built by introspecting what ``configure()`` generated (see
``_staticmaster.py``). It is master.cfg.sample with the configurator line replaced by literal
Python that builds the same objects: the same step classes and constructor arguments, the same
renderables and shared steps, one ChangeFilter over every watch per buildout, and the cyclic
GC off around them, as ``configure()`` has it. Before any timing, the script executes that
file and compares every object with the generated one. It stops if they differ. The previous
baseline (plain ShellCommands, a filter on the first watch only, the GC on) is still measured,
as "old", to show how far it was off.

Measured, medians of ``--runs`` (wall and CPU time):

a. ``configure()`` in process on the realistic master at each ``--sizes`` (caches warm, as a
   reconfig of a running master): ms per section and max/min ratio (linear growth);
b. at ``--sections``, for both masters:
   - ``configure()`` in process, against executing the static master.cfg in process; also
     after editing one section, and with nothing to reuse from the previous configuration
     (``render.memo`` emptied: what a master's start pays);
   - the first ``configure()`` in a fresh process (cold caches, imports done), against the
     first execution of the static file in a fresh process;
c. ``buildbot checkconfig`` on the generated master and on both static ones, alternating
   (compiling a static file of megabytes of literals is printed apart: checkconfig pays it,
   a master.cfg written with loops would not).

Targets (realistic master): ``configure()`` <= 0.5 s at 1,000 sections (about 4,000 cells),
and ms per section from 250 to 2,000 sections within 25 % (max/min <= 1.25). On a miss, the
top functions of a cProfile of ``configure()`` are printed.

Usage::

    .venv/bin/python benchmarks/bench_configurator.py [--quick] [--sections 1000]
        [--sizes 250,500,1000,2000] [--runs 5] [--fresh-runs 5] [--checkconfig-runs 5]
        [--no-checkconfig] [--keep DIR] [--profile]

Verdicts use CPU time (wall time is printed beside it): see the first line of the output.

``--quick`` is a smoke run for CI (about 30 s on an idle machine): 200 sections, sizes 100
and 200, 3 runs, one fresh-process run and one checkconfig of each master. Its time verdict
compares against the target scaled to its size, so it is only a hint. It skips the old
baseline's checkconfig and the profile (``--profile`` brings the profile back).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _staticmaster  # noqa: E402
import _synthetic  # noqa: E402

#: configure() on the realistic master at 1,000 sections (about 4,000 cells)
TARGET_SECONDS = 0.5
TARGET_SECTIONS = 1000
#: linear growth: max/min of the time per section over the sizes
TARGET_RATIO = 1.25

MASTERS: dict[str, Callable[[Path, int], Path]] = {
    "best case": _synthetic.write_best_case,
    "realistic": _synthetic.write_realistic,
}

# ---------------------------------------------------------------- timing

#: (wall seconds, CPU seconds of this process or of its children)
Timing = tuple[float, float]


def timed(func: Callable[[], Any]) -> tuple[Timing, Any]:
    """Time ``func``, plus the young-generation collection it leaves pending.

    ``configure()`` (and the static files, which copy its policy) turn the cyclic GC off
    while they allocate, so the collection of all those objects happens at the caller's
    next allocation: Buildbot pays it right after, and so does the timing here."""
    gc.collect()  # garbage of the previous run is nobody's cost
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    gc.collect(0)
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def median(timings: Sequence[Timing]) -> Timing:
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def configure(master: Path) -> tuple[dict[str, Any], Any]:
    """The config dict, and the configurator: the caller frees both, outside any timing."""
    from anybox_ci.configurator import AnyboxConfigurator

    config_dict: dict[str, Any] = {}
    configurator = AnyboxConfigurator(master)
    configurator.configure(config_dict)
    if not config_dict.get("builders"):
        sys.exit(f"configure() generated no builder for {master}")
    return config_dict, configurator


def time_configure(master: Path, forget: bool = False) -> Timing:
    """``configure()`` as a reconfig runs it: what the previous one made is reused
    (``render.memo``); ``forget``: as the first configuration of a master process."""
    if forget:
        from anybox_ci.render import memo

        memo.forget()
    return timed(lambda: configure(master))[0]


def edit_one_section(master: Path, n: int) -> None:
    """Change one option of the first section, as an admin editing one buildout."""
    manifest = master / "buildouts" / "MANIFEST.cfg"
    text = manifest.read_text()
    prefix = "\nodoo-addons = "
    at = text.index(prefix) + len(prefix)
    manifest.write_text(f"{text[:at]}edited_{n}, {text[at:]}")


def time_exec(code: Any, static: Path) -> Timing:
    """Executing a compiled static master.cfg: what Buildbot does with master.cfg."""
    namespace = {"basedir": str(static), "__file__": str(static / "master.cfg")}
    return timed(lambda: exec(code, namespace))[0]


def compile_static(static: Path) -> Any:
    path = static / "master.cfg"
    return compile(path.read_text(), str(path), "exec")


# ---------------------------------------------------------------- fresh processes


def child_main(kind: str, target: Path, warmup: Path) -> None:
    """In a fresh process: warm the imports on a tiny master, then time one run."""
    if kind == "configure":
        configure(warmup)
        timing = time_configure(target)
    else:
        time_exec(compile_static(warmup), warmup)
        timing = time_exec(compile_static(target), target)
    print(json.dumps({"wall": timing[0], "cpu": timing[1]}))


def time_fresh(kind: str, target: Path, warmup: Path) -> Timing:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(target), str(warmup)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"fresh-process run failed:\n{proc.stdout}{proc.stderr}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(data["wall"]), float(data["cpu"])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_checkconfig(master: Path) -> Timing:
    buildbot = Path(sys.executable).parent / "buildbot"
    wall, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(
        [str(buildbot) if buildbot.exists() else "buildbot", "checkconfig", str(master)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    timing = (time.perf_counter() - wall, _children_cpu() - cpu)
    if proc.returncode != 0:
        sys.exit(f"checkconfig {master} failed:\n{proc.stdout}{proc.stderr}")
    return timing


# ---------------------------------------------------------------- one master


@dataclass
class Figures:
    """One master at one size: ours and both baselines."""

    label: str
    sections: int
    cells: int
    configure: Timing
    static_exec: Timing
    legacy_exec: Timing
    fresh_configure: Timing | None = None
    fresh_static: Timing | None = None
    checkconfig: Timing | None = None
    checkconfig_static: Timing | None = None
    checkconfig_legacy: Timing | None = None
    #: compiling the static files: checkconfig pays it, a master.cfg written with loops
    #: instead of megabytes of literals would not
    static_compile: Timing = (0.0, 0.0)
    #: configure() after one section was edited, and with nothing to reuse (a start)
    edited: Timing = (0.0, 0.0)
    no_memo: Timing = (0.0, 0.0)
    legacy_compile: Timing = (0.0, 0.0)


def prepare(label: str, work: Path, sections: int) -> tuple[Path, Path, Path, dict[str, Any]]:
    """The generated master, its equivalent static master (verified) and the old one."""
    slug = label.replace(" ", "-")
    generated = MASTERS[label](work / f"{slug}-{sections}", sections)
    config_dict = configure(generated)[0]
    static = _staticmaster.write_equivalent(
        work / f"{slug}-{sections}-static", generated, config_dict
    )
    problems = _staticmaster.verify(static, config_dict)
    if problems:
        sys.exit(f"the static {label} master is not equivalent:\n" + "\n".join(problems))
    legacy = _staticmaster.write_legacy(work / f"{slug}-{sections}-old", generated, config_dict)
    return generated, static, legacy, config_dict


def measure(label: str, work: Path, args: argparse.Namespace) -> Figures:
    n = args.sections
    generated, static, legacy, config_dict = prepare(label, work, n)
    cells, workers = len(config_dict["builders"]), len(config_dict["workers"])
    del config_dict  # live objects would slow every later collection
    size = (static / "master.cfg").stat().st_size / 1024
    print(f"\n[{label}] {n} sections, {cells} cells, {workers} workers")
    print(f"  the static master.cfg ({size:.0f} KiB) builds the same objects: verified")

    static_code, legacy_code = compile_static(static), compile_static(legacy)
    ours: list[Timing] = []
    new: list[Timing] = []
    old: list[Timing] = []
    time_exec(static_code, static)  # warm-up, not counted
    time_exec(legacy_code, legacy)
    no_memo: list[Timing] = []
    edited: list[Timing] = []
    for i in range(args.runs):  # interleaved, so that a busy moment hits all of them
        ours.append(time_configure(generated))
        new.append(time_exec(static_code, static))
        old.append(time_exec(legacy_code, legacy))
        edit_one_section(generated, i)
        edited.append(time_configure(generated))
        no_memo.append(time_configure(generated, forget=True))
    figures = Figures(label, n, cells, median(ours), median(new), median(old))
    figures.no_memo, figures.edited = median(no_memo), median(edited)
    figures.static_compile = median([timed(lambda: compile_static(static))[0] for _ in ours])
    figures.legacy_compile = median([timed(lambda: compile_static(legacy))[0] for _ in ours])

    warm_slug = label.replace(" ", "-") + "-warmup"
    warm_generated, warm_static, _, _ = prepare(label, work / warm_slug, 3)
    fresh_ours: list[Timing] = []
    fresh_new: list[Timing] = []
    for _ in range(args.fresh_runs):
        fresh_ours.append(time_fresh("configure", generated, warm_generated))
        fresh_new.append(time_fresh("static", static, warm_static))
    figures.fresh_configure, figures.fresh_static = median(fresh_ours), median(fresh_new)

    print(f"  in process, medians of {args.runs}:")
    print(f"    configure(), nothing changed         {_both(figures.configure)}")
    print(f"    configure(), one section edited      {_both(figures.edited)}")
    print(f"    configure(), nothing reused (a start){_both(figures.no_memo)}")
    print(f"    static master.cfg, equivalent (new)  {_both(figures.static_exec)}")
    print(f"    static master.cfg, previous (old)    {_both(figures.legacy_exec)}")
    print(f"  first run in a fresh process (cold caches), medians of {args.fresh_runs}:")
    print(f"    configure()                          {_both(figures.fresh_configure)}")
    print(f"    static master.cfg, equivalent (new)  {_both(figures.fresh_static)}")

    if args.checkconfig_runs:
        masters = {"ours": generated, "new": static, "old": legacy}
        if args.quick:  # the old baseline's checkconfig is for the full report only
            del masters["old"]
        runs: dict[str, list[Timing]] = {key: [] for key in masters}
        if args.checkconfig_runs > 1:
            for path in masters.values():
                time_checkconfig(path)  # warm-up, not counted
        for _ in range(args.checkconfig_runs):
            for key, path in masters.items():
                runs[key].append(time_checkconfig(path))
        figures.checkconfig = median(runs["ours"])
        figures.checkconfig_static = median(runs["new"])
        figures.checkconfig_legacy = median(runs["old"]) if "old" in runs else None
        print(f"  buildbot checkconfig, medians of {args.checkconfig_runs} alternating runs:")
        print(f"    generated master                     {_both(figures.checkconfig)}")
        print(
            f"    static master.cfg, equivalent (new)  {_both(figures.checkconfig_static)}"
            f"  (compiling it: {_ms(figures.static_compile[1])} CPU)"
        )
        if figures.checkconfig_legacy is not None:
            print(
                f"    static master.cfg, previous (old)    {_both(figures.checkconfig_legacy)}"
                f"  (compiling it: {_ms(figures.legacy_compile[1])} CPU)"
            )
    return figures


# ---------------------------------------------------------------- growth


def growth(work: Path, sizes: Sequence[int], runs: int) -> dict[int, Timing]:
    print(
        f"\n(a) growth, realistic master: configure() in process, medians of {runs} "
        "(caches warm, as in a reconfig);\n    'added' is the CPU cost of each section added "
        "since the previous size"
    )
    print(f"  {'sections':>8} {'cells':>6} {'wall':>9} {'CPU':>9} {'CPU/section':>12} {'added':>9}")
    result: dict[int, Timing] = {}
    previous: int | None = None
    for n in sizes:
        master = _synthetic.write_realistic(work / f"growth-{n}", n)
        cells = len(configure(master)[0]["builders"])  # warm-up, not counted
        result[n] = median([time_configure(master) for _ in range(runs)])
        added = "-"
        if previous is not None:
            marginal = (result[n][1] - result[previous][1]) / (n - previous)
            added = f"{marginal * 1000:.2f} ms"
        print(
            f"  {n:>8} {cells:>6} {_ms(result[n][0]):>9} {_ms(result[n][1]):>9} "
            f"{result[n][1] / n * 1000:>9.2f} ms {added:>9}"
        )
        shutil.rmtree(master, ignore_errors=True)
        previous = n
    return result


# ---------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _both(timing: Timing) -> str:
    return f"{_ms(timing[0]):>9} wall {_ms(timing[1]):>9} CPU"


def _pair(timing: Timing | None) -> str:
    return "-" if timing is None else f"{timing[0] * 1000:.0f}/{timing[1] * 1000:.0f}"


def table(all_figures: Sequence[Figures]) -> None:
    print(
        "\nold vs new baseline: medians, wall/CPU in ms; overhead = configure() minus the "
        "static file;\nratio = checkconfig of the generated master / of the static one (CPU); "
        "ratio* = the same without\ncompiling the static file (a master.cfg written with "
        "loops compiles in milliseconds)"
    )
    header = (
        f"  {'master':<10} {'baseline':<10} {'configure()':>12} {'static file':>12} "
        f"{'overhead':>11} {'x static':>8} {'checkconfig':>12} {'static':>12} {'ratio':>5} "
        f"{'ratio*':>6}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for f in all_figures:
        rows: list[tuple[str, Timing, Timing, Timing | None, Timing | None, Timing]] = [
            ("old", f.configure, f.legacy_exec, f.checkconfig, f.checkconfig_legacy,
             f.legacy_compile),
            ("new", f.configure, f.static_exec, f.checkconfig, f.checkconfig_static,
             f.static_compile),
        ]  # fmt: skip
        if f.fresh_configure and f.fresh_static:
            rows.append(("new, cold", f.fresh_configure, f.fresh_static, None, None, (0, 0)))
        for name, ours, base, check, check_base, compiling in rows:
            overhead = (ours[0] - base[0], ours[1] - base[1])
            ratio = ratio_star = "-"
            if check is not None and check_base is not None:
                ratio = f"{check[1] / check_base[1]:.2f}"
                ratio_star = f"{check[1] / (check_base[1] - compiling[1]):.2f}"
            print(
                f"  {f.label:<10} {name:<10} {_pair(ours):>12} {_pair(base):>12} "
                f"{_pair(overhead):>11} {ours[1] / base[1]:>7.1f}x "
                f"{_pair(check):>12} {_pair(check_base):>12} {ratio:>5} {ratio_star:>6}"
            )


def profile(master: Path, top: int) -> str:
    configure(master)  # warm imports and caches
    profiler = cProfile.Profile()
    profiler.enable()
    kept = configure(master)  # freed after the profile, as in the timings
    profiler.disable()
    del kept
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return buffer.getvalue()


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run (about 30 s)")
    parser.add_argument("--sections", type=int, help="size of (b) and (c); default 1000")
    parser.add_argument("--sizes", help="sizes of (a); default 250,500,1000,2000")
    parser.add_argument("--runs", type=int, help="in-process runs per figure; default 5")
    parser.add_argument("--fresh-runs", type=int, help="fresh-process runs; default 5")
    parser.add_argument("--checkconfig-runs", type=int, help="default 5")
    parser.add_argument("--no-checkconfig", action="store_true")
    parser.add_argument("--keep", type=Path, help="write the masters here and keep them")
    parser.add_argument("--profile", action="store_true", help="profile configure() anyway")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "sections": 200 if quick else TARGET_SECTIONS,
        "sizes": "100,200" if quick else "250,500,1000,2000",
        "runs": 3 if quick else 5,
        "fresh_runs": 1 if quick else 5,
        "checkconfig_runs": 1 if quick else 5,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.no_checkconfig:
        args.checkconfig_runs = 0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, target, warmup = args.child
        child_main(kind, Path(target), Path(warmup))
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="anybox-ci-bench-"))
    try:
        return run(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f}. Verdicts use CPU time: configure() is single-threaded "
        "work,\nso on an idle machine CPU time is its wall time, and other jobs disturb it "
        "much less."
    )
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    per_size = growth(work, sizes, args.runs)
    per_section = {n: t[1] / n for n, t in per_size.items()}
    spread = max(per_section.values()) / min(per_section.values())
    print(f"  CPU per section, max/min over {sizes[0]}..{sizes[-1]} sections: {spread:.2f}")

    print(f"\n(b, c) {args.sections} sections: configure() against the static baselines")
    all_figures = [measure(label, work, args) for label in MASTERS]
    table(all_figures)

    realistic = all_figures[-1]
    assert realistic.fresh_configure is not None
    scale = realistic.sections / TARGET_SECTIONS
    budget = TARGET_SECONDS * scale
    ok_warm = realistic.configure[1] <= budget
    ok_cold = realistic.fresh_configure[1] <= budget
    ok_linear = spread <= TARGET_RATIO
    print(f"\ntargets, realistic master (load average now {os.getloadavg()[0]:.1f})")
    if scale != 1:
        print(f"  (quick: the time target is scaled to {realistic.sections} sections: a hint)")
    for label, timing, ok in (
        ("in process", realistic.configure, ok_warm),
        ("first run in a fresh process", realistic.fresh_configure, ok_cold),
    ):
        print(
            f"  configure() <= {budget:.3f} s for {realistic.cells} cells, {label}: "
            f"{timing[1]:.3f} s CPU ({timing[0]:.3f} s wall) -> {_verdict(ok)}"
        )
    print(
        "  linear growth, CPU ms per section "
        + ", ".join(f"{n}: {per_section[n] * 1000:.2f}" for n in sizes)
        + f"; max/min {spread:.2f} <= {TARGET_RATIO} -> {_verdict(ok_linear)}"
    )
    if args.profile or not (args.quick or (ok_warm and ok_cold and ok_linear)):
        master = _synthetic.write_realistic(work / "profiled", realistic.sections)
        print(f"\nprofile of configure(), realistic master, {realistic.sections} sections")
        print(profile(master, 30 if args.profile else 10))
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
    return 0 if ok_warm and ok_cold and ok_linear else 1


if __name__ == "__main__":
    sys.exit(main())
