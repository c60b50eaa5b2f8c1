"""The master's own database on PostgreSQL: a real master keeps its history across a restart.

A dedicated throwaway PostgreSQL 15 cluster holds only the master's database (the build
databases live in the session clusters of `pg_clusters`). The master is made from
master.cfg.sample with `ANYBOX_CI_DB_URL` pointing at that database through psycopg2 over
the cluster's Unix socket, so `buildbot create-master` writes the schema there and the
master never touches SQLite. One real worker builds the `passing` sample against
PostgreSQL 15; the master is stopped and started again, and the build, its steps and its
logs must come back unchanged from PostgreSQL, with the next build numbered 2.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import Master, WorkerProcess, make_sample_repo, offer_line
from anybox_ci.devtools.pgcluster import Cluster, ensure_binaries

pytestmark = pytest.mark.live

DBNAME = "anybox_ci_master"
BUILDER = "passing-pg15"
WORKER, PASSWORD = "w1", "w1-pg-master-Secret-5150"
#: tables the buildbot schema must have created in the master's PostgreSQL database
SCHEMA_TABLES = {"masters", "builders", "buildsets", "buildrequests", "builds", "steps", "logs"}


@dataclass
class Scenario:
    master: Master
    db: Cluster  # the cluster holding the master's database
    build_pg: Cluster  # the cluster the build ran against
    tables_before_create: set[str]
    tables_after_create: set[str]
    sqlite_after_create: list[str]
    before_restart: dict[str, Any]
    rows_while_stopped: list[str]
    masters_while_stopped: list[str]
    after_restart: dict[str, Any]


def _tables(cluster: Cluster) -> set[str]:
    out = cluster.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", DBNAME)
    return set(out.split())


def _rows(cluster: Cluster, sql: str) -> list[str]:
    out = cluster.psql(sql, DBNAME)
    return out.splitlines() if out else []


def _sqlite_files(basedir: Path) -> list[str]:
    return sorted(str(p.relative_to(basedir)) for p in basedir.rglob("*.sqlite*"))


def _raw_log(master: Master, logid: int) -> str:
    with urllib.request.urlopen(f"{master.url}api/v2/logs/{logid}/raw", timeout=30) as r:
        return r.read().decode(errors="replace")


def _history(master: Master) -> dict[str, Any]:
    """Everything the REST API tells about the builder's builds, steps and logs."""
    builds = master.builds(BUILDER)
    steps: dict[int, list[dict[str, Any]]] = {}
    logs: dict[int, list[dict[str, Any]]] = {}
    raw: dict[int, str] = {}
    for build in builds:
        steps[build["buildid"]] = master.steps(build["buildid"])
        for step in steps[build["buildid"]]:
            logs[step["stepid"]] = list(master.get(f"steps/{step['stepid']}/logs")["logs"])
            for log in logs[step["stepid"]]:
                raw[log["logid"]] = _raw_log(master, log["logid"])
    return {"builds": builds, "steps": steps, "logs": logs, "raw": raw}


def _wait_worker(master: Master) -> None:
    master.wait(lambda: master.connected_workers() == {WORKER}, 120, "worker connected")


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Cluster]
) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("pgmaster")
    build_pg = pg_clusters[15]
    db = Cluster(ensure_binaries(15), root / "master-db")
    worker: WorkerProcess | None = None
    master: Master | None = None
    try:
        db.start()
        db.psql(f"CREATE DATABASE {DBNAME}")
        tables_before_create = _tables(db)

        repo = make_sample_repo("passing", root / "repos")
        manifest = f"""
[DEFAULT]
build-for = postgresql == 15
post-buildout-steps = install-modules-test
odoo-addons = sample

[passing]
buildout = git file://{repo} main buildout.cfg
"""
        workers = f"[{WORKER}]\npassword = secret:worker-{WORKER}\n"
        workers += f"capability = {offer_line(build_pg)}\n"
        master = Master(root / "master")
        master.env["ANYBOX_CI_DB_URL"] = (
            f"postgresql+psycopg2://{db.user}@/{DBNAME}?host={db.host}&port={db.port}"
        )
        master.create(manifest, workers, secrets={f"worker-{WORKER}": PASSWORD})
        tables_after_create = _tables(db)
        sqlite_after_create = _sqlite_files(master.basedir)

        master.start()
        worker = WorkerProcess(root / WORKER, WORKER, PASSWORD, master.pb_port)
        worker.start()
        _wait_worker(master)
        bsid = master.force(BUILDER)
        master.wait_buildsets([bsid], timeout=600)
        before_restart = _history(master)

        master.stop()
        assert not (master.basedir / "twistd.pid").exists(), "the master did not stop"
        rows_while_stopped = _rows(db, "SELECT number, results FROM builds ORDER BY number")
        masters_while_stopped = _rows(db, "SELECT name, active FROM masters")

        master.start()
        _wait_worker(master)
        after_restart = _history(master)
        yield Scenario(
            master=master,
            db=db,
            build_pg=build_pg,
            tables_before_create=tables_before_create,
            tables_after_create=tables_after_create,
            sqlite_after_create=sqlite_after_create,
            before_restart=before_restart,
            rows_while_stopped=rows_while_stopped,
            masters_while_stopped=masters_while_stopped,
            after_restart=after_restart,
        )
    finally:
        if worker is not None:
            worker.stop()
        if master is not None:
            master.stop()
        db.stop()


def test_create_master_puts_the_schema_in_postgresql(scenario: Scenario) -> None:
    assert scenario.tables_before_create == set()
    missing = SCHEMA_TABLES - scenario.tables_after_create
    assert not missing, f"create-master did not create {missing} in PostgreSQL"
    assert scenario.sqlite_after_create == []


def test_master_runs_on_postgresql_and_never_on_sqlite(scenario: Scenario) -> None:
    master = scenario.master
    log = (master.basedir / "twistd.log").read_text(errors="replace")
    setups = [line for line in log.splitlines() if "Setting up database with URL" in line]
    assert len(setups) == 2, setups  # one per start
    for line in setups:
        assert f"postgresql+psycopg2://postgres@/{DBNAME}?" in line, line
    assert _sqlite_files(master.basedir) == []
    # the master registered itself in that database, and marked itself stopped there
    assert len(scenario.masters_while_stopped) == 1, scenario.masters_while_stopped
    name, active = scenario.masters_while_stopped[0].rsplit("|", 1)
    assert name.endswith(str(master.basedir))
    assert active in ("0", "f", "false"), scenario.masters_while_stopped
    assert _rows(scenario.db, "SELECT active FROM masters") in (["1"], ["t"], ["true"])


def test_first_build_succeeded_against_postgresql_15(scenario: Scenario) -> None:
    builds = scenario.before_restart["builds"]
    assert len(builds) == 1
    assert builds[0]["number"] == 1
    assert builds[0]["results"] == 0, builds[0]["state_string"]
    steps = scenario.before_restart["steps"][builds[0]["buildid"]]
    step = next(s for s in steps if s["name"] == "install_modules_test")
    texts = [
        scenario.before_restart["raw"][log["logid"]]
        for log in scenario.before_restart["logs"][step["stepid"]]
    ]
    assert any(f"server: PostgreSQL {scenario.build_pg.version}" in t for t in texts)


def test_builds_table_in_postgresql_holds_the_build(scenario: Scenario) -> None:
    buildid = scenario.before_restart["builds"][0]["buildid"]
    assert scenario.rows_while_stopped == ["1|0"]
    rows = _rows(scenario.db, f"SELECT number, results FROM builds WHERE id = {buildid}")
    assert rows == ["1|0"]
    steps = _rows(scenario.db, f"SELECT name FROM steps WHERE buildid = {buildid} ORDER BY number")
    assert "install_modules_test" in steps
    assert steps == [s["name"] for s in scenario.before_restart["steps"][buildid]]


def test_history_is_intact_after_restart(scenario: Scenario) -> None:
    before, after = scenario.before_restart, scenario.after_restart
    assert [b["number"] for b in after["builds"]] == [1]
    assert after["builds"] == before["builds"]
    assert after["steps"] == before["steps"]
    assert after["logs"] == before["logs"]
    assert after["raw"] == before["raw"]
    # the step log is really read back from the database after the restart
    build = after["builds"][0]
    log = scenario.master.step_log(build["buildid"], "install_modules_test")
    assert f"server: PostgreSQL {scenario.build_pg.version}" in log
    assert log == next(
        before["raw"][lg["logid"]]
        for step in before["steps"][build["buildid"]]
        if step["name"] == "install_modules_test"
        for lg in before["logs"][step["stepid"]]
        if lg["slug"] == "stdio"
    )


def test_next_build_after_restart_is_number_2(scenario: Scenario) -> None:
    master = scenario.master
    bsid = master.force(BUILDER)
    master.wait_buildsets([bsid], timeout=600)
    builds = master.builds(BUILDER)
    assert [b["number"] for b in builds] == [1, 2]
    assert builds[1]["results"] == 0, builds[1]["state_string"]
    rows = _rows(scenario.db, "SELECT number, results FROM builds ORDER BY number")
    assert rows == ["1|0", "2|0"]
    assert builds[0] == scenario.before_restart["builds"][0]
