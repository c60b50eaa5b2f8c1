"""Per-build overhead of the framework, and cold against warm-cache build time.

A real master, one real worker and a throwaway PostgreSQL 15 build a trivial buildout
(one part: zc.recipe.egg installing ``six`` from PyPI; the test imports it and asks the
server its version): once with empty worker caches (cold), then N times again (warm).
The framework's own overhead is a build's total time minus the time of its
``buildout`` and test steps (the buildout's and the tests' own work).

    .venv/bin/python benchmarks/bench_build.py [--warm-runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from anybox_ci.devtools import localmaster as localrun
from anybox_ci.devtools.pgcluster import Cluster, ensure_binaries

OWN_WORK_STEPS = {"buildout", "test"}
TRIVIAL_BUILDOUT = """[buildout]
parts = tools
newest = false

[tools]
recipe = zc.recipe.egg
eggs = six
interpreter = py
"""


def _elapsed(master: localrun.Master, build: dict[str, Any]) -> dict[str, float]:
    """Each shell step's own time, from the worker's ``elapsedTime=`` line (sub-second;
    the REST timestamps are whole seconds)."""
    result = {}
    for step in master.steps(build["buildid"]):
        try:
            log = master.step_log(build["buildid"], step["name"])
        except (StopIteration, OSError):
            continue
        for line in log.splitlines():
            if line.startswith("elapsedTime="):
                result[step["name"]] = float(line.split("=", 1)[1])
    return result


def _timings(master: localrun.Master, build: dict[str, Any]) -> tuple[float, float]:
    total = build["complete_at"] - build["started_at"]
    own = sum(t for name, t in _elapsed(master, build).items() if name in OWN_WORK_STEPS)
    return total, own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm-runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anybox-bench-") as tmp:
        root = Path(tmp)
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
        try:
            master.start()
            worker.start()
            master.wait(lambda: master.connected_workers() == {"bench"}, 60, "worker")
            results = []
            for run in range(1 + args.warm_runs):
                master.wait_buildsets([master.force("trivial-pg15")], 900)
                build = master.builds("trivial-pg15")[-1]
                if build["results"] != 0:
                    print(f"build {run} failed: {build['state_string']}", file=sys.stderr)
                    return 1
                results.append(_timings(master, build))
                last_steps = _elapsed(master, build)
                label = "cold" if run == 0 else f"warm {run}"
                print(
                    f"{label:>7}: total {results[-1][0]:6.2f}s  "
                    f"buildout+tests {results[-1][1]:6.2f}s",
                    flush=True,
                )
        finally:
            worker.stop()
            master.stop()
            cluster.stop()
    print(
        "last warm build, per step: "
        + ", ".join(f"{name} {secs:.2f}s" for name, secs in last_steps.items())
    )
    cold_total = results[0][0]
    warm = results[1:]
    warm_total = statistics.median(t for t, _ in warm)
    overhead = statistics.median(t - own for t, own in warm)
    print(f"cold build: {cold_total:.2f}s")
    print(f"warm build (median of {len(warm)}): {warm_total:.2f}s")
    print(f"cold/warm: {cold_total / warm_total:.1f}x (target >= 3x)")
    print(f"framework overhead per warm build (median): {overhead:.2f}s")
    return 0 if cold_total / warm_total >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
