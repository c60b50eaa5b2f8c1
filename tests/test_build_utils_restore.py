"""Restoring production dumps (build_utils/restore.py), cached as templates, on every version.

Live tests run once per PostgreSQL major of tests/pgfixtures.py, with the environment the
master gives a build of the cell. Dumps are made once, by the system pg_dump from the oldest
cluster, so that one pg_restore reads them for every server. The tests without a server check
the parts that read dumps.
"""

from __future__ import annotations

import base64
import bz2
import functools
import gzip
import hashlib
import http.server
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anybox_ci.devtools.pgcluster import Cluster as PgCluster
from build_utils import dumps as dump_reader
from build_utils import restore
from tests.shipped import ship, summary_of
from tests.test_build_utils_pgdb import WEIRD_NAME, Cluster, cluster  # noqa: F401 (fixture)

ODOO_SCHEMA = """
CREATE TABLE ir_mail_server (id serial PRIMARY KEY, name varchar, active boolean);
CREATE TABLE ir_cron (id serial PRIMARY KEY, name varchar, active boolean);
CREATE TABLE ir_config_parameter (id serial PRIMARY KEY, key varchar UNIQUE, value text);
CREATE TABLE res_partner (id serial PRIMARY KEY, name text);
INSERT INTO ir_mail_server (name, active) VALUES ('smtp', true), ('backup', true);
INSERT INTO ir_cron (name, active) VALUES ('mail queue', true), ('fetch', true);
INSERT INTO ir_config_parameter (key, value) VALUES ('web.base.url', 'https://erp.example.com');
INSERT INTO res_partner (name) SELECT 'partner ' || i FROM generate_series(1, 500) AS i;
INSERT INTO res_partner (name) VALUES (E'\\\\restrict abc'), (E'\\\\! touch pwned'), ('tab\there');
"""
PARTNERS = "503"


def templates_of(pg: Cluster) -> list[str]:
    rows = pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'anybox%'")
    return sorted(rows.split()) if rows else []


def databases(pg: Cluster) -> list[str]:
    return pg.psql("SELECT datname FROM pg_database").splitlines()


def lines_of(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("restore_"):
            found[key] = value
    return found


# --- dumps, made once ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dumps(
    pg_clusters: dict[int, PgCluster], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The fake Odoo database in every format, and a second version of it."""
    server = pg_clusters[min(pg_clusters)]
    folder = tmp_path_factory.mktemp("dumps")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=server.host, PGPORT=str(server.port), PGUSER=server.user)
    pg_dump = shutil.which("pg_dump", path=f"{server.bin}{os.pathsep}{os.environ['PATH']}")
    assert pg_dump, "pg_dump is needed to make the test dumps"
    server.psql("DROP DATABASE IF EXISTS odoo_src")
    server.psql("CREATE DATABASE odoo_src")
    server.psql(ODOO_SCHEMA, dbname="odoo_src")

    def dump(name: str, *options: str) -> Path:
        target = folder / name
        argv = [pg_dump, "--no-owner", "--no-privileges", f"--file={target}", *options]
        subprocess.run([*argv, "--dbname=odoo_src"], env=env, check=True)
        return target

    made = {"sql": dump("odoo.sql"), "custom": dump("odoo.dump", "--format=custom")}
    plain = made["sql"].read_bytes()
    (folder / "odoo.sql.gz").write_bytes(gzip.compress(plain))
    (folder / "odoo.sql.bz2").write_bytes(bz2.compress(plain))
    (folder / "odoo.sql.xz").write_bytes(lzma.compress(plain))
    (folder / "odoo.dump.gz").write_bytes(gzip.compress(made["custom"].read_bytes()))
    made.update({kind: folder / f"odoo.{kind}" for kind in ("sql.gz", "sql.bz2", "sql.xz")})
    made["custom.gz"] = folder / "odoo.dump.gz"
    server.psql("INSERT INTO res_partner (name) VALUES ('new partner')", dbname="odoo_src")
    made["sql-v2"] = dump("odoo-v2.sql")
    server.psql("DROP DATABASE odoo_src")
    return made


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return ship(tmp_path, "restore", "pgdb", "dumps")


@pytest.fixture
def clean(cluster: Cluster) -> Iterator[Cluster]:  # noqa: F811 (the imported fixture)
    """The cluster, left without the databases of this test (templates included)."""
    before = set(databases(cluster))
    yield cluster
    for name in set(databases(cluster)) - before:
        cluster.psql(f'DROP DATABASE IF EXISTS "{name.replace(chr(34), chr(34) * 2)}"')


def run(
    script: Path, pg: Cluster, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env={**pg.env, **env},
        cwd=cwd,
        timeout=300,
    )


def assert_odoo_restored(pg: Cluster, db: str, partners: str = PARTNERS) -> None:
    assert pg.psql("SELECT count(*) FROM res_partner", db=db) == partners
    names = pg.psql("SELECT name FROM res_partner WHERE id > 500 ORDER BY id", db=db)
    assert names.splitlines()[:3] == ["\\restrict abc", "\\! touch pwned", "tab\there"]
    assert pg.psql("SELECT bool_or(active) FROM ir_mail_server", db=db) == "f"
    assert pg.psql("SELECT bool_or(active) FROM ir_cron", db=db) == "f"
    sql = "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
    assert pg.psql(sql, db=db) == "true"


# --- without a server ------------------------------------------------------------------------


def guarded(data: bytes, chunk: int, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(restore, "CHUNK", chunk)
    out = b"".join(dump_reader.guarded_sql(io.BytesIO(data)))
    first, _, rest = out.partition(b"\n")
    assert first.startswith(b"\\restrict ") and len(first) > 40
    return rest


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_plain_dumps_go_to_psql_restricted(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = (
        b"--\n\\restrict AbC123\n\nSET x = 1;\nCOPY public.t (a) FROM stdin;\n"
        b"\\restrict AbC123\n\\\\! rm\n\\.\n\\! touch pwned\nSELECT 1;\n\\unrestrict AbC123\n"
    )
    expected = (
        b"--\n\nSET x = 1;\nCOPY public.t (a) FROM stdin;\n"
        b"\\restrict AbC123\n\\\\! rm\n\\.\n\\! touch pwned\nSELECT 1;\n"
    )  # the dump's own (un)restrict lines go; COPY data and other commands stay (psql refuses)
    assert guarded(dump, chunk, monkeypatch) == expected
    assert guarded(b"SELECT 1;", chunk, monkeypatch) == b"SELECT 1;"


@pytest.mark.parametrize(
    ("wrap", "compression"),
    [
        (lambda b: b, "none"),
        (gzip.compress, "gzip"),
        (bz2.compress, "bzip2"),
        (lzma.compress, "xz"),
    ],
)
def test_formats_are_recognised_by_content(
    wrap: Callable[[bytes], bytes], compression: str
) -> None:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        info = tarfile.TarInfo("a.sql")
        info.size = 9
        archive.addfile(info, io.BytesIO(b"SELECT 1;"))
    for data, kind in (
        (b"PGDMP\x01\x0e", "custom"),
        (b"SELECT 1;", "sql"),
        (tar.getvalue(), "tar"),
    ):
        got = dump_reader.open_dump(io.BytesIO(wrap(data)))
        assert got[:2] == (compression, kind)
        assert got[2].read() == data


def test_usage_errors(tmp_path: Path) -> None:
    script = ship(tmp_path, "restore", "pgdb", "dumps")
    dump = tmp_path / "x.sql"
    dump.write_text("SELECT 1;")
    cases = [
        (["--name", "db"], "one of the arguments --dump --url is required"),
        (["--name", "db", "--dump", str(dump), "--map", "a=b"], "not allowed with argument"),
        (["--map", "nodb", "--dump", str(dump)], "expected DB=MEMBER"),
        (["--name", "d", "--dump", str(dump), "--sha256", "xyz"], "--sha256 must be 64"),
        (["--name", "d", "--dump", str(dump), "--auth-env", "V"], "--auth-env goes with --url"),
        (["--name", "d", "--dump", str(dump), "extra"], "the command goes after --"),
        (["--name", "d", "--dump", str(tmp_path / "none.sql")], "no such dump file"),
    ]
    for args, message in cases:
        proc = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in summary_of(proc.stdout), (args, proc.stdout)


# --- live ------------------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("kind", ["sql", "sql.gz", "sql.bz2", "sql.xz", "custom", "custom.gz"])
def test_each_format_restores(
    kind: str, script: Path, clean: Cluster, dumps: dict[str, Path]
) -> None:
    proc = run(script, clean, "--name", "erp_test", "--no-cache", "--dump", str(dumps[kind]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    label = "custom format" if kind.startswith("custom") else "plain SQL"
    assert summary_of(proc.stdout).startswith(f"erp_test restored ({label}) in ")
    assert lines_of(proc.stdout)["restore_cache"] == "off"
    assert_odoo_restored(clean, "erp_test")
    assert templates_of(clean) == []  # no template, no staging database left


@pytest.mark.live
def test_second_restore_uses_the_template(
    script: Path, clean: Cluster, dumps: dict[str, Path], tmp_path: Path
) -> None:
    # a copy: the file vanishes below, and a later build must not need it
    dump = Path(shutil.copy(dumps["custom"], tmp_path / "prod.dump"))
    sha = hashlib.sha256(dump.read_bytes()).hexdigest()
    url = dump.as_uri()
    proc = run(script, clean, "--name", "erp_test", "--url", url, "--sha256", sha)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = lines_of(proc.stdout)
    assert first["restore_cache"] == "miss"
    template = first["restore_template"]
    assert summary_of(proc.stdout).endswith(f"cached as {template}")
    assert templates_of(clean) == [template]
    assert clean.psql(f"SELECT datallowconn FROM pg_database WHERE datname = '{template}'") == "f"
    comment = clean.psql(
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{template}'"
    )
    assert json.loads(comment)["sha256"] == sha

    clean.psql("UPDATE res_partner SET name = 'changed by the build'", db="erp_test")
    dump.unlink()  # a cache hit with a known checksum reads nothing
    proc = run(script, clean, "--name", "erp_test", "--url", url, "--sha256", sha)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines_of(proc.stdout) == {"restore_cache": "hit", "restore_template": template}
    assert summary_of(proc.stdout).startswith(f"erp_test from cached template {template} in ")
    assert_odoo_restored(clean, "erp_test")  # a fresh copy: the build's change is gone


@pytest.mark.live
def test_changed_dump_drops_the_stale_template(
    script: Path, clean: Cluster, dumps: dict[str, Path], tmp_path: Path
) -> None:
    dump = tmp_path / "prod.sql"
    shutil.copy(dumps["sql"], dump)
    other = run(script, clean, "--name", "other", "--cache-key", "other", "--dump", str(dump))
    assert other.returncode == 0, other.stdout + other.stderr
    args = ("--name", "erp_test", "--cache-key", "prod nightly", "--dump", str(dump))
    proc = run(script, clean, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    old = lines_of(proc.stdout)["restore_template"]
    shutil.copy(dumps["sql-v2"], dump)
    proc = run(script, clean, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = lines_of(proc.stdout)["restore_template"]
    assert new != old and f"dropped stale template {old}" in proc.stdout
    kept = lines_of(other.stdout)["restore_template"]
    assert templates_of(clean) == sorted([new, kept])  # the other key's template stays
    assert_odoo_restored(clean, "erp_test", partners=str(int(PARTNERS) + 1))


def wait_for(pg: Cluster, name: str, present: bool = True) -> None:
    deadline = time.monotonic() + 60
    while (name in databases(pg)) != present:
        assert time.monotonic() < deadline, f"{name} never {'came' if present else 'went'}"
        time.sleep(0.1)


@pytest.mark.live
def test_spare_copy_for_the_next_build(
    script: Path, clean: Cluster, dumps: dict[str, Path], tmp_path: Path
) -> None:
    dump = tmp_path / "prod.sql"
    shutil.copy(dumps["sql"], dump)
    args = ("--name", "erp_test", "--spare", "--dump", str(dump))
    proc = run(script, clean, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    template = lines_of(proc.stdout)["restore_template"]
    spare = template.replace("anybox_tpl_", "anybox_spr_")
    assert f"preparing a spare copy {spare} in the background" in proc.stdout
    wait_for(clean, spare)

    clean.psql("UPDATE res_partner SET name = 'changed by the build'", db="erp_test")
    proc = run(script, clean, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary_of(proc.stdout).startswith(
        f"erp_test from cached template {template} (spare copy) in "
    )
    assert_odoo_restored(clean, "erp_test")
    wait_for(clean, spare)  # the next one, made in the background

    shutil.copy(dumps["sql-v2"], dump)  # a new dump: its template, and the old spare goes
    proc = run(script, clean, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"dropped stale spare {spare}" in proc.stdout
    assert spare not in databases(clean)
    new_spare = lines_of(proc.stdout)["restore_template"].replace("anybox_tpl_", "anybox_spr_")
    wait_for(clean, new_spare)
    assert_odoo_restored(clean, "erp_test", partners=str(int(PARTNERS) + 1))


@pytest.mark.live
def test_archive_of_several_databases(
    script: Path, clean: Cluster, dumps: dict[str, Path], tmp_path: Path
) -> None:
    archive = tmp_path / "prod.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(dumps["sql.gz"], "./main.sql.gz")
        tar.add(dumps["custom"], "../../etc/x")  # a name, never a path
        tar.add(dumps["sql"], "unused.sql")
    target = f"{WEIRD_NAME} two"
    maps = ["--map", "erp_main=main.sql.gz", "--map", f"{target}=../../etc/x"]
    proc = run(script, clean, *maps, "--dump", str(archive), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary_of(proc.stdout).startswith(f"restored 2 databases (erp_main, {target}) in ")
    for db in ("erp_main", target):
        assert_odoo_restored(clean, db)
    assert len(templates_of(clean)) == 2
    assert not (tmp_path.parent.parent / "etc" / "x").exists()
    assert not (tmp_path / "pwned").exists()

    proc = run(script, clean, *maps, "--dump", str(archive), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all from cached templates" in summary_of(proc.stdout)

    proc = run(script, clean, "--map", "erp_x=absent.sql", "--dump", str(archive))
    assert proc.returncode == 1
    assert summary_of(proc.stdout) == "restore into erp_x failed: not in the archive: absent.sql"
    assert "erp_x" not in databases(clean)


@pytest.mark.live
def test_builtin_neutralisation_touches_existing_tables_only(
    script: Path, clean: Cluster, tmp_path: Path
) -> None:
    dump = tmp_path / "odoo.sql"
    dump.write_text(
        ODOO_SCHEMA.split("INSERT INTO res_partner")[0]
        + "INSERT INTO ir_config_parameter (key, value) VALUES ('database.is_neutralized', 'no');\n"
    )
    proc = run(script, clean, "--name", "erp_test", "--dump", str(dump), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "neutralized (ir_mail_server, ir_cron, ir_config_parameter)" in summary_of(proc.stdout)
    assert clean.psql("SELECT count(*) FROM ir_mail_server WHERE active", db="erp_test") == "0"
    assert clean.psql("SELECT count(*) FROM ir_cron WHERE active", db="erp_test") == "0"
    assert clean.psql("SELECT key, value FROM ir_config_parameter ORDER BY id", db="erp_test") == (
        "web.base.url|https://erp.example.com\ndatabase.is_neutralized|true"
    )
    (tmp_path / "other.sql").write_text("CREATE TABLE ir_cron_log (active boolean);\n")
    proc = run(script, clean, "--name", "plain", "--dump", str(tmp_path / "other.sql"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing to neutralize" in summary_of(proc.stdout)
    proc = run(script, clean, "--name", "kept", "--dump", str(dump), "--no-neutralize")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert clean.psql("SELECT count(*) FROM ir_cron WHERE active", db="kept") == "2"


@pytest.mark.live
def test_neutralize_command_runs_on_the_restored_database(
    script: Path, clean: Cluster, dumps: dict[str, Path]
) -> None:
    marker = (
        "import os, subprocess, sys\n"
        "assert sys.argv[1] == os.environ['ANYBOX_CI_DB']\n"
        "subprocess.run(['psql', '-X', '-q', '-c', 'CREATE TABLE neutralized (by text)'],"
        " env=dict(os.environ, PGDATABASE=sys.argv[1]), check=True)\n"
    )
    args = ["--name", "erp_test", "--dump", str(dumps["sql"]), "--cache-key", "cmd"]
    proc = run(script, clean, *args, "--", sys.executable, "-c", marker, "{db}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"neutralized by {Path(sys.executable).name}" in summary_of(proc.stdout)
    assert clean.psql("SELECT count(*) FROM neutralized", db="erp_test") == "0"
    # not the built-in SQL: the crons are as in the dump
    assert clean.psql("SELECT count(*) FROM ir_cron WHERE active", db="erp_test") == "2"

    proc = run(script, clean, *args, "--", sys.executable, "-c", "raise SystemExit(3)")
    assert proc.returncode == 1
    assert summary_of(proc.stdout) == (
        "restore into erp_test failed: neutralize command exited with code 3"
    )
    assert "erp_test" not in databases(clean)
    assert len(templates_of(clean)) == 1  # the first one; the failed one was never made


@pytest.mark.live
def test_failing_dump_leaves_nothing(script: Path, clean: Cluster, tmp_path: Path) -> None:
    clean.psql("CREATE DATABASE erp_test")
    dump = tmp_path / "broken.sql.gz"
    dump.write_bytes(
        gzip.compress(b"CREATE TABLE a (x int);\nINSERT INTO nope VALUES (1);\nSELECT 1/0;\n")
    )
    proc = run(script, clean, "--name", "erp_test", "--dump", str(dump))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert summary_of(proc.stdout) == (
        'restore into erp_test failed: ERROR: relation "nope" does not exist'
    )
    assert templates_of(clean) == [] and "erp_test" not in databases(clean)

    truncated = tmp_path / "truncated.sql.gz"
    lines = "".join(f"SELECT {i};\n" for i in range(100000)).encode()
    truncated.write_bytes(gzip.compress(lines)[:20000])
    proc = run(script, clean, "--name", "erp_test", "--dump", str(truncated))
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("restore into erp_test failed: unreadable dump")
    assert templates_of(clean) == []

    custom = tmp_path / "broken.dump"
    custom.write_bytes(b"PGDMP" + os.urandom(200))
    proc = run(script, clean, "--name", "erp_test", "--dump", str(custom), "--no-cache")
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("restore into erp_test failed: pg_restore: ")
    assert templates_of(clean) == []


@pytest.mark.live
def test_dump_cannot_run_psql_commands(script: Path, clean: Cluster, tmp_path: Path) -> None:
    for i, attack in enumerate(
        (
            b"\\! touch pwned\n",
            b"SELECT 1 \\g |touch pwned\n",
            b"\\unrestrict 0123456789abcdef\n\\! touch pwned\n",
            b"\\copy (SELECT 1) TO PROGRAM 'touch pwned'\n",
            b"\\set ON_ERROR_STOP off\n\\! touch pwned\n",
        )
    ):
        dump = tmp_path / f"evil{i}.sql"
        dump.write_bytes(b"CREATE TABLE t (x int);\n" + attack)
        proc = run(script, clean, "--name", "erp_test", "--dump", str(dump), cwd=tmp_path)
        assert proc.returncode == 1, (attack, proc.stdout, proc.stderr)
        assert "backslash command" in summary_of(proc.stdout), proc.stdout
        assert not (tmp_path / "pwned").exists()
        assert templates_of(clean) == [] and "erp_test" not in databases(clean)


@pytest.mark.live
def test_hostile_database_name(script: Path, clean: Cluster, dumps: dict[str, Path]) -> None:
    for _ in range(2):
        proc = run(script, clean, f"--name={WEIRD_NAME}", "--dump", str(dumps["custom"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary_of(proc.stdout).startswith(f"{WEIRD_NAME} from cached template ")
    assert_odoo_restored(clean, WEIRD_NAME)
    assert "postgres" in databases(clean)


@pytest.mark.live
def test_concurrent_first_restores_make_one_template(
    script: Path, clean: Cluster, tmp_path: Path
) -> None:
    dump = tmp_path / "slow.sql"
    dump.write_text("CREATE TABLE t (x int);\nSELECT pg_sleep(1);\nINSERT INTO t VALUES (1);\n")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "--name", name, "--dump", str(dump)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean.env,
        )
        for name in ("db_one", "db_two")
    ]
    outs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    assert sorted(lines_of(out)["restore_cache"] for out in outs) == ["hit", "miss"]
    assert any("waiting for another restore of the same dump" in out for out in outs)
    assert len(templates_of(clean)) == 1
    for db in ("db_one", "db_two"):
        assert clean.psql("SELECT x FROM t", db=db) == "1"


class AuthHandler(http.server.SimpleHTTPRequestHandler):
    expected = "Basic " + base64.b64encode(b"backup:s3cr3t-not-for-logs").decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(AuthHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.live
def test_url_with_credentials_from_environment(
    script: Path, clean: Cluster, dumps: dict[str, Path], http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    shutil.copy(dumps["custom.gz"], root / "prod.dump.gz")
    url = f"{base}/prod.dump.gz?X-Signature=sig-not-for-logs"
    secret = "backup:s3cr3t-not-for-logs"
    proc = run(script, clean, "--name", "erp_test", "--url", url, "--auth-env", "DUMP_AUTH")
    assert proc.returncode == 2
    assert summary_of(proc.stdout) == "restore failed: --auth-env: DUMP_AUTH is not set"
    proc = run(
        script, clean, "--name", "erp_test", "--url", url, "--auth-env", "DUMP_AUTH",
        DUMP_AUTH="backup:wrong",
    )  # fmt: skip
    assert proc.returncode == 1
    assert summary_of(proc.stdout) == (
        f"restore into erp_test failed: download of {base}/prod.dump.gz failed: Unauthorized"
    )
    proc = run(
        script, clean, "--name", "erp_test", "--url", url, "--auth-env", "DUMP_AUTH",
        DUMP_AUTH=secret,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_odoo_restored(clean, "erp_test")
    assert f"downloading {base}/prod.dump.gz\n" in proc.stdout
    for text in ("s3cr3t", "sig-not-for-logs"):
        assert text not in proc.stdout + proc.stderr
    proc = run(script, clean, "--name", "erp_test", "--url", f"http://u:{secret}@127.0.0.1/x")
    assert proc.returncode == 2
    assert "credentials do not belong in --url" in summary_of(proc.stdout)
