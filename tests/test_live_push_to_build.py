"""From push to build: update-mirrors notices new commits, notifies the master's
authenticated change hook, and exactly the buildouts watching that repository and
branch build the pushed revision. With the master down, the change waits in the spool
and is built once after the restart.

Real git repositories, a real master in hook mode (no pollers), a real worker and a
real PostgreSQL (the newest of the shared clusters). Each test gets its own master, whose
first update-mirrors run (the baseline) is already done, so any test passes alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.core.vcs import codebase_name
from anybox_ci.devtools.localmaster import Master, WorkerProcess, git, make_sample_repo, offer_line

pytestmark = pytest.mark.live
HOOK_USER, HOOK_PASSWORD = "anybox-ci", "hook-Secret-9876"


@pytest.fixture
def setup(tmp_path: Path, pg_clusters: dict[int, Any]) -> Any:
    root = tmp_path
    cluster = pg_clusters[max(pg_clusters)]
    repos = root / "repos"
    erp = make_sample_repo("passing", repos)
    other = make_sample_repo("restricted", repos)
    addons = repos / "addons"
    addons.mkdir()
    git(addons, "init", "-q", "-b", "main")
    (addons / "README").write_text("addons\n")
    git(addons, "add", "-A")
    git(addons, "commit", "-q", "-m", "addons")
    git(addons, "branch", "17.0")
    lib = repos / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.py").write_text("VERSION = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    auto = make_sample_repo("passing", repos / "auto-src")
    with (auto / "buildout.cfg").open("a") as cfg:
        cfg.write(f"\n[sources]\nlib = git file://{lib} branch=main\n")
    git(auto, "commit", "-q", "-am", "uses lib, a floating mr.developer source")
    manifest = f"""
[DEFAULT]
build-for = postgresql == {cluster.major}
post-buildout-steps = install-modules-test
odoo-addons = sample

[erp]
buildout = git file://{erp} main buildout.cfg
watch = git file://{addons} main

[other]
buildout = git file://{other} main buildout.cfg
watch = git file://{addons} 17.0

[auto]
buildout = git file://{auto} main buildout.cfg
auto-watch = true
"""
    workers = f"[w1]\npassword = secret:worker-w1\ncapability = {offer_line(cluster)}\n"
    master = Master(root / "master")
    master.create(
        manifest,
        workers,
        secrets={"worker-w1": "w1-pw-1234", "change-hook-users": f"{HOOK_USER}:{HOOK_PASSWORD}"},
    )
    secret_file = root / "hook-secret"
    secret_file.write_text(HOOK_PASSWORD)
    secret_file.chmod(0o600)
    worker = WorkerProcess(root / "w1", "w1", "w1-pw-1234", master.pb_port)
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")
        assert _update(master, root, secret_file) == 0  # the baseline: no change yet
        yield (
            master,
            {"erp": erp, "other": other, "addons": addons, "lib": lib, "auto": auto},
            root,
            secret_file,
        )
    finally:
        worker.stop()
        master.stop()


def _update(master: Master, root: Path, secret_file: Path) -> int:
    return update_mirrors_main(
        [
            "--master",
            str(master.basedir),
            "--root",
            str(root / "mirrors"),
            "--notify",
            master.url,
            "--user",
            HOOK_USER,
            "--secret-file",
            str(secret_file),
        ]
    )


def _sourcestamps(master: Master, build: dict[str, Any]) -> dict[str, str]:
    request = master.get(f"buildrequests/{build['buildrequestid']}")["buildrequests"][0]
    buildset = master.get(f"buildsets/{request['buildsetid']}")["buildsets"][0]
    return {s["codebase"]: s["revision"] for s in buildset["sourcestamps"]}


def _major(master: Master) -> str:
    """The PostgreSQL major of this master's cells (builder names end in it)."""
    return next(iter(master.builder_ids())).rsplit("-pg", 1)[1]


def _counts(master: Master) -> dict[str, int]:
    return {name: len(master.builds(name)) for name in master.builder_ids()}


def test_master_runs_without_pollers(setup: Any) -> None:
    master = setup[0]
    sources = master.get("changesources")["changesources"]
    assert not [s for s in sources if "Poller" in s["name"] or "poller" in s["name"]]


def test_first_mirror_run_is_a_baseline(setup: Any) -> None:
    master, _, root, secret_file = setup  # the fixture made the first run
    assert (root / "mirrors").is_dir()
    assert master.get("changes")["changes"] == []
    assert _update(master, root, secret_file) == 0  # and a second one finds nothing new
    assert master.get("changes")["changes"] == []
    assert sum(_counts(master).values()) == 0


def test_push_builds_only_the_watchers_of_that_branch_at_that_revision(setup: Any) -> None:
    master, repos, root, secret_file = setup
    (repos["addons"] / "mod.py").write_text("x = 1\n")
    git(repos["addons"], "add", "-A")
    git(repos["addons"], "commit", "-q", "-m", "new module")
    revision = git(repos["addons"], "rev-parse", "HEAD")
    before = _counts(master)
    assert _update(master, root, secret_file) == 0
    master.wait(
        lambda: (
            _counts(master)[f"erp-pg{_major(master)}"] == before[f"erp-pg{_major(master)}"] + 1
            and master.builds(f"erp-pg{_major(master)}")[-1]["complete"]
        ),
        300,
        "erp build",
    )
    build = master.builds(f"erp-pg{_major(master)}")[-1]
    assert build["results"] == 0, build["state_string"]
    url = f"file://{repos['addons']}"
    assert _sourcestamps(master, build)[codebase_name(url, "main")] == revision
    assert _counts(master)[f"other-pg{_major(master)}"] == before[f"other-pg{_major(master)}"]


def test_change_made_while_master_is_down_is_built_once_after_restart(setup: Any) -> None:
    master, repos, root, secret_file = setup
    master.stop()
    (repos["erp"] / "tests.cfg").write_text("[tests]\ntest_after_restart = pass\n")
    git(repos["erp"], "commit", "-q", "-am", "while the master was down")
    revision = git(repos["erp"], "rev-parse", "HEAD")
    _update(master, root, secret_file)
    spooled = list((root / "mirrors" / ".spool").glob("*.json"))
    assert len(spooled) == 1
    master.start()
    before = len(master.get("changes")["changes"])
    master.wait(lambda: bool(master.connected_workers()), 60, "worker reconnect")
    builds_before = len(master.builds(f"erp-pg{_major(master)}"))
    assert _update(master, root, secret_file) == 0
    assert not list((root / "mirrors" / ".spool").glob("*.json"))
    master.wait(
        lambda: (
            len(master.builds(f"erp-pg{_major(master)}")) == builds_before + 1
            and master.builds(f"erp-pg{_major(master)}")[-1]["complete"]
        ),
        300,
        "build after restart",
    )
    build = master.builds(f"erp-pg{_major(master)}")[-1]
    got = build["properties"]["got_revision"][0]
    assert revision in (got.values() if isinstance(got, dict) else [got])
    # nothing new: a further run delivers nothing and builds nothing
    assert _update(master, root, secret_file) == 0
    changes = master.get("changes")["changes"]
    assert len([c for c in changes if c["revision"] == revision]) == 1
    assert len(changes) == before + 1
    assert len(master.builds(f"erp-pg{_major(master)}")) == builds_before + 1


def test_auto_watch_discovers_a_source_and_builds_its_pushed_revision(setup: Any) -> None:
    master, repos, root, secret_file = setup
    lib_url = f"file://{repos['lib']}"
    log = Path(master.basedir) / "twistd.log"
    reconfigs = log.read_text().count("configuration update complete")
    master.wait_buildsets([master.force(f"auto-pg{_major(master)}")], 300)
    build = master.builds(f"auto-pg{_major(master)}")[-1]
    assert build["results"] == 0, build["state_string"]
    step = next(s for s in master.steps(build["buildid"]) if s["name"] == "update_watches")
    assert "reconfig" in step["state_string"]
    assert lib_url in master.step_log(build["buildid"], "update_watches", "watches")
    watch_file = Path(master.basedir) / "anybox-ci" / "watch" / "auto.json"
    assert lib_url in watch_file.read_text()
    # the master reconfigured itself: update-mirrors now mirrors lib (baseline first)
    master.wait(
        lambda: log.read_text().count("configuration update complete") > reconfigs,
        60,
        "the master's reconfig",
    )
    assert _update(master, root, secret_file) == 0
    (repos["lib"] / "lib.py").write_text("VERSION = 2\n")
    git(repos["lib"], "commit", "-q", "-am", "lib 2")
    revision = git(repos["lib"], "rev-parse", "HEAD")
    count = len(master.builds(f"auto-pg{_major(master)}"))
    assert _update(master, root, secret_file) == 0
    master.wait(
        lambda: (
            len(master.builds(f"auto-pg{_major(master)}")) == count + 1
            and master.builds(f"auto-pg{_major(master)}")[-1]["complete"]
        ),
        300,
        "auto-watch build",
    )
    build = master.builds(f"auto-pg{_major(master)}")[-1]
    assert build["results"] == 0, build["state_string"]
    assert _sourcestamps(master, build)[codebase_name(lib_url, "main")] == revision
    # the build pinned the source to exactly that revision on the buildout command line
    header = master.step_log(build["buildid"], "buildout")
    assert f"sources:lib=git {lib_url} branch=main rev={revision}" in header
