"""Benchmark of ``anybox-ci check``: a command meant for every save of a manifest must answer
at once. A script, not a test: it prints figures.

It writes a small master folder (a manifest of 10 standalone buildouts sharing one buildout.cfg,
``build-for = postgresql >= 13``; 3 workers offering PostgreSQL 13, 15 and 17 between them)
and times ``python -m anybox_ci.cli check DIR`` as a subprocess, the way a user or an editor
runs it. The baseline, measured in the same run and alternating with it, is what any Python
command pays before doing anything: ``python -c pass``, and ``python -c "import configparser,
json"`` (the stdlib modules an INI checker needs anyway). The target is a median under 0.3 s.

Usage::

    .venv/bin/python benchmarks/bench_check.py [--runs 5] [--sections 10] [--keep DIR]
        [--importtime]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: the target of the redesign issue
TARGET_SECONDS = 0.3
WORKERS = {"w1": ("13", "15"), "w2": ("15", "17"), "w3": ("13", "17")}

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

#: (label, command after the interpreter); the check command gets the master folder appended
BASELINES = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import configparser, json'", ["-c", "import configparser, json"]),
]
CHECK = ["-m", "anybox_ci.cli", "check"]


def write_master(root: Path, sections: int) -> Path:
    """A master folder with ``sections`` standalone buildouts and the 3 workers."""
    if root.exists():
        shutil.rmtree(root)
    (root / "buildouts").mkdir(parents=True)
    (root / "secrets").mkdir()
    (root / "buildouts" / "buildout.cfg").write_text(BUILDOUT_CFG)
    manifest = ["# Manifest for benchmarks/bench_check.py", ""]
    for i in range(sections):
        manifest += [
            f"[erp-{i:02d}]",
            "buildout = standalone buildout.cfg",
            "build-for = postgresql >= 13",
            f"watch = git https://git.example.com/addons-{i:02d}.git 17.0",
            f"odoo-addons = mod_{i}",
            "",
        ]
    (root / "buildouts" / "MANIFEST.cfg").write_text("\n".join(manifest))
    workers = ["# Workers for benchmarks/bench_check.py", ""]
    for name, versions in WORKERS.items():
        secret = root / "secrets" / f"worker-{name}"
        secret.write_text(f"pw-{name}\n")
        secret.chmod(0o600)
        workers += [
            f"[{name}]",
            f"password = secret:worker-{name}",
            "max_builds = 2",
            "capability =",
            *(f"    postgresql {v} port={5400 + int(v)}" for v in versions),
            "    python 3.11",
            "",
        ]
    (root / "workers.cfg").write_text("\n".join(workers))
    return root


#: (wall seconds, CPU seconds of the child)
Timing = tuple[float, float]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str]) -> tuple[Timing, subprocess.CompletedProcess[str]]:
    wall, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    return (time.perf_counter() - wall, _children_cpu() - cpu), proc


def timed(args: list[str]) -> Timing:
    timing, proc = run(args)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return timing


def median(timings: list[Timing]) -> Timing:
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def import_profile(master: Path, top: int = 15) -> str:
    """The slowest imports of one check run (``python -X importtime``), cumulative time."""
    _, proc = run(["-X", "importtime", *CHECK, str(master)])
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = [f.strip() for f in line.removeprefix("import time:").split("|")]
        if fields[1].isdigit():
            rows.append((int(fields[1]), fields[2]))
    rows.sort(reverse=True)
    return "\n".join(f"  {us / 1000:8.1f} ms  {name}" for us, name in rows[:top])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command")
    parser.add_argument("--sections", type=int, default=10, help="buildouts in the manifest")
    parser.add_argument("--keep", type=Path, help="write the master folder here and keep it")
    parser.add_argument("--importtime", action="store_true", help="show the slowest imports")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="anybox-ci-bench-check-"))
    try:
        master = write_master(work / "master", args.sections)
        return _run(args, master)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, master: Path) -> int:
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f} (other jobs on the machine inflate wall times)"
    )
    print(
        f"master folder {master}: {args.sections} standalone buildouts, "
        f"{len(WORKERS)} workers offering PostgreSQL "
        f"{', '.join(sorted({v for vs in WORKERS.values() for v in vs}))}"
    )

    check = [*CHECK, str(master)]
    _, proc = run(check)  # warm-up: the disk cache, the bytecode (as installed packages have)
    print(f"check output: {proc.stderr.strip() or proc.stdout.strip()}")
    if proc.returncode != 0:
        sys.exit(f"anybox-ci check failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    for _, baseline in BASELINES:
        timed(baseline)

    commands = [*BASELINES, ("anybox-ci check (python -m anybox_ci.cli check)", check)]
    runs: dict[str, list[Timing]] = {label: [] for label, _ in commands}
    for _ in range(args.runs):  # alternate, so that a busy moment hits every command alike
        for label, command in commands:
            runs[label].append(timed(command))

    print(f"\nmedians of {args.runs} alternating runs (CPU: the child process)")
    width = max(len(label) for label, _ in commands)
    medians = {label: median(timings) for label, timings in runs.items()}
    for label, _ in commands:
        wall, cpu = medians[label]
        figures = " ".join(f"{t[0] * 1000:.0f}" for t in runs[label])
        print(f"  {label:<{width}}  {_ms(wall):>7} wall {_ms(cpu):>7} CPU   runs (ms): {figures}")

    check_wall, check_cpu = medians[commands[-1][0]]
    base_wall, base_cpu = medians[BASELINES[-1][0]]
    print(
        f"\ncheck over the interpreter baseline ({BASELINES[-1][0]}): "
        f"+{_ms(check_wall - base_wall)} wall, +{_ms(check_cpu - base_cpu)} CPU, "
        f"x{check_wall / base_wall:.1f} wall"
    )
    ok = check_wall < TARGET_SECONDS
    print(
        f"target: check median < {TARGET_SECONDS} s: {check_wall:.3f} s wall, "
        f"{check_cpu:.3f} s CPU -> {'OK' if ok else 'MISSED'}"
    )
    if args.importtime or not ok:
        print("\nslowest imports of one check run (cumulative, python -X importtime)")
        print(import_profile(master))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
