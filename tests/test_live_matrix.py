"""Every cell really builds: a real master, two real workers over PB, three real
PostgreSQL versions, and the sample buildouts in local git repositories.

Worker w1 offers PostgreSQL 13 and 15; w2 offers 15 and 17 plus wkhtmltopdf, which
the `restricted` sample requires.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.core.vcs import codebase_name
from anybox_ci.devtools.localmaster import (
    Master,
    WorkerProcess,
    git,
    make_sample_repo,
    offer_line,
    sample_manifest,
)

pytestmark = pytest.mark.live

EXPECTED = {
    "passing-pg13": ({"w1"}, "SUCCESS"),
    "passing-pg15": ({"w1", "w2"}, "SUCCESS"),
    "passing-pg17": ({"w2"}, "SUCCESS"),
    "failing-pg13": ({"w1"}, "FAILURE"),
    "failing-pg15": ({"w1", "w2"}, "FAILURE"),
    "failing-pg17": ({"w2"}, "FAILURE"),
    "restricted-pg15": ({"w2"}, "SUCCESS"),
    "restricted-pg17": ({"w2"}, "SUCCESS"),
    # a Mercurial buildout in a subdirectory, and a standalone one with local extends
    "hgsub-pg17": ({"w2"}, "SUCCESS"),
    "plain-pg13": ({"w1"}, "SUCCESS"),
}
PASSWORDS = {"w1": "w1-Secret-pw-4242", "w2": "w2-Secret-pw-4343"}
#: the PostgreSQL 13 cluster's password: a secret the build gets as PGPASSWORD
PG_PASSWORD = "Pg13-Secret-Value-5555"
TEST_STEP = {"plain": "test"}


def _hg_repo(root: Path) -> Path:
    """The passing sample in the ``sub`` folder of a Mercurial repository."""
    repo = root / "hgsub"
    sample = make_sample_repo("passing", root / "hg-src")
    shutil.copytree(sample, repo / "sub", ignore=shutil.ignore_patterns(".git"))
    hg = [str(Path(sys.executable).parent / "hg"), "--cwd", str(repo)]
    subprocess.run([*hg[:1], "init", str(repo)], check=True)
    subprocess.run([*hg, "add", "-q"], check=True)
    subprocess.run(
        [*hg, "commit", "-q", "-u", "Dev <dev@example.com>", "-m", "hg sample"], check=True
    )
    return repo


def _standalone(root: Path) -> Path:
    """A standalone buildout that only works if its local ``extends`` is shipped too."""
    folder = root / "standalone"
    folder.mkdir()
    (folder / "base.cfg").write_text("[buildout]\nparts =\n")
    (folder / "plain.cfg").write_text("[buildout]\nextends = base.cfg\n")
    return folder / "plain.cfg"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Any]) -> Any:
    root = tmp_path_factory.mktemp("live")
    repos = {n: make_sample_repo(n, root / "repos") for n in ("passing", "failing", "restricted")}
    c13, c15, c17 = pg_clusters[13], pg_clusters[15], pg_clusters[17]
    workers = f"""
[w1]
password = secret:worker-w1
capability =
    {offer_line(c13)} password=pg13-password
    {offer_line(c15)}

[w2]
password = secret:worker-w2
capability =
    {offer_line(c15)}
    {offer_line(c17)}
    wkhtmltopdf 0.12.6
"""
    manifest = (
        sample_manifest(repos)
        + f"""
[hgsub]
buildout = hg file://{_hg_repo(root)} default buildout.cfg subdir=sub
build-for = postgresql == 17

[plain]
buildout = standalone {_standalone(root)}
build-for = postgresql == 13
post-buildout-steps = test-command
test-command = psql -XAt -c "SELECT version()"
"""
    )
    master = Master(
        root / "master",
        extra_config=("c['configurators'] = [AnyboxConfigurator(basedir, poll_interval=2)]\n"),
    )
    secrets = {f"worker-{k}": v for k, v in PASSWORDS.items()}
    master.create(manifest, workers, secrets={**secrets, "pg13-password": PG_PASSWORD})
    procs = [WorkerProcess(root / name, name, pw, master.pb_port) for name, pw in PASSWORDS.items()]
    try:
        master.start()
        for proc in procs:
            proc.start()
        master.wait(lambda: master.connected_workers() == set(PASSWORDS), 60, "workers")
        bsids = [master.force(name) for name in EXPECTED]
        master.wait_buildsets(bsids, timeout=900)
        yield master, repos, pg_clusters
    finally:
        for proc in procs:
            proc.stop()
        master.stop()


def _only_build(master: Master, builder: str) -> dict[str, Any]:
    builds = master.builds(builder)
    assert len(builds) >= 1, f"{builder} did not build"
    return builds[0]


def test_exactly_the_expected_cells_exist_and_ran_on_eligible_workers(live: Any) -> None:
    master, _, _ = live
    assert set(master.builder_ids()) == set(EXPECTED)
    workers = {w["workerid"]: w["name"] for w in master.get("workers")["workers"]}
    for builder, (eligible, result) in EXPECTED.items():
        build = _only_build(master, builder)
        assert workers[build["workerid"]] in eligible, builder
        got = {0: "SUCCESS", 2: "FAILURE"}.get(build["results"], build["results"])
        assert got == result, f"{builder}: {build['state_string']}"


def test_build_talks_to_the_cells_postgresql_version(live: Any) -> None:
    master, _, clusters = live
    for builder in EXPECTED:
        build = _only_build(master, builder)
        major = int(builder.rsplit("-pg", 1)[1])
        step = TEST_STEP.get(builder.split("-")[0], "install_modules_test")
        log = master.step_log(build["buildid"], step)
        assert f"PostgreSQL {clusters[major].version} " in log, builder


def test_failing_cell_names_the_failing_test(live: Any) -> None:
    master, _, _ = live
    build = _only_build(master, "failing-pg15")
    step = next(s for s in master.steps(build["buildid"]) if s["name"] == "install_modules_test")
    assert step["results"] == 2
    assert "test_invoice_rounding" in step["state_string"]


def test_databases_dropped_after_success_and_kept_after_failure(live: Any) -> None:
    _, _, clusters = live
    names: set[str] = set()
    for cluster in clusters.values():
        out = cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE 'anybox-%'")
        names |= set(out.split())
    assert names, "the failing cells' databases are kept"
    assert all("failing" in n for n in names), names


def test_no_secret_in_logs_properties_or_the_api(live: Any) -> None:
    master, _, _ = live
    secrets = [*PASSWORDS.values(), PG_PASSWORD]
    texts = [json.dumps(master.get(path)) for path in ("workers", "builders", "changes")]
    for builder in ("passing-pg13", "failing-pg17", "plain-pg13"):
        build = _only_build(master, builder)
        texts.append(json.dumps(build["properties"]))
        for step in master.steps(build["buildid"]):
            for log in master.get(f"steps/{step['stepid']}/logs")["logs"]:
                texts.append(master.step_log(build["buildid"], step["name"], log["slug"]))
    texts.append((Path(master.basedir) / "twistd.log").read_text())
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_database_password_reaches_the_build_as_a_redacted_secret(live: Any) -> None:
    master, _, _ = live
    build = _only_build(master, "plain-pg13")
    header = master.step_log(build["buildid"], "test")
    assert "PGPASSWORD=<pg13-password>" in header or "PGPASSWORD=<secret" in header


def test_push_builds_exactly_the_new_revision_of_that_buildout_only(live: Any) -> None:
    master, repos, _ = live
    before = {b: len(master.builds(b)) for b in EXPECTED}
    repo: Path = repos["passing"]
    (repo / "tests.cfg").write_text("[tests]\ntest_sale_total = pass\ntest_new = pass\n")
    git(repo, "commit", "-q", "-am", "a new test")
    revision = git(repo, "rev-parse", "HEAD")

    def rebuilt() -> bool:
        return all(
            len(master.builds(b)) > before[b] and master.builds(b)[-1]["complete"]
            for b in EXPECTED
            if b.startswith("passing-")
        )

    master.wait(rebuilt, 600, "builds of the pushed revision")
    time.sleep(3)  # give any wrongly triggered build the time to show up
    for builder in EXPECTED:
        builds = master.builds(builder)
        if builder.startswith("passing-"):
            assert len(builds) == before[builder] + 1
            got = builds[-1]["properties"]["got_revision"][0]
            assert revision in (got.values() if isinstance(got, dict) else [got])
            assert builds[-1]["results"] == 0
        else:
            assert len(builds) == before[builder], f"{builder} should not have built"


@pytest.mark.parametrize(
    ("branch", "revision"),
    [("$(touch pwned)", ""), (";touch pwned", ""), ("main", "$(touch pwned)")],
)
def test_hostile_branch_or_revision_never_executes(live: Any, branch: str, revision: str) -> None:
    master, repos, _ = live
    root = Path(master.basedir).parent
    codebase = codebase_name(f"file://{repos['passing']}", "main")
    bsid = master.force(
        "passing-pg15", **{f"{codebase}_branch": branch, f"{codebase}_revision": revision}
    )
    master.wait_buildsets([bsid], timeout=300)
    build = master.builds("passing-pg15")[-1]
    assert build["results"] != 0
    assert not list(root.rglob("pwned"))
    assert not Path("pwned").exists()
