"""A dump on the master (``restore.master-dump``) restored into every cell, in real builds.

The admin's path: the manifest names ``erp/prod.sql.gz`` in the master's ``dumps/`` folder;
the shipped master.cfg.sample configures one real master, one real worker connects over PB
and offers the lowest and the highest configured PostgreSQL versions. Each cell downloads
the gzip'd plain-SQL dump from the master, restores it into its test database, and its test
command reads the rows back with psql. A second build of one cell comes from the cached
template; a buildout whose master dump does not exist turns red with one line.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import RESULTS, Master, WorkerProcess, offer_line
from anybox_ci.devtools.pgcluster import Cluster
from tests.pgfixtures import configured_versions

pytestmark = pytest.mark.live

WORKER, WORKER_PASSWORD = "w1", "w1-MasterDump-pw-97"
DUMP = b"""CREATE TABLE sample_data (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO sample_data VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma');
"""
#: what the test command prints once the restored rows are read back
PROBE = "psql -XAt -v ON_ERROR_STOP=1 -c \"SELECT 'rows:' || count(*) || ':' || max(name) FROM sample_data\""


@dataclass
class DumpBuilds:
    master: Master
    majors: list[int]
    builds: dict[str, dict[str, Any]]  # builder -> its first build
    sha256: str
    worker_dir: Path

    def steps(self, build: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.master.steps(build["buildid"])}


@pytest.fixture(scope="module")
def dump_builds(
    tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Cluster]
) -> Iterator[DumpBuilds]:
    versions = configured_versions()
    majors = sorted({min(versions), max(versions)})
    root = tmp_path_factory.mktemp("masterdump")
    folder = root / "buildouts"
    folder.mkdir()
    (folder / "buildout.cfg").write_text("[buildout]\nparts =\n")
    manifest = f"""
[DEFAULT]
db-steps = restore
restore.neutralize = sql
post-buildout-steps = test-command
test-command = {PROBE}

[erp]
buildout = standalone {folder / "buildout.cfg"}
build-for = postgresql >= {majors[0]}
restore.master-dump = erp/prod.sql.gz

[gone]
buildout = standalone {folder / "buildout.cfg"}
build-for = postgresql == {majors[0]}
restore.master-dump = erp/missing.sql.gz
"""
    offers = "\n    ".join(offer_line(pg_clusters[m]) for m in majors)
    workers = f"[{WORKER}]\npassword = secret:worker-{WORKER}\ncapability =\n    {offers}\n"
    master = Master(root / "master")
    master.create(manifest, workers, secrets={f"worker-{WORKER}": WORKER_PASSWORD})
    dumps = master.basedir / "dumps" / "erp"
    dumps.mkdir(parents=True)
    data = gzip.compress(DUMP, mtime=0)
    (dumps / "prod.sql.gz").write_bytes(data)
    worker = WorkerProcess(root / WORKER, WORKER, WORKER_PASSWORD, master.pb_port)
    builders = [f"erp-pg{m}" for m in majors] + [f"gone-pg{majors[0]}"]
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {WORKER}, 60, "the worker")
        master.wait_buildsets([master.force(name) for name in builders], timeout=600)
        builds = {name: master.builds(name)[0] for name in builders}
        yield DumpBuilds(master, majors, builds, hashlib.sha256(data).hexdigest(), worker.basedir)
    finally:
        worker.stop()
        master.stop()


def test_each_cell_restores_the_master_s_dump_on_its_postgresql(dump_builds: DumpBuilds) -> None:
    run = dump_builds
    for major in run.majors:
        build = run.builds[f"erp-pg{major}"]
        assert RESULTS[build["results"]] == "SUCCESS", (major, build["state_string"])
        steps = run.steps(build)
        sent = steps["download_master_dump"]["state_string"]
        assert sent == f"erp/prod.sql.gz sha256 {run.sha256[:12]}"
        assert build["properties"]["restore_dump_sha256"][0] == run.sha256
        assert "restored (plain SQL)" in steps["restore_db"]["state_string"]
        # the test command read the dump's rows from the cell's own database
        assert "rows:3:gamma" in run.master.step_log(build["buildid"], "test")
    # the worker's copy is deleted once restored
    assert not list(run.worker_dir.rglob("anybox-ci-master-dump"))


def test_the_next_build_comes_from_the_cached_template(dump_builds: DumpBuilds) -> None:
    run = dump_builds
    name = f"erp-pg{run.majors[-1]}"
    run.master.wait_buildsets([run.master.force(name)], timeout=300)
    build = max(run.master.builds(name), key=lambda b: b["number"])
    assert build["number"] > run.builds[name]["number"]
    assert RESULTS[build["results"]] == "SUCCESS", build["state_string"]
    assert "from cached template anybox_tpl_" in run.steps(build)["restore_db"]["state_string"]
    assert "rows:3:gamma" in run.master.step_log(build["buildid"], "test")


def test_a_missing_master_dump_turns_the_cell_red_with_one_line(dump_builds: DumpBuilds) -> None:
    run = dump_builds
    build = run.builds[f"gone-pg{run.majors[0]}"]
    assert RESULTS[build["results"]] == "FAILURE"
    steps = run.steps(build)
    assert steps["download_master_dump"]["state_string"] == (
        "master dump not found: dumps/erp/missing.sql.gz (failure)"
    )
    assert "restore_db" not in steps or steps["restore_db"]["results"] is None
