"""A reconfig of a running master rebuilds what was edited and keeps the rest
(``render.memo``), and the builds after it run the new configuration.

One real master, one real worker, three standalone buildouts in the master folder; no
database steps, so no PostgreSQL. Between two rounds of forced builds, the manifest gets
one section edited (``alpha``'s test command) and a file that ``gamma``'s buildout extends
gets an ``extends`` of its own; ``beta`` is untouched. After ``buildbot reconfig``:

- the master's log says it reused beta's factory and made the two others again;
- alpha's build runs its new command, gamma's build gets the newly extended file, and
  beta's build (from the reused factory) still runs as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import Master, WorkerProcess

pytestmark = pytest.mark.live

WORKER_PASSWORD = "w1-Memo-pw-8642"
MANIFEST = """
[DEFAULT]
db-steps =
post-buildout-steps = test-command

[alpha]
buildout = standalone alpha/buildout.cfg
test-command = echo alpha-round-1

[beta]
buildout = standalone beta/buildout.cfg
test-command = echo beta-unchanged

[gamma]
buildout = standalone gamma/buildout.cfg
test-command = ls
"""


def _buildouts(folder: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        (folder / name).mkdir(parents=True)
        (folder / name / "buildout.cfg").write_text("[buildout]\nextends = base.cfg\nparts =\n")
        (folder / name / "base.cfg").write_text("[versions]\n")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Master]:
    master = Master(tmp_path / "master")
    master.create(MANIFEST, "[w1]\npassword = secret:worker-w1\n", {"worker-w1": WORKER_PASSWORD})
    _buildouts(master.basedir / "buildouts")
    worker = WorkerProcess(tmp_path / "w1", "w1", WORKER_PASSWORD, master.pb_port)
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")
        yield master
    finally:
        worker.stop()
        master.stop()


def _forced(master: Master, builder: str) -> dict[str, Any]:
    before = len(master.builds(builder))
    master.wait_buildsets([master.force(builder)], 300)
    builds = master.builds(builder)
    assert len(builds) == before + 1, f"{builder}: {len(builds) - before} new builds"
    build = builds[-1]
    assert build["results"] == 0, f"{builder}: {build['state_string']}"
    return build


def _test_output(master: Master, build: dict[str, Any]) -> str:
    return master.step_log(build["buildid"], "test")


def test_reconfig_remakes_the_edited_buildouts_and_builds_them_anew(running: Master) -> None:
    master = running
    first = {name: _forced(master, name) for name in ("alpha", "beta", "gamma")}
    assert "alpha-round-1" in _test_output(master, first["alpha"])
    assert "beta-unchanged" in _test_output(master, first["beta"])
    assert "extra.cfg" not in _test_output(master, first["gamma"])

    manifest = master.basedir / "buildouts" / "MANIFEST.cfg"
    manifest.write_text(manifest.read_text().replace("alpha-round-1", "alpha-round-2"))
    gamma = master.basedir / "buildouts" / "gamma"
    (gamma / "extra.cfg").write_text("[versions]\n")
    (gamma / "base.cfg").write_text("[buildout]\nextends = extra.cfg\n")
    master.reconfig()

    summaries = re.findall(r"anybox-ci: reused (\d+) of (\d+) factory", master.log())
    assert summaries and summaries[-1] == ("1", "3"), summaries
    second = {name: _forced(master, name) for name in ("alpha", "beta", "gamma")}
    alpha = _test_output(master, second["alpha"])
    assert "alpha-round-2" in alpha and "alpha-round-1" not in alpha
    assert "beta-unchanged" in _test_output(master, second["beta"])
    assert "extra.cfg" in _test_output(master, second["gamma"])
