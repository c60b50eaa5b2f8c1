"""Benchmark of the configurator (issue 2, item 12). A script, not a test: it prints figures.

It generates a synthetic master directory: a manifest of N sections (standalone buildouts
sharing one small buildout.cfg, each with ``build-for = postgresql >= 13`` and a ``watch``
line), 50 workers offering PostgreSQL 13, 14, 15 and 16 between them (two versions each,
every version offered by 25 workers, hence 4 cells per section), and master.cfg copied
from the repository's master.cfg.sample. Then it measures:

a. the configurator's own time, in process: ``AnyboxConfigurator(dir).load()`` (read and
   plan) and the full ``configure(config_dict)`` (read, plan and render), for several N,
   to show linear growth;
b. ``buildbot checkconfig`` on the generated master (subprocess wall time);
c. ``buildbot checkconfig`` on an equivalent static master.cfg written out as literal
   Python by this script: same worker and builder names, same builder workers,
   properties and tags, one BuildFactory per section with as many ShellCommand steps as
   the generated factory has, one AnyBranchScheduler per section plus one
   ForceScheduler, and the same GitPollers.

Every figure is a median of several runs; ours and static checkconfig runs alternate.

Usage::

    .venv/bin/python benchmarks/bench_configurator.py [--sections 1000]
        [--sizes 250,500,1000,2000] [--runs 5] [--checkconfig-runs 5] [--keep DIR]
        [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_VERSIONS = ("13", "14", "15", "16")
N_WORKERS = 50
#: targets of issue 2, item 12
TARGET_SECONDS = 1.0
TARGET_RATIO = 1.1

BUILDOUT_CFG = """\
[buildout]
parts = openerp
versions = versions

[openerp]
recipe = anybox.recipe.odoo:server
version = git https://github.com/odoo/odoo.git odoo 17.0 depth=1
options.log_level = info

[versions]
zc.buildout = 4.1.4
"""


# ---------------------------------------------------------------- synthetic master


def _worker_versions(index: int) -> tuple[str, str]:
    """Two PostgreSQL versions per worker, so that each version has N_WORKERS / 2 workers."""
    return PG_VERSIONS[index % 4], PG_VERSIONS[(index + 1) % 4]


def _repo_count(sections: int) -> int:
    return max(1, sections // 10)


def write_master(root: Path, sections: int) -> Path:
    """A master directory with ``sections`` manifest sections and N_WORKERS workers."""
    if root.exists():
        shutil.rmtree(root)
    (root / "buildouts").mkdir(parents=True)
    (root / "secrets").mkdir()
    shutil.copy(REPO / "master.cfg.sample", root / "master.cfg")
    (root / "buildouts" / "buildout.cfg").write_text(BUILDOUT_CFG)

    repos = _repo_count(sections)
    manifest = [
        "# Synthetic manifest for benchmarks/bench_configurator.py",
        "[DEFAULT]",
        "db-steps = simple_create",
        "post-buildout-steps = install-modules-test",
        "build-category = bench",
        "",
    ]
    for i in range(sections):
        manifest += [
            f"[proj-{i:05d}]",
            "buildout = standalone buildout.cfg",
            "build-for = postgresql >= 13",
            f"watch = git https://git.example.com/addons-{i % repos:04d}.git 17.0",
            f"odoo-addons = mod_{i}",
            "",
        ]
    (root / "buildouts" / "MANIFEST.cfg").write_text("\n".join(manifest))

    workers = ["# Synthetic workers for benchmarks/bench_configurator.py"]
    for w in range(N_WORKERS):
        name = f"w{w:02d}"
        secret = root / "secrets" / f"worker-{name}"
        secret.write_text(f"pw-{name}\n")
        secret.chmod(0o600)  # SecretInAFile refuses files readable by others
        capabilities = [
            f"    postgresql {v} port={5400 + int(v)} bin=/usr/lib/postgresql/{v}/bin"
            for v in _worker_versions(w)
        ]
        workers += [
            f"[{name}]",
            f"password = secret:worker-{name}",
            "max_builds = 2",
            f"priority = {w % 3}",
            "capability =",
            *capabilities,
            "    python 3.11",
            "",
        ]
    (root / "workers.cfg").write_text("\n".join(workers))
    return root


# ---------------------------------------------------------------- timing

#: (wall seconds, CPU seconds); the CPU time is what this process (or its children) used,
#: which other jobs on a shared machine disturb less than the wall time
Timing = tuple[float, float]


def timed(func: Callable[[], Any]) -> tuple[Timing, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def median_timing(func: Callable[[], Timing], runs: int) -> Timing:
    timings = [func() for _ in range(runs)]
    return (
        statistics.median(t[0] for t in timings),
        statistics.median(t[1] for t in timings),
    )


def _configurator(master: Path) -> Any:
    from anybox_ci.configurator import AnyboxConfigurator

    return AnyboxConfigurator(master)


def time_load(master: Path) -> Timing:
    timing, loaded = timed(lambda: _configurator(master).load())
    if loaded.diagnostics.errors:
        sys.exit("\n".join(str(d) for d in loaded.diagnostics.errors))
    return timing


def configure(master: Path) -> dict[str, Any]:
    config_dict: dict[str, Any] = {}
    _configurator(master).configure(config_dict)
    return config_dict


def time_configure(master: Path) -> Timing:
    timing, config_dict = timed(lambda: configure(master))
    if not config_dict.get("builders"):
        sys.exit("configure() generated no builder")
    return timing


def time_static_exec(static: Path) -> Timing:
    """Executing the static master.cfg in process: the cost of the Buildbot objects alone."""
    path = static / "master.cfg"
    code = compile(path.read_text(), str(path), "exec")
    namespace: dict[str, Any] = {"basedir": str(static), "__file__": str(path)}
    timing, _ = timed(lambda: exec(code, namespace))
    return timing


# ---------------------------------------------------------------- static master.cfg


def _literal_step(index: int, step: Any) -> str:
    name = getattr(step, "kwargs", {}).get("name") or f"step_{index}"
    return (
        f"        steps.ShellCommand(name={name!r}, command=['bin/buildout', '-c', "
        f"'buildout.cfg', 'step-{index}'], workdir='build', env=ENV, "
        f"haltOnFailure=True, timeout=3600),"
    )


def write_static_master(root: Path, generated: Path) -> Path:
    """A hand-written-style master.cfg equivalent to what the configurator generates."""
    from anybox_ci.render.changes import codebases, watch_codebase

    configurator = _configurator(generated)
    config_dict: dict[str, Any] = {}
    configurator.configure(config_dict)
    buildouts = {b.name: b for b in configurator.loaded.config.buildouts}
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(generated / "secrets", root / "secrets")

    builders: list[Any] = config_dict["builders"]
    factories: dict[str, Any] = {}
    for b in builders:
        factories.setdefault(b.project, b.factory)

    out = [
        "# -*- python -*-",
        "# Static master.cfg written by benchmarks/bench_configurator.py: the same builders,",
        "# workers, schedulers and pollers as the generated one, spelled out literally.",
        "import os",
        "",
        "from buildbot.plugins import changes, schedulers, secrets, steps, util, worker",
        "",
        "c = BuildmasterConfig = {}",
        "c['title'] = 'static'",
        "c['titleURL'] = 'https://example.com/'",
        "c['buildbotURL'] = 'http://localhost:8010/'",
        "c['buildbotNetUsageData'] = None",
        "c['protocols'] = {'pb': {'port': 'tcp:9989'}}",
        "c['db'] = {'db_url': 'sqlite:///state.sqlite'}",
        "c['www'] = {",
        "    'port': 'tcp:8010',",
        "    'plugins': {'waterfall_view': {}, 'console_view': {}, 'grid_view': {}},",
        "}",
        "c['secretsProviders'] = [",
        "    secrets.SecretInAFile(dirname=os.path.join(basedir, 'secrets'))",
        "]",
        "ENV = {'ANYBOX_CI_DB': util.Property('testing_db', default='')}",
        "",
        "c['workers'] = [",
    ]
    for w in config_dict["workers"]:
        props = {k: v for k, (v, _src) in w.properties.asDict().items() if k != "workername"}
        out.append(
            f"    worker.Worker({w.workername!r}, util.Secret('worker-{w.workername}'), "
            f"max_builds={w.max_builds!r}, properties={props!r}),"
        )
    out += ["]", "", "c['change_source'] = ["]
    for p in config_dict["change_source"]:
        # a service keeps its constructor arguments for reconfiguration
        (repourl,), kw = p._config_args, p._config_kwargs
        out.append(
            f"    changes.GitPoller(repourl={repourl!r}, branches={kw['branches']!r}, "
            f"pollInterval={kw['pollInterval']!r}, workdir={kw['workdir']!r}, "
            f"pollAtLaunch=True, pollRandomDelayMax={kw['pollRandomDelayMax']!r}),"
        )
    out += ["]", "", "c['projects'] = ["]
    out += [f"    util.Project(name={project!r})," for project in factories]
    out += ["]", ""]
    for project, factory in factories.items():
        out.append(f"f_{project.replace('-', '_')} = util.BuildFactory([")
        out += [_literal_step(i, s) for i, s in enumerate(factory.steps)]
        out.append("])")
    out += ["", "c['builders'] = ["]
    for b in builders:
        out.append(
            f"    util.BuilderConfig(name={b.name!r}, workernames={list(b.workernames)!r}, "
            f"factory=f_{b.project.replace('-', '_')}, properties={dict(b.properties)!r}, "
            f"tags={b.tags!r}, project={b.project!r}),"
        )
    out += ["]", "", "c['schedulers'] = ["]
    watched = []
    for s in config_dict["schedulers"]:
        if s.name == "force":
            continue
        watches = buildouts[s.name.removeprefix("changes:")].all_watches
        watched += [w for w in watches if w not in watched]
        first = watches[0]
        out.append(
            f"    schedulers.AnyBranchScheduler(name={s.name!r}, builderNames="
            f"{list(s.builderNames)!r}, change_filter=util.ChangeFilter("
            f"repository={first.url!r}, branch={first.branch!r}), "
            f"codebases={codebases(watches)!r}),"
        )
    out += ["    schedulers.ForceScheduler(name='force', builderNames=["]
    out += [f"        {b.name!r}," for b in builders]
    out += ["    ], codebases=["]
    out += [
        f"        util.CodebaseParameter(codebase={watch_codebase(w)!r}, label={w.url!r}, "
        f"branch=util.StringParameter(name='branch', default={w.branch!r}), "
        f"revision=util.StringParameter(name='revision', default=''), "
        f"repository=util.FixedParameter(name='repository', default={w.url!r}), "
        f"project=util.FixedParameter(name='project', default='')),"
        for w in watched
    ]
    out += ["    ]),", "]", "", "CODEBASES = {"]
    out += [f"    ({w.url!r}, {w.branch!r}): {watch_codebase(w)!r}," for w in watched]
    out += [
        "}",
        "c['codebaseGenerator'] = lambda chdict: CODEBASES.get(",
        "    (chdict.get('repository') or '', chdict.get('branch') or ''), '')",
        "",
    ]
    (root / "master.cfg").write_text("\n".join(out))
    return root


# ---------------------------------------------------------------- checkconfig


def buildbot_bin() -> str:
    candidate = Path(sys.executable).parent / "buildbot"
    return str(candidate) if candidate.exists() else "buildbot"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_checkconfig(master: Path) -> Timing:
    wall, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(
        [buildbot_bin(), "checkconfig", str(master)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    timing = (time.perf_counter() - wall, _children_cpu() - cpu)
    if proc.returncode != 0:
        sys.exit(f"checkconfig {master} failed:\n{proc.stdout}{proc.stderr}")
    return timing


def time_compile(path: Path) -> float:
    source = path.read_text()
    start = time.perf_counter()
    compile(source, str(path), "exec")
    return time.perf_counter() - start


# ---------------------------------------------------------------- profile


def profile(master: Path, top: int) -> str:
    configure(master)  # warm imports and caches
    profiler = cProfile.Profile()
    profiler.enable()
    configure(master)
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return buffer.getvalue()


# ---------------------------------------------------------------- main


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _both(timing: Timing) -> str:
    return f"{_ms(timing[0]):>8} wall {_ms(timing[1]):>8} CPU"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sections", type=int, default=1000, help="N for checkconfig")
    parser.add_argument("--sizes", default="250,500,1000,2000", help="N values for (a)")
    parser.add_argument("--runs", type=int, default=5, help="in-process runs per figure")
    parser.add_argument("--checkconfig-runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the masters here and keep them")
    parser.add_argument("--profile", action="store_true", help="cProfile configure() at N")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | {args.sections})

    work = args.keep or Path(tempfile.mkdtemp(prefix="anybox-ci-bench-"))
    try:
        return _run(args, sizes, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, sizes: list[int], work: Path) -> int:
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f} (other jobs on the machine inflate wall times), "
        f"work dir {work}"
    )
    print(
        f"{N_WORKERS} workers, PostgreSQL {', '.join(PG_VERSIONS)} (2 per worker, "
        f"{N_WORKERS // 2} workers per version): 4 cells per section"
    )

    print(f"\n(a) configurator in process, medians of {args.runs} runs (per section: CPU)")
    print(
        f"{'sections':>8} {'builders':>8}  {'load() = read + plan':>27} {'per sect.':>9}  "
        f"{'configure() = load + render':>27} {'per sect.':>9}"
    )
    per_section: dict[int, float] = {}
    full: dict[int, Timing] = {}
    for n in sizes:
        master = write_master(work / f"generated-{n}", n)
        builders = len(configure(master)["builders"])  # warm-up, not counted
        load = median_timing(functools.partial(time_load, master), args.runs)
        full[n] = median_timing(functools.partial(time_configure, master), args.runs)
        per_section[n] = full[n][1] / n
        print(
            f"{n:>8} {builders:>8}  {_both(load):>27} {load[1] / n * 1e6:>6.0f} us  "
            f"{_both(full[n]):>27} {per_section[n] * 1e6:>6.0f} us"
        )
    spread = max(per_section.values()) / min(per_section.values())
    print(
        f"configure() CPU per section from {sizes[0]} to {sizes[-1]} sections: "
        f"max/min = {spread:.2f} (1.00 is perfectly linear)"
    )

    n = args.sections
    generated = work / f"generated-{n}"
    static = write_static_master(work / f"static-{n}", generated)
    static_exec = median_timing(lambda: time_static_exec(static), args.runs)
    print(
        f"executing the equivalent static master.cfg in process (the same Buildbot objects, "
        f"no configurator): {_both(static_exec)}"
    )
    print(
        f"configurator overhead over the static objects at {n} sections: "
        f"{_ms(full[n][0] - static_exec[0])} wall, {_ms(full[n][1] - static_exec[1])} CPU"
    )

    size_kb = (static / "master.cfg").stat().st_size / 1024
    print(
        f"\n(b, c) buildbot checkconfig, {n} sections, medians of {args.checkconfig_runs} "
        "alternating runs (CPU: the child process)"
    )
    time_checkconfig(generated)  # warm the disk cache of both
    time_checkconfig(static)
    ours_runs: list[Timing] = []
    static_runs: list[Timing] = []
    for _ in range(args.checkconfig_runs):
        ours_runs.append(time_checkconfig(generated))
        static_runs.append(time_checkconfig(static))
    ours = median_timing(iter(ours_runs).__next__, len(ours_runs))
    static_t = median_timing(iter(static_runs).__next__, len(static_runs))
    ratio, ratio_cpu = ours[0] / static_t[0], ours[1] / static_t[1]
    print(f"(b) generated master (master.cfg.sample + configurator): {_both(ours)}")
    print(
        f"(c) static master.cfg ({size_kb:.0f} KiB of literal Python, compiled in "
        f"{_ms(time_compile(static / 'master.cfg'))}):    {_both(static_t)}"
    )
    print(f"ratio ours/static: {ratio:.2f} wall, {ratio_cpu:.2f} CPU")

    ok_time = full[n][0] < TARGET_SECONDS
    ok_ratio = ratio <= TARGET_RATIO
    ok_linear = spread < 1.25
    print(f"\ntargets (load average now {os.getloadavg()[0]:.1f})")
    print(
        f"  configure() < {TARGET_SECONDS:.0f} s at {n} sections: {full[n][0]:.3f} s wall, "
        f"{full[n][1]:.3f} s CPU -> {'OK' if ok_time else 'MISSED'}"
    )
    print(
        f"  checkconfig ratio <= {TARGET_RATIO}: {ratio:.2f} wall, {ratio_cpu:.2f} CPU -> "
        f"{'OK' if ok_ratio else 'MISSED'}"
    )
    print(f"  linear growth: max/min {spread:.2f} -> {'OK' if ok_linear else 'NOT LINEAR'}")
    if args.profile or not (ok_time and ok_ratio):
        print(f"\nprofile of configure() at {n} sections")
        print(profile(generated, 30))
    return 0 if ok_time and ok_ratio and ok_linear else 1


if __name__ == "__main__":
    sys.exit(main())
