"""Tests of build_utils/pgdb.py against the shared throwaway clusters, on every version.

The clusters come from tests/pgfixtures.py (`ANYBOX_CI_PG_VERSIONS`, default 13, 15 and 17);
each test runs once per major.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from anybox_ci.devtools.pgcluster import Cluster as PgCluster
from build_utils import pgdb
from tests.shipped import ship, summary_of

pytestmark = pytest.mark.live

WEIRD_NAME = 'we"ird -db $(touch pwned); DROP DATABASE postgres; --'


@dataclass
class Cluster:
    """One shared cluster, with the environment the master gives a build of its cell."""

    server: PgCluster
    env: dict[str, str]

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def major(self) -> int:
        return self.server.major

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self.server.psql(sql, dbname=db)


@pytest.fixture
def cluster(pg_cluster: PgCluster) -> Cluster:
    """What the capability line of ``offer_line`` gives a build: ``bin`` and ``lib`` only for
    installs with their own client (the npm builds have none; the system psql is used)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.pop("LD_LIBRARY_PATH", None)
    env.update(PGHOST=pg_cluster.host, PGPORT=str(pg_cluster.port), PGUSER=pg_cluster.user)
    if (Path(pg_cluster.bin) / "psql").exists():
        env.update(
            PATH=f"{pg_cluster.bin}{os.pathsep}{env.get('PATH', '')}",
            LD_LIBRARY_PATH=str(pg_cluster.lib),
        )
    return Cluster(pg_cluster, env)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return ship(tmp_path, "pgdb")


@pytest.fixture
def in_cluster_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """For in-process calls: the environment the master gives to a build of this cell."""
    for key in ("PATH", "PGHOST", "PGPORT", "PGUSER"):
        monkeypatch.setenv(key, cluster.env[key])
    if "LD_LIBRARY_PATH" in cluster.env:
        monkeypatch.setenv("LD_LIBRARY_PATH", cluster.env["LD_LIBRARY_PATH"])
    else:
        monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.delenv("PGDATABASE", raising=False)
    return cluster


def run(
    script: Path, cluster: Cluster, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=cluster.env,
        cwd=cwd,
        timeout=60,
    )


def test_version_proves_the_cluster(script: Path, cluster: Cluster) -> None:
    proc = run(script, cluster, "version")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split("=", 1) for line in proc.stdout.splitlines()[:-1])
    assert Path(lines["psql"]).name == "psql"
    assert lines["server_version"].startswith(f"PostgreSQL {cluster.major}.")
    assert lines["server_version_num"].startswith(str(cluster.major))
    assert lines["port"] == str(cluster.port)
    assert summary_of(proc.stdout).startswith(f"PostgreSQL {cluster.major}.")
    assert summary_of(proc.stdout).endswith(f"on port {cluster.port}")


def test_create_and_drop_with_hostile_name(script: Path, cluster: Cluster, tmp_path: Path) -> None:
    for _ in range(2):  # the second create drops the first database
        proc = run(script, cluster, "create", "--name", WEIRD_NAME, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert summary_of(proc.stdout) == f"created {WEIRD_NAME} from template1"
    names = cluster.psql("SELECT datname FROM pg_database").splitlines()
    assert WEIRD_NAME in names and "postgres" in names
    proc = run(script, cluster, "drop", "--name", WEIRD_NAME, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert WEIRD_NAME not in cluster.psql("SELECT datname FROM pg_database").splitlines()
    assert not (tmp_path / "pwned").exists()
    proc = run(script, cluster, "drop", "--name", WEIRD_NAME)  # dropping twice is fine
    assert proc.returncode == 0


def test_create_from_template(in_cluster_env: Cluster) -> None:
    cluster = in_cluster_env
    pgdb.create_database("tpl_odoo")
    cluster.psql("CREATE TABLE res_partner (id serial, name text)", db="tpl_odoo")
    pgdb.create_database("from_tpl", template="tpl_odoo")
    assert cluster.psql("SELECT count(*) FROM res_partner", db="from_tpl") == "0"
    assert pgdb.database_exists("from_tpl")
    pgdb.drop_database("from_tpl")
    pgdb.drop_database("tpl_odoo")
    assert not pgdb.database_exists("from_tpl")


def test_drop_disconnects_leftover_sessions(in_cluster_env: Cluster) -> None:
    cluster = in_cluster_env
    pgdb.create_database("busy")
    session = subprocess.Popen(
        ["psql", "-X", "--dbname=busy", "-c", "SELECT pg_sleep(60)"],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'busy'") == "0":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pgdb.drop_database("busy")  # WITH (FORCE) on 13+
        assert not pgdb.database_exists("busy")
    finally:
        session.kill()
        session.wait()


def test_restore_runs_command_with_db_env(script: Path, cluster: Cluster) -> None:
    restore = (
        "import os, subprocess\n"
        "db = os.environ['ANYBOX_CI_DB']\n"
        "subprocess.run(['psql', '-X', '-q', '--dbname=' + db, '-c', 'CREATE TABLE restored (x int)'], check=True)\n"
    )
    proc = run(
        script, cluster, "restore", "--name", "restored db", "--", sys.executable, "-c", restore
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary_of(proc.stdout) == "restored restored db"
    assert cluster.psql("SELECT count(*) FROM restored", db="restored db") == "0"


def test_restore_failure_is_reported(script: Path, cluster: Cluster) -> None:
    proc = run(
        script,
        cluster,
        "restore",
        "--name",
        "broken",
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(6)",
    )
    assert proc.returncode == 6
    assert summary_of(proc.stdout) == "restore into broken failed: command exited with code 6"


def test_errors_are_summarised(script: Path, cluster: Cluster) -> None:
    proc = run(script, cluster, "create", "--name", "x", "--template", "no_such_template")
    assert proc.returncode == 1
    assert 'template database "no_such_template" does not exist' in summary_of(proc.stdout)

    env = dict(cluster.env, PGPORT="1")  # nothing listens there
    proc = subprocess.run(
        [sys.executable, str(script), "version"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("version failed: ")

    env = dict(cluster.env, PATH="/nonexistent")
    proc = subprocess.run(
        [sys.executable, str(script), "version"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout) == "version failed: psql not found on PATH"


def test_password_comes_from_environment_only(script: Path, cluster: Cluster) -> None:
    secret = "s3cr3t-not-for-logs"
    env = dict(cluster.env, PGPASSWORD=secret)
    proc = subprocess.run(
        [sys.executable, str(script), "version"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0
    assert secret not in proc.stdout + proc.stderr
    with pytest.raises(SystemExit):  # no option to pass one on the command line
        pgdb.main(["--password", secret, "version"])


def test_template_strategy_rename_and_comment(in_cluster_env: Cluster) -> None:
    """What restore.py builds its template cache on, with hostile names as psql variables."""
    cluster = in_cluster_env
    assert pgdb.major_version() == cluster.major
    pgdb.create_database(WEIRD_NAME)
    cluster.psql("CREATE TABLE marker (x int)", db=WEIRD_NAME)
    comment = 'it\'s a {"json": 1}; DROP DATABASE postgres; --'
    pgdb.comment_database(WEIRD_NAME, comment)
    renamed = f"{WEIRD_NAME} renamed"
    pgdb.rename_database(WEIRD_NAME, renamed)
    assert not pgdb.database_exists(WEIRD_NAME) and pgdb.database_exists(renamed)
    sql = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :'dbname'"
    assert pgdb.run_psql(sql + ";", dbname=renamed) == comment
    for strategy in (None, *pgdb.CREATE_STRATEGIES):  # ignored before 15
        pgdb.create_database("from_tpl", template=renamed, strategy=strategy)
        assert cluster.psql("SELECT count(*) FROM marker", db="from_tpl") == "0"
    with pytest.raises(ValueError):
        pgdb.create_database("from_tpl", template=renamed, strategy="; DROP")
    pgdb.drop_database("from_tpl")
    pgdb.drop_database(renamed)
    assert "postgres" in cluster.psql("SELECT datname FROM pg_database").splitlines()
