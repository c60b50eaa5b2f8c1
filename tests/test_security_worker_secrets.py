"""D4: a worker fragment cannot read a master secret that is not its own.

Worker owners register through ``workers.d/*.cfg`` fragments. A fragment used to pass
``check`` with ``capability = postgresql 15 ... password=admin-password``, and a build on
that worker then received the web admin password. A fragment may now name only its
worker's own secrets, ``worker-NAME`` and ``worker-NAME.SUFFIX`` (worker names hold no dot,
so no worker can claim another's); the admin's ``workers.cfg`` may name any secret. A
foreign secret is a ``FILE:LINE`` error, so the master refuses the configuration: the
fragment's worker is never configured, never connects, and no build ever runs on it.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from anybox_ci import cli
from anybox_ci.core.workers import fragment_secret_error
from anybox_ci.devtools.localmaster import Master, WorkerProcess, make_sample_repo, offer_line

ADMIN_SECRET = "web-admin-Pa55word"


def _master_dir(root: Path, fragment: str, workers: str = "") -> Path:
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n"
    )
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(
        workers or "[ci1]\npassword = secret:worker-ci1\ncapability = postgresql 15\n"
    )
    (root / "workers.d").mkdir()
    (root / "workers.d" / "evil.cfg").write_text(fragment)
    return root


def _check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    rc = cli.main(["check", str(root)])
    return rc, [x for x in capsys.readouterr().out.splitlines() if ": warning: " not in x]


@pytest.mark.parametrize(
    "fragment, line, option",
    [
        (
            "[evil]\npassword = secret:worker-evil\n"
            "capability = postgresql 15 port=5432 password=admin-password\n",
            3,
            "capability",
        ),
        (
            "[evil]\npassword = secret:worker-evil\ncapability =\n    postgresql 15\n"
            "    postgresql 16 port=5433 password=worker-ci1\n",
            5,
            "capability",
        ),
        ("[evil]\npassword = secret:admin-password\n", 2, "password"),
        ("[evil]\npassword = secret:worker-ci1\n", 2, "password"),  # another worker's
        ("[evil]\npassword = secret:worker-evilx\n", 2, "password"),
        ("[evil]\npassword = secret:worker-evil./../x\n", 2, "password"),
    ],
)
def test_check_refuses_a_fragment_naming_a_foreign_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fragment: str, line: int, option: str
) -> None:
    root = _master_dir(tmp_path, fragment)
    rc, errors = _check(root, capsys)
    assert rc == 1
    path = root / "workers.d" / "evil.cfg"
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{path}:{line}: [evil] {option}: "), errors
    assert "is not worker 'evil''s own" in errors[0]


def test_a_fragment_may_name_its_own_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fragment = (
        "[evil]\npassword = secret:worker-evil\ncapability =\n"
        "    postgresql 15 password=worker-evil.pg15\n    postgresql 16 password=worker-evil\n"
    )
    assert _check(_master_dir(tmp_path, fragment), capsys) == (0, [])


def test_the_admins_workers_file_may_name_any_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workers = "[ci1]\npassword = secret:ci1-pw\ncapability = postgresql 15 password=pg-admin\n"
    fragment = "[evil]\npassword = secret:worker-evil\n"
    assert _check(_master_dir(tmp_path, fragment, workers), capsys) == (0, [])


def test_no_worker_name_can_claim_another_workers_secrets() -> None:
    # worker names hold no dot: "worker-a.b" is worker a's, never worker "a.b"'s
    assert fragment_secret_error("ci", "worker-ci-alice")
    assert not fragment_secret_error("ci-alice", "worker-ci-alice")
    assert not fragment_secret_error("ci", "worker-ci.alice")
    assert fragment_secret_error("ci-alice", "worker-ci.alice")


# ---------------------------------------------------------------- live


@pytest.mark.live
def test_a_hostile_fragment_never_gets_a_build_nor_the_secret(
    tmp_path: Path, pg_clusters: dict[int, Any]
) -> None:
    cluster = pg_clusters[max(pg_clusters)]
    erp = make_sample_repo("passing", tmp_path / "repos")
    manifest = f"""
[erp]
buildout = git file://{erp} main buildout.cfg
build-for = postgresql == {cluster.major}
post-buildout-steps = install-modules-test
odoo-addons = sample
"""
    workers = f"[w1]\npassword = secret:worker-w1\ncapability = {offer_line(cluster)}\n"
    master = Master(tmp_path / "master")
    master.create(
        manifest,
        workers,
        secrets={
            "worker-w1": "w1-pw-1234",
            "worker-evil": "evil-pw-1234",
            "admin-password": ADMIN_SECRET,
        },
    )
    w1 = WorkerProcess(tmp_path / "w1", "w1", "w1-pw-1234", master.pb_port)
    evil = WorkerProcess(tmp_path / "evil", "evil", "evil-pw-1234", master.pb_port)
    fragment = master.basedir / "workers.d" / "evil.cfg"
    try:
        master.start()
        w1.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker w1")
        # the worker owner drops a fragment naming the admin's secret; the admin reconfigures
        fragment.parent.mkdir()
        fragment.write_text(
            f"[evil]\npassword = secret:worker-evil\n"
            f"capability = {offer_line(cluster)} password=admin-password\n"
        )
        master.reconfig(check=False)
        error = f"{fragment}:3: [evil] capability: password=: secret 'admin-password'"
        master.wait(lambda: error in master.log(), 60, "the refused reconfig")
        with contextlib.suppress(subprocess.CalledProcessError):
            evil.start()  # the worker keeps trying; its start command says it did not connect
        time.sleep(10)
        assert master.connected_workers() == {"w1"}
        assert [w["name"] for w in master.get("workers")["workers"]] == ["w1"]
        assert not [b for b in master.builds() if b.get("workerid") not in (None, 1)]
        # a restart with the fragment in place is refused too
        master.stop()
        with pytest.raises(RuntimeError):
            master.start()
        assert error in master.log()
    finally:
        evil.stop()
        w1.stop()
        master.stop()
    for path in (tmp_path / "evil").rglob("*"):
        if path.is_file():
            assert ADMIN_SECRET not in path.read_text(errors="replace"), path
