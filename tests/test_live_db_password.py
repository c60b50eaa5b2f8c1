"""A PostgreSQL password given as a secret really logs the build in, and a wrong one fails it.

The cluster (``pg_password_cluster``) trusts nobody: every connection, over its socket or
loopback, must authenticate with ``scram-sha-256``. So a green cell proves that the build
sent the right password, not that it was let in anyway.

The path is the admin's: ``workers.cfg`` gives each worker a capability line
``postgresql MAJOR ... user=ROLE password=SECRET``, the secret's file holds the password, and
the manifest's cells build on those workers. Worker ``wright``'s secret holds the role's
password, worker ``wwrong``'s a wrong one; each builds its own buildout (a capability that
only it offers), at the same time, on one real master.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import RESULTS, Master, WorkerProcess, offer_line
from anybox_ci.devtools.pgcluster import Cluster

pytestmark = pytest.mark.live

ROLE = "ci_pwbuild"
DB_PREFIX = "pwlive"
#: what the test step prints once logged in: it only reaches psql's output over a session
BANNER = "logged-in-as-"
WORKER_PASSWORDS = {"wright": "wright-Worker-pw-1", "wwrong": "wwrong-Worker-pw-2"}


@dataclass
class PasswordBuilds:
    master: Master
    cluster: Cluster
    password: str  # the role's real password
    wrong: str  # what worker wwrong's secret holds instead
    builds: dict[str, dict[str, Any]]  # builder -> its (only) build
    workers: dict[str, Path]  # worker name -> its base folder

    def steps(self, builder: str) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.master.steps(self.builds[builder]["buildid"])}


@pytest.fixture(scope="module")
def password_builds(
    tmp_path_factory: pytest.TempPathFactory, pg_password_cluster: Cluster
) -> Iterator[PasswordBuilds]:
    cluster = pg_password_cluster
    root = tmp_path_factory.mktemp("dbpassword")
    password = "Pw-" + secrets.token_urlsafe(16) + ":'\\"  # pgpass and SQL specials
    wrong = "Wrong-" + secrets.token_urlsafe(16)
    cluster.create_role(ROLE, password)
    folder = root / "buildouts"
    folder.mkdir()
    (folder / "buildout.cfg").write_text("[buildout]\nparts =\n")
    test = f"psql -XAt -v ON_ERROR_STOP=1 -c \"SELECT '{BANNER}' || current_user\""
    manifest = f"""
[DEFAULT]
build-for = postgresql == {cluster.major}
db-steps = simple_create
post-buildout-steps = test-command
test-command = {test}

[right]
buildout = standalone {folder / "buildout.cfg"}
build-requires = rightpw

[wrong]
buildout = standalone {folder / "buildout.cfg"}
build-requires = wrongpw
"""
    offer = offer_line(cluster, user=ROLE)
    workers = f"""
[wright]
password = secret:worker-wright
db_prefix = {DB_PREFIX}
capability =
    {offer} password=pg-right
    rightpw

[wwrong]
password = secret:worker-wwrong
db_prefix = {DB_PREFIX}
capability =
    {offer} password=pg-wrong
    wrongpw
"""
    master = Master(root / "master")
    master.create(
        manifest,
        workers,
        secrets={
            **{f"worker-{name}": pw for name, pw in WORKER_PASSWORDS.items()},
            "pg-right": password,
            "pg-wrong": wrong,
        },
    )
    procs = [
        WorkerProcess(root / name, name, pw, master.pb_port)
        for name, pw in WORKER_PASSWORDS.items()
    ]
    builders = [f"right-pg{cluster.major}", f"wrong-pg{cluster.major}"]
    try:
        master.start()
        for proc in procs:
            proc.start()
        master.wait(lambda: master.connected_workers() == set(WORKER_PASSWORDS), 60, "workers")
        master.wait_buildsets([master.force(name) for name in builders], timeout=600)
        builds = {}
        for name in builders:
            found = master.builds(name)
            assert len(found) == 1, f"{name}: {len(found)} builds"
            builds[name] = found[0]
        yield PasswordBuilds(
            master, cluster, password, wrong, builds, {p.name: p.basedir for p in procs}
        )
    finally:
        for proc in procs:
            proc.stop()
        master.stop()


def _connections(log: str, user: str, database: str) -> list[list[str]]:
    """The server log lines of each connection of ``user`` to ``database``, by backend."""
    by_pid: dict[str, list[str]] = {}
    for line in log.splitlines():
        match = re.search(r"\[(\d+)\] (?:LOG|FATAL|DETAIL):", line)
        if match:
            by_pid.setdefault(match.group(1), []).append(line)
    authorized = f"connection authorized: user={user} database={database} "
    return [lines for lines in by_pid.values() if any(authorized in line for line in lines)]


def test_the_right_password_logs_the_build_in(password_builds: PasswordBuilds) -> None:
    run = password_builds
    builder = f"right-pg{run.cluster.major}"
    build = run.builds[builder]
    assert RESULTS[build["results"]] == "SUCCESS", build["state_string"]
    steps = run.steps(builder)
    assert steps["create_db"]["results"] == 0, steps["create_db"]["state_string"]
    output = run.master.step_log(build["buildid"], "test")
    assert f"{BANNER}{ROLE}" in output
    # the step's environment names the password file, and holds no password itself
    header = output.split(f"{BANNER}{ROLE}")[0]
    assert "PGPASSFILE=" in header
    assert not re.search(r"\bPGPASSWORD=\S", header), header
    assert run.password not in output


def test_the_server_saw_a_password_login_and_nothing_trusted(
    password_builds: PasswordBuilds,
) -> None:
    run = password_builds
    cluster = run.cluster
    # no way in without a password: every rule of the live pg_hba is scram-sha-256
    methods = cluster.psql("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
    assert methods.split() == ["scram-sha-256"]
    assert cluster.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{ROLE}'").startswith(
        "SCRAM-SHA-256$"
    )
    database = f"{DB_PREFIX}-right-pg{cluster.major}"
    sessions = _connections(cluster.logfile.read_text(errors="replace"), ROLE, database)
    assert sessions, f"no connection of {ROLE} to {database} in {cluster.logfile}"
    if cluster.major >= 14:  # the server names the method that authenticated each session
        for lines in sessions:
            assert any(
                f'connection authenticated: identity="{ROLE}" method=scram-sha-256' in line
                for line in lines
            ), lines


def test_a_wrong_password_fails_the_cell(password_builds: PasswordBuilds) -> None:
    run = password_builds
    builder = f"wrong-pg{run.cluster.major}"
    build = run.builds[builder]
    assert RESULTS[build["results"]] == "FAILURE", build["state_string"]
    steps = run.steps(builder)
    create = steps["create_db"]
    assert RESULTS[create["results"]] == "FAILURE"
    assert "test" not in steps or steps["test"]["results"] is None  # never ran
    failed = f'password authentication failed for user "{ROLE}"'
    assert failed in run.master.step_log(build["buildid"], "create_db")
    assert f"FATAL:  {failed}" in run.cluster.logfile.read_text(errors="replace")
    name = f"{DB_PREFIX}-wrong-pg{run.cluster.major}"
    assert run.cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "0"


def test_the_failed_step_says_the_password_was_refused(password_builds: PasswordBuilds) -> None:
    run = password_builds
    create = run.steps(f"wrong-pg{run.cluster.major}")["create_db"]
    assert f'password authentication failed for user "{ROLE}"' in create["state_string"]


def test_the_passwords_stay_secret(password_builds: PasswordBuilds) -> None:
    """In no step log, build property, API answer or twistd.log; the file is gone."""
    run = password_builds
    master = run.master
    texts = [json.dumps(master.get(path)) for path in ("workers", "builders")]
    for build in run.builds.values():
        texts.append(master.raw(f"builds/{build['buildid']}/properties").decode())
        for step in master.steps(build["buildid"]):
            for log in master.get(f"steps/{step['stepid']}/logs")["logs"]:
                texts.append(master.raw(f"logs/{log['logid']}/raw").decode(errors="replace"))
    assert any(BANNER in text for text in texts)  # the logs were really read
    texts.append(master.log())
    for folder in run.workers.values():
        texts.append((folder / "twistd.log").read_text(errors="replace"))
    for secret in (run.password, run.wrong, *WORKER_PASSWORDS.values()):
        assert not [t for t in texts if secret in t]
    for folder in run.workers.values():
        assert not list(folder.glob("*/.anybox-ci-pgpass")), "the password file is removed"
