"""Two real masters on one PostgreSQL database and a crossbar router, workers on each.

The set-up an admin makes (docs/production.md): a crossbar router (the WAMP message queue),
one PostgreSQL database (a session cluster of the newest configured major), and two masters
made from the shipped master.cfg.sample with ``ANYBOX_CI_DB_URL`` and ``ANYBOX_CI_MQ_URL``,
whose configurators read the same manifest folder. Worker ``w1`` connects to master ``m1``
only, ``w2`` to ``m2`` only. Light generic buildouts (no Odoo): ``anywhere`` runs on either
worker; ``on-w2`` requires a capability only ``w2`` offers. Their test step waits for a gate
file, so a test can hold a build in the middle.

Shown: a change posted to m1's hook builds on m2's worker; the same notification posted to
both masters at once is added and built once (the claim lives in the database); update-mirrors
delivers to either master and fails over when one is down; a master killed (SIGKILL) in the
middle of a build gets that build retried on the other master's worker when it comes back,
and nothing is lost. Stacks live in that database too: each master records the same green
build as one candidate, and an acceptance run on one master is the stable stack of both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.changes.protocol import Change, change_form
from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.devtools.crossbar import Router
from anybox_ci.devtools.localmaster import Master, WorkerProcess, git, http_request
from anybox_ci.devtools.pgcluster import Cluster
from anybox_ci.resources import console_script

pytestmark = pytest.mark.live

HOOK_USER, HOOK_PASSWORD = "anybox-ci", "hook-MM-pw-8642"
STACKS = "plugins/wsgi_dashboards/anybox-stacks/"
PASSWORDS = {"w1": "w1-MM-pw-1111", "w2": "w2-MM-pw-2222"}
WAIT_PY = """\
import pathlib, sys, time
gate = pathlib.Path(pathlib.Path("gate.txt").read_text().strip())
deadline = time.monotonic() + 300
while not gate.exists():
    if time.monotonic() > deadline:
        sys.exit("the gate never opened")
    time.sleep(0.1)
print("gate open, built", pathlib.Path("release.txt").read_text().strip())
"""


@dataclass
class Setup:
    root: Path
    config: Path  # the manifest folder both masters read
    masters: dict[str, Master]
    workers: dict[str, WorkerProcess]
    repos: dict[str, Path]
    gate: Path
    secret_file: Path

    def master_of(self, masterid: int) -> str:
        """``m1`` or ``m2``: which of ours registered as ``masterid``."""
        for entry in self.any_master().get("masters")["masters"]:
            if entry["masterid"] == masterid:
                for name, master in self.masters.items():
                    if entry["name"].endswith(str(master.basedir)):
                        return name
        raise AssertionError(f"unknown master {masterid}")

    def any_master(self) -> Master:
        for master in self.masters.values():
            if (master.basedir / "twistd.pid").exists():
                return master
        raise AssertionError("no master is running")

    def worker_name(self, workerid: int) -> str:
        workers = self.any_master().get(f"workers/{workerid}")["workers"]
        return str(workers[0]["name"])

    def commit(self, name: str, release: str) -> str:
        repo = self.repos[name]
        (repo / "release.txt").write_text(release + "\n")
        git(repo, "commit", "-q", "-am", release)
        return git(repo, "rev-parse", "HEAD")

    def change(self, name: str, revision: str) -> dict[str, str]:
        change = Change(f"file://{self.repos[name]}", "main", revision, "Dev <dev@example.com>",
                        "a change", ("release.txt",), time.time(), "git")  # fmt: skip
        return change_form(change.change_id, change)

    def builds_of(self, revision: str) -> list[dict[str, Any]]:
        """Every build whose sourcestamp is ``revision``."""
        master = self.any_master()
        found = []
        for build in master.get("builds?property=got_revision")["builds"]:
            got = build["properties"].get("got_revision", [None])[0]
            got = list(got.values()) if isinstance(got, dict) else [got]
            if revision in got:
                found.append(build)
        return found

    def wait_built(self, revision: str, timeout: float = 300) -> dict[str, Any]:
        master = self.any_master()
        master.wait(
            lambda: any(b["complete"] for b in self.builds_of(revision)),
            timeout,
            f"a build of {revision}",
        )
        return next(b for b in self.builds_of(revision) if b["complete"])

    def changes_of(self, revision: str) -> list[dict[str, Any]]:
        changes = self.any_master().get("changes")["changes"]
        return [c for c in changes if c["revision"] == revision]

    def update_mirrors(self, *urls: str) -> int:
        notify = [arg for url in urls for arg in ("--notify", url)]
        return update_mirrors_main(
            ["--master", str(self.config), "--root", str(self.root / "mirrors"), *notify,
             "--user", HOOK_USER, "--secret-file", str(self.secret_file)]
        )  # fmt: skip

    def wait_connected(self) -> None:
        for name, master in self.masters.items():
            worker = "w1" if name == "m1" else "w2"
            master.wait(lambda m=master, w=worker: w in m.connected_workers(), 120, worker)


def _repo(root: Path, name: str, gate: Path) -> Path:
    repo = root / name
    repo.mkdir(parents=True)
    (repo / "buildout.cfg").write_text("[buildout]\nparts =\n")
    (repo / "wait.py").write_text(WAIT_PY)
    (repo / "gate.txt").write_text(f"{gate}\n")
    (repo / "release.txt").write_text(f"{name} 1\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def _master_cfg_extra(config: Path) -> str:
    return (
        "from anybox_ci.render.secrets import SecretsFolder\n"
        f"c['secretsProviders'] = [SecretsFolder(dirname={str(config / 'secrets')!r})]\n"
        f"c['configurators'] = [AnyboxConfigurator({str(config)!r})]\n"
    )


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Cluster]
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("multimaster")
    db = pg_clusters[max(pg_clusters)]
    dbname = f"anybox_ci_mm_{os.getpid()}"
    db.psql(f"CREATE DATABASE {dbname}")
    gate = root / "gate"
    gate.touch()
    repos = {name: _repo(root / "repos", name, gate) for name in ("anywhere", "on-w2")}
    config = root / "config"
    (config / "buildouts").mkdir(parents=True)
    (config / "buildouts" / "MANIFEST.cfg").write_text(f"""
[DEFAULT]
db-steps =
post-buildout-steps = test-command
test-command = python3 wait.py

[anywhere]
buildout = git file://{repos["anywhere"]} main buildout.cfg

[on-w2]
buildout = git file://{repos["on-w2"]} main buildout.cfg
build-requires = tool2

[domain:both]
members = anywhere on-w2
acceptance-steps = members
""")
    (config / "workers.cfg").write_text(
        "[w1]\npassword = secret:worker-w1\ncapability = tool1 1.0\n\n"
        "[w2]\npassword = secret:worker-w2\ncapability = tool2 1.0\n"
    )
    secrets = config / "secrets"
    secrets.mkdir(mode=0o700)
    for key, value in {
        "worker-w1": PASSWORDS["w1"],
        "worker-w2": PASSWORDS["w2"],
        "change-hook-users": f"{HOOK_USER}:{HOOK_PASSWORD}",
    }.items():
        (secrets / key).write_text(value)
        (secrets / key).chmod(0o600)
    secret_file = root / "hook-secret"
    secret_file.write_text(HOOK_PASSWORD)
    secret_file.chmod(0o600)

    router = Router(root / "crossbar")
    masters: dict[str, Master] = {}
    workers: dict[str, WorkerProcess] = {}
    try:
        router.start()
        for name in ("m1", "m2"):
            master = Master(root / name, extra_config=_master_cfg_extra(config))
            master.env["ANYBOX_CI_DB_URL"] = (
                f"postgresql+psycopg2://{db.user}@/{dbname}?host={db.host}&port={db.port}"
            )
            master.env["ANYBOX_CI_MQ_URL"] = router.url
            master.env["START_TIMEOUT"] = "180"  # `buildbot start` waits; 2 busy cores are slow
            master.create()
            masters[name] = master
            master.start()
        for wname, mname in (("w1", "m1"), ("w2", "m2")):
            workers[wname] = WorkerProcess(
                root / wname, wname, PASSWORDS[wname], masters[mname].pb_port
            )
            workers[wname].start()
        ready = Setup(root, config, masters, workers, repos, gate, secret_file)
        ready.wait_connected()
        yield ready
    finally:
        for worker in workers.values():
            worker.stop()
        for master in masters.values():
            master.stop()
        router.stop()
        db.psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def test_both_masters_share_the_database_and_the_queue(setup: Setup) -> None:
    m1, m2 = setup.masters["m1"], setup.masters["m2"]
    names = {m["name"] for m in m1.get("masters")["masters"] if m["active"]}
    assert {setup.master_of(m["masterid"]) for m in m1.get("masters")["masters"]} >= {"m1", "m2"}
    assert len(names) >= 2
    # each master sees the other's worker connected: the state is shared
    assert m1.connected_workers() >= {"w1", "w2"}
    assert m2.connected_workers() >= {"w1", "w2"}
    for master in (m1, m2):
        assert "Starting wamp with config" in master.log()
        assert "Wamp connection succeed!" in master.log()


def test_a_change_posted_to_one_master_builds_on_a_worker_of_the_other(setup: Setup) -> None:
    revision = setup.commit("on-w2", f"on-w2 {time.time_ns()}")
    code, body = setup.masters["m1"].post(
        "change_hook/anybox",
        fields=setup.change("on-w2", revision),
        auth=(HOOK_USER, HOOK_PASSWORD),
    )
    assert code == 200, body
    build = setup.wait_built(revision)
    assert build["results"] == 0, build["state_string"]
    assert setup.worker_name(build["workerid"]) == "w2"
    assert setup.master_of(build["masterid"]) == "m2"


def test_the_same_notification_to_both_masters_at_once_builds_once(setup: Setup) -> None:
    revision = setup.commit("on-w2", f"on-w2 {time.time_ns()}")
    fields = setup.change("on-w2", revision)
    answers: list[tuple[int, bytes]] = []
    barrier = threading.Barrier(4)

    def post(master: Master) -> None:
        barrier.wait()
        answers.append(
            master.post("change_hook/anybox", fields=fields, auth=(HOOK_USER, HOOK_PASSWORD))
        )

    threads = [threading.Thread(target=post, args=(setup.masters[name],))
               for name in ("m1", "m2", "m1", "m2")]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(code for code, _ in answers) == [200] * 4, answers
    assert sorted(body for _, body in answers) == [b"1 change found"] + [b"no change found"] * 3
    build = setup.wait_built(revision)
    assert build["results"] == 0, build["state_string"]
    assert len(setup.changes_of(revision)) == 1
    # one change, so one build request: every build request of the builder is complete and
    # exactly one of them is for this revision
    master = setup.any_master()
    requests = master.get(f"builders/{build['builderid']}/buildrequests")["buildrequests"]
    assert all(r["complete"] for r in requests), requests
    assert len(setup.builds_of(revision)) == 1


def test_update_mirrors_delivers_to_either_master_and_fails_over(setup: Setup) -> None:
    m1, m2 = setup.masters["m1"], setup.masters["m2"]
    assert setup.update_mirrors(m1.url) == 0  # the mirrors' baseline, or nothing new
    first = setup.commit("anywhere", f"anywhere {time.time_ns()}")
    assert setup.update_mirrors(m2.url) == 0
    assert len(setup.changes_of(first)) == 1
    assert setup.wait_built(first)["results"] == 0
    second = setup.commit("anywhere", f"anywhere {time.time_ns()}")
    m1.stop()
    try:
        assert not (m1.basedir / "twistd.pid").exists()
        # m2 takes over the schedulers m1 ran: usually at once (RetryOrphans), but one CI run
        # on a loaded machine needed longer, so Buildbot's own 5-minute poll is allowed for
        m2id = next(m["masterid"] for m in m2.get("masters")["masters"]
                    if m["name"].endswith(str(m2.basedir)))  # fmt: skip
        m2.wait(
            lambda: all((s["master"] or {}).get("masterid") == m2id
                        for s in m2.get("schedulers")["schedulers"]),
            330,
            "m2 to run every scheduler",
        )  # fmt: skip
        # m1 first: it is down, so the change goes to m2
        assert setup.update_mirrors(m1.url, m2.url) == 0
        assert len(setup.changes_of(second)) == 1
        build = setup.wait_built(second)
        assert build["results"] == 0, build["state_string"]
        assert setup.worker_name(build["workerid"]) == "w2"  # w1's master is down
        assert setup.update_mirrors(m1.url, m2.url) == 0
        assert len(setup.changes_of(second)) == 1  # nothing spooled twice
    finally:
        m1.start()
        setup.wait_connected()


def test_a_master_killed_mid_build_gets_the_build_retried_on_the_other(setup: Setup) -> None:
    setup.gate.unlink()
    try:
        m1 = setup.masters["m1"]
        bsid = m1.force("anywhere", scheduler=_force_scheduler(m1, "anywhere"))
        (request,) = m1.get(f"buildrequests?buildsetid={bsid}")["buildrequests"]
        brid = request["buildrequestid"]

        def running() -> list[dict[str, Any]]:
            builds = m1.get(f"buildrequests/{brid}/builds")["builds"]
            return [b for b in builds if not b["complete"] and _test_step_started(m1, b)]

        m1.wait(lambda: bool(running()), 300, "the forced build to reach its test step")
        (held,) = running()
        victim = setup.master_of(held["masterid"])
        survivor = "m2" if victim == "m1" else "m1"
        victim_worker = setup.worker_name(held["workerid"])
        pid = int((setup.masters[victim].basedir / "twistd.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        setup.masters[survivor].wait(lambda: not _alive(pid), 30, f"{victim} to die")
        setup.workers[victim_worker].stop()  # its machine is gone with it
        setup.gate.touch()
        setup.masters[victim].start()  # a restart clears its entry: Buildbot unclaims its work
        master = setup.masters[survivor]
        master.wait_buildsets([bsid], timeout=300)
        (request,) = master.get(f"buildrequests/{brid}")["buildrequests"]
        builds = master.get(f"buildrequests/{brid}/builds")["builds"]
        assert [b["results"] for b in builds] == [5, 0], builds  # RETRY, then SUCCESS
        assert setup.master_of(builds[0]["masterid"]) == victim
        assert setup.master_of(builds[1]["masterid"]) == survivor
        assert setup.worker_name(builds[1]["workerid"]) != victim_worker
        assert request["results"] == 0 and request["complete"]
    finally:
        setup.gate.touch()
        for master in setup.masters.values():
            if not _running(master.basedir):
                master.start()
        for worker in setup.workers.values():
            if not _running(worker.basedir):
                subprocess.run(
                    [console_script("buildbot-worker"), "start", str(worker.basedir)],
                    env=worker.env, check=True, capture_output=True,
                )  # fmt: skip
        setup.wait_connected()


def test_stacks_live_in_the_database_both_masters_share(setup: Setup) -> None:
    m1, m2 = setup.masters["m1"], setup.masters["m2"]
    pinned = {}
    for name in ("anywhere", "on-w2"):
        revision = setup.commit(name, f"{name} {time.time_ns()}")
        code, body = m1.post(
            "change_hook/anybox",
            fields=setup.change(name, revision),
            auth=(HOOK_USER, HOOK_PASSWORD),
        )
        assert code == 200, body
        assert setup.wait_built(revision)["results"] == 0
        pinned[name] = revision

    # every master records each green build; the database keeps one candidate of each
    def candidates(master: Master, buildout: str) -> list[dict[str, Any]]:
        return list(_stacks_api(master, f"api/candidates/{buildout}")["candidates"])

    for master in (m1, m2):
        for name, revision in pinned.items():
            master.wait(
                lambda m=master, n=name, r=revision: any(
                    c["revisions"][0]["revision"] == r for c in candidates(m, n)
                ),
                60,
                f"the candidate of {name} at {revision}",
            )
            same = [
                c for c in candidates(master, name) if c["revisions"][0]["revision"] == revision
            ]
            assert len(same) == 1, same

    # acceptance forced on m2 freezes unstable, rebuilds both members and promotes: m1 sees it
    bsid = m2.force("both-acceptance", scheduler="stack-acceptance-both")
    m2.wait_buildsets([bsid], timeout=400)
    (build,) = m2.get(f"builds?buildrequestid={_request_of(m2, bsid)}")["builds"]
    assert build["results"] == 0, build["state_string"]
    (domain,) = _stacks_api(m1, "api/stacks?domain=both")["domains"]
    stable = domain["channels"]["stable"]
    stack = _stacks_api(m1, f"api/stacks/both/{stable}")
    revisions = {m["buildout"]: m["revisions"][0]["revision"] for m in stack["members"]}
    assert revisions == pinned, stack


def _stacks_api(master: Master, path: str) -> Any:
    status, body = http_request(master.url + STACKS + path)
    assert status == 200, body
    return json.loads(body)


def _request_of(master: Master, bsid: int) -> int:
    (request,) = master.get(f"buildrequests?buildsetid={bsid}")["buildrequests"]
    return int(request["buildrequestid"])


def _force_scheduler(master: Master, builder: str) -> str:
    """The force form of ``builder``'s buildout: the narrowest one that forces it."""
    forms = [f for f in master.get("forceschedulers")["forceschedulers"]
             if builder in f["builder_names"]]  # fmt: skip
    return str(min(forms, key=lambda f: len(f["builder_names"]))["name"])


def _running(basedir: Path) -> bool:
    pidfile = basedir / "twistd.pid"
    return pidfile.exists() and _alive(int(pidfile.read_text()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _test_step_started(master: Master, build: dict[str, Any]) -> bool:
    steps = master.steps(build["buildid"])
    return any(s["name"] == "test" and s["started_at"] and not s["complete"] for s in steps)
