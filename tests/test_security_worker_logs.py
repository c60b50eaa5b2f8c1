"""D14: no secret in a worker's own logs nor in the step logs.

A PostgreSQL password used to travel as ``PGPASSWORD`` in each step's environment, which
the worker writes in clear to its ``twistd.log`` (mode 644); ``ANYBOX_CI_HOOK_SECRET`` in a
worker's environment was shown in every step's log header. Now the password is rendered on
the master into a password file sent to the build's folder (mode 600, ``PGPASSFILE``,
removed at the end), and known secret variables of the worker's environment are removed
from every step's environment.

Live: a real worker whose PostgreSQL asks for a password, so a passing build proves the
password reached libpq; then the worker's twistd.log, the files it keeps and every step
log are searched for both secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.process.results import SUCCESS
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectShell, TestBuildStepMixin
from twisted.trial import unittest

from anybox_ci.core.capabilities import CapabilityRegistry
from anybox_ci.devtools.localmaster import Master, WorkerProcess, make_sample_repo, tool_env
from anybox_ci.render.buildsteps import CellEnv, PgPassFile, UtilStep, pgpass_line
from tests.pgpassword import (
    PasswordCluster,
    build_logs,
    password_cluster,
    password_offer,
    worker_logs,
)

__all__ = ["password_cluster"]  # the fixture, used by name

PG_PASSWORD = "pg-Secret-8d1f:x\\y"
HOOK_SECRET = "hook-Secret-51c9"

OFFERS = [
    {
        "name": "postgresql",
        "version": "15",
        "options": {"port": "5433", "host": "127.0.0.1", "user": "ci", "password": "worker-ci1.pg"},
    }
]


def test_pgpass_lines_escape_separators() -> None:
    assert pgpass_line("5433", "a:b\\c") == "*:5433:*:*:a\\:b\\\\c\n"
    assert pgpass_line("", "x") == "*:*:*:*:x\n"
    with pytest.raises(ValueError):
        pgpass_line("5433", "two\nlines")


class CellEnvSecrets(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    """The environment a step sends to the worker: no password, no hook secret."""

    def setUp(self) -> Any:
        self.setup_test_reactor()
        return self.setup_test_build_step(with_secrets={"worker-ci1.pg": PG_PASSWORD})

    def _props(self) -> None:
        self.build.setProperty("anybox_capabilities", OFFERS, "Worker")
        self.build.setProperty("anybox_cell_versions", [["postgresql", "15"]], "Builder")
        self.build.setProperty("builddir", "/w/erp-pg15", "Worker")

    def test_the_env_names_the_password_file_not_the_password(self) -> Any:
        self.setup_step(UtilStep(name="t", command=["bin/test"], env=CellEnv(CapabilityRegistry())))
        self._props()
        self.expect_commands(
            ExpectShell(
                workdir="wkdir",
                command=["bin/test"],
                env={
                    "PGPORT": "5433",
                    "PGHOST": "127.0.0.1",
                    "PGUSER": "ci",
                    "PG_VERSION": "15",
                    "PGPASSFILE": "/w/erp-pg15/.anybox-ci-pgpass",
                    "PGPASSWORD": None,  # not even one from the worker's environment
                    "ANYBOX_CI_HOOK_SECRET": None,
                },
            ).exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def test_the_password_file_holds_the_secret(self) -> Any:
        env = CellEnv(CapabilityRegistry())
        self.setup_step(UtilStep(name="t", command=["true"]))
        self._props()
        d = self.build.render(PgPassFile(env))
        d.addCallback(lambda text: self.assertEqual(text, pgpass_line("5433", PG_PASSWORD)))
        return d


# ---------------------------------------------------------------- live


@pytest.mark.live
def test_no_secret_in_worker_logs_nor_step_logs(
    tmp_path: Path, password_cluster: PasswordCluster
) -> None:
    cluster = password_cluster
    cluster.set_password(PG_PASSWORD)
    erp = make_sample_repo("passing", tmp_path / "repos")
    manifest = f"""
[erp]
buildout = git file://{erp} main buildout.cfg
build-for = postgresql == {cluster.major}
db-steps = simple_create
post-buildout-steps = install-modules-test
odoo-addons = sample
"""
    # the worker owner's fragment names its own PostgreSQL secret
    workers = "[w1]\npassword = secret:worker-w1\n"
    master = Master(tmp_path / "master")
    master.create(manifest, "", secrets={"worker-w1": "w1-pw-1234", "worker-w1.pg": PG_PASSWORD})
    (master.basedir / "workers.d").mkdir()
    (master.basedir / "workers.d" / "w1.cfg").write_text(
        workers + f"capability = {password_offer(cluster, 'worker-w1.pg')}\n"
    )
    env = dict(tool_env(), ANYBOX_CI_HOOK_SECRET=HOOK_SECRET, PGPASSWORD="")
    env.pop("PGPASSWORD")
    worker_dir = tmp_path / "w1"
    worker = WorkerProcess(worker_dir, "w1", "w1-pw-1234", master.pb_port, env=env)
    builder = f"erp-pg{cluster.major}"
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")
        master.wait_buildsets([master.force(builder)], 300)
        build = master.builds(builder)[-1]
        # the cluster asks for a password: a passing build got it, through the file
        assert build["results"] == 0, build["state_string"]
        logs = build_logs(master, build["buildid"])
        assert "PGPASSFILE" in logs["create_db/stdio"]
    finally:
        worker.stop()
        master.stop()
    for secret in (PG_PASSWORD, HOOK_SECRET):
        assert not [name for name, text in logs.items() if secret in text], secret
        found = worker_logs(worker_dir)
        assert any(p.name == "twistd.log" for p in found)
        assert not [p for p, text in found.items() if secret in text], secret
    assert not list(worker_dir.glob("*/.anybox-ci-pgpass"))  # removed at the end
    assert HOOK_SECRET not in master.log() and PG_PASSWORD not in master.log()
