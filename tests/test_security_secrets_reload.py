"""D9: a reconfig sees the secret files as they are.

Buildbot's ``SecretInAFile`` reads its folder only when its own configuration changes: a
worker added with a new secret file broke the reconfig half-way ("configuration update
partially applied; master may malfunction", then ``buildbot stop`` hung), and a rotated
database password was ignored until a restart. ``anybox_ci.render.secrets.SecretsFolder``
reads a secret's file at each use, and a worker whose secret is missing is locked out
alone (``WorkerPassword``) instead of breaking the reconfig.

Live: a real master and workers, a PostgreSQL that asks for a password (a passing build
proves which password the build got), real reconfigs and a real ``buildbot stop``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import defer

from anybox_ci.devtools.localmaster import Master, WorkerProcess, make_sample_repo
from anybox_ci.render.secrets import SecretsFolder, WorkerPassword
from anybox_ci.resources import console_script, master_cfg_sample
from tests.pgpassword import PasswordCluster, password_cluster, password_offer, write_secret

__all__ = ["password_cluster"]  # the fixture, used by name

#: what master.cfg says to read secrets at each use
SECRETS_FOLDER = (
    "\nfrom anybox_ci.render.secrets import SecretsFolder\n"
    "c['secretsProviders'] = [SecretsFolder(dirname=os.path.join(basedir, 'secrets'))]\n"
)


# ---------------------------------------------------------------- the provider


def test_secrets_folder_reads_each_secret_when_used(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    provider = SecretsFolder(dirname=str(folder))
    provider.reconfigService(dirname=str(folder))
    assert provider.get("worker-w1") is None
    (folder / "worker-w1").write_text("first\n")
    (folder / "worker-w1").chmod(0o600)
    assert provider.get("worker-w1") == "first"  # a file added after the configuration
    (folder / "worker-w1").write_text("rotated\n")
    assert provider.get("worker-w1") == "rotated"  # a rotated one
    for name in ("../secrets/worker-w1", ".hidden", "a/b", "", ".."):
        assert provider.get(name) is None
    (folder / "open").write_text("x")
    (folder / "open").chmod(0o644)
    assert provider.get("open") is None  # readable by others: refused, as SecretInAFile does
    (tmp_path / "elsewhere").write_text("x")
    os.symlink(tmp_path / "elsewhere", folder / "link")
    assert provider.get("link") is None  # a link is not followed out of the folder


def test_a_missing_worker_secret_locks_that_worker_out_only() -> None:
    no_secrets = SimpleNamespace(get=lambda name: defer.succeed(None))
    props = SimpleNamespace(master=SimpleNamespace(namedServices={"secrets": no_secrets}))
    results: list[Any] = []
    WorkerPassword("w2", "worker-w2").getRenderingFor(props).addBoth(results.append)
    (password,) = results
    assert isinstance(password, str) and len(password) >= 32  # no exception: a random one


def test_the_shipped_master_cfg_reads_secrets_at_use() -> None:
    """The sample (and so ``anybox-ci init``) must not cache secrets like SecretInAFile."""
    text = master_cfg_sample()
    assert "SecretsFolder" in text and "SecretInAFile" not in text


# ---------------------------------------------------------------- live


def _stop_within(master: Master, seconds: float) -> None:
    proc = subprocess.run(
        [console_script("buildbot"), "stop", str(master.basedir)],
        env=master._env(),
        capture_output=True,
        text=True,
        timeout=seconds,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (master.basedir / "twistd.pid").exists()


@pytest.mark.live
def test_reconfig_adds_a_worker_and_rotates_a_password(
    tmp_path: Path, password_cluster: PasswordCluster
) -> None:
    cluster = password_cluster
    cluster.set_password("pg-first-3e1b")
    erp = make_sample_repo("passing", tmp_path / "repos")
    manifest = f"""
[erp]
buildout = git file://{erp} main buildout.cfg
build-for = postgresql == {cluster.major}
db-steps = simple_create
post-buildout-steps = install-modules-test
odoo-addons = sample
"""
    workers = (
        f"[w1]\npassword = secret:worker-w1\ncapability = {password_offer(cluster, 'pg-ci')}\n"
    )
    sample = master_cfg_sample()
    master = Master(
        tmp_path / "master", extra_config="" if "SecretsFolder" in sample else SECRETS_FOLDER
    )
    master.create(manifest, workers, secrets={"worker-w1": "w1-pw-1234", "pg-ci": "pg-first-3e1b"})
    w1 = WorkerProcess(tmp_path / "w1", "w1", "w1-pw-1234", master.pb_port)
    w2 = WorkerProcess(tmp_path / "w2", "w2", "w2-pw-5678", master.pb_port)
    builder = f"erp-pg{cluster.major}"
    try:
        master.start()
        w1.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker w1")

        # a worker owner's fragment and its new secret file, then a reconfig
        write_secret(master, "worker-w2", "w2-pw-5678")
        (master.basedir / "workers.d").mkdir()
        (master.basedir / "workers.d" / "w2.cfg").write_text("[w2]\npassword = secret:worker-w2\n")
        done = master.log().count("configuration update complete")
        master.reconfig()
        master.wait(
            lambda: master.log().count("configuration update complete") > done, 60, "reconfig"
        )
        assert "partially applied" not in master.log()
        w2.start()
        master.wait(lambda: master.connected_workers() == {"w1", "w2"}, 60, "worker w2")

        # the database password is rotated: the server's, then the secret file's
        cluster.set_password("pg-rotated-77c2")
        write_secret(master, "pg-ci", "pg-rotated-77c2")
        done = master.log().count("configuration update complete")
        master.reconfig()
        master.wait(
            lambda: master.log().count("configuration update complete") > done, 60, "reconfig"
        )
        master.wait_buildsets([master.force(builder)], 300)
        build = master.builds(builder)[-1]
        # only the new password opens the database now
        assert build["results"] == 0, build["state_string"]
        assert "partially applied" not in master.log()
        _stop_within(master, 60)
    finally:
        w2.stop()
        w1.stop()
        master.stop()


def test_check_can_warn_about_a_secret_without_its_file(tmp_path: Path) -> None:
    """``anybox-ci check`` said ok while a worker's secret file was missing: the core has
    the check (``core.workers.missing_secrets``), a warning at the worker's section."""
    from anybox_ci.core.diagnostics import Diagnostics
    from anybox_ci.core.workers import load_workers, missing_secrets

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "worker-w1").write_text("x")
    path = tmp_path / "workers.cfg"
    path.write_text(
        "[w1]\npassword = secret:worker-w1\ncapability = postgresql 15 password=pg-w1\n"
        "\n[w2]\npassword = secret:worker-w2\n"
    )
    diags = Diagnostics()
    found = load_workers([path], diags)
    missing_secrets(found, tmp_path / "secrets", diags)
    assert [str(d) for d in diags.items] == [
        f"{path}:1: warning: [w1] capability: secret 'pg-w1' has no file in {tmp_path / 'secrets'}",
        f"{path}:5: warning: [w2] password: secret 'worker-w2' has no file in {tmp_path / 'secrets'}",
    ]
