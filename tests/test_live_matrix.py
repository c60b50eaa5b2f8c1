"""Every cell really builds: a real master, two real workers over PB, three real
PostgreSQL versions, and the sample buildouts in local git repositories.

With the shared clusters LO < MID < HI (13, 15 and 17 by default), worker w1 offers LO and
MID; w2 offers MID and HI plus wkhtmltopdf, which the `restricted` sample requires. The
workers use their own database prefix, so databases left by other tests never count here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
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

DB_PREFIX = "livematrix"


def _versions(pg_clusters: dict[int, Any]) -> tuple[int, int, int]:
    majors = sorted(pg_clusters)
    if len(majors) < 3:
        pytest.fail(
            f"this test needs three PostgreSQL versions, ANYBOX_CI_PG_VERSIONS gave {majors}"
        )
    return majors[0], majors[1], majors[-1]


def expected_cells(lo: int, mid: int, hi: int) -> dict[str, tuple[set[str], str]]:
    """Every cell, the workers allowed to build it, and its expected result."""
    cells: dict[str, tuple[set[str], str]] = {}
    for name, result in (("passing", "SUCCESS"), ("failing", "FAILURE")):
        cells[f"{name}-pg{lo}"] = ({"w1"}, result)
        cells[f"{name}-pg{mid}"] = ({"w1", "w2"}, result)
        cells[f"{name}-pg{hi}"] = ({"w2"}, result)
    cells[f"restricted-pg{mid}"] = ({"w2"}, "SUCCESS")
    cells[f"restricted-pg{hi}"] = ({"w2"}, "SUCCESS")
    # a Mercurial buildout in a subdirectory, and a standalone one with local extends
    cells[f"hgsub-pg{hi}"] = ({"w2"}, "SUCCESS")
    cells[f"plain-pg{lo}"] = ({"w1"}, "SUCCESS")
    return cells


PASSWORDS = {"w1": "w1-Secret-pw-4242", "w2": "w2-Secret-pw-4343"}
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
    lo, mid, hi = _versions(pg_clusters)
    expected = expected_cells(lo, mid, hi)
    workers = f"""
[w1]
password = secret:worker-w1
db_prefix = {DB_PREFIX}
capability =
    {offer_line(pg_clusters[lo])}
    {offer_line(pg_clusters[mid])}

[w2]
password = secret:worker-w2
db_prefix = {DB_PREFIX}
capability =
    {offer_line(pg_clusters[mid])}
    {offer_line(pg_clusters[hi])}
    wkhtmltopdf 0.12.6
"""
    manifest = (
        sample_manifest(repos)
        + f"""
[hgsub]
buildout = hg file://{_hg_repo(root)} default buildout.cfg subdir=sub
build-for = postgresql == {hi}

[plain]
buildout = standalone {_standalone(root)}
build-for = postgresql == {lo}
post-buildout-steps = test-command
test-command = psql -XAt -c "SELECT version()"
"""
    )
    master = Master(
        root / "master",
        extra_config=("c['configurators'] = [AnyboxConfigurator(basedir, poll_interval=2)]\n"),
    )
    secrets = {f"worker-{k}": v for k, v in PASSWORDS.items()}
    master.create(manifest, workers, secrets=secrets)
    procs = [WorkerProcess(root / name, name, pw, master.pb_port) for name, pw in PASSWORDS.items()]
    try:
        master.start()
        for proc in procs:
            proc.start()
        master.wait(lambda: master.connected_workers() == set(PASSWORDS), 60, "workers")
        bsids = [master.force(name) for name in expected]
        master.wait_buildsets(bsids, timeout=900)
        yield master, repos, pg_clusters, expected
    finally:
        for proc in procs:
            proc.stop()
        master.stop()


def _only_build(master: Master, builder: str) -> dict[str, Any]:
    builds = master.builds(builder)
    assert len(builds) >= 1, f"{builder} did not build"
    return builds[0]


def test_exactly_the_expected_cells_exist_and_ran_on_eligible_workers(live: Any) -> None:
    master, _, _, expected = live
    assert set(master.builder_ids()) == set(expected)
    workers = {w["workerid"]: w["name"] for w in master.get("workers")["workers"]}
    for builder, (eligible, result) in expected.items():
        build = _only_build(master, builder)
        assert workers[build["workerid"]] in eligible, builder
        got = {0: "SUCCESS", 2: "FAILURE"}.get(build["results"], build["results"])
        assert got == result, f"{builder}: {build['state_string']}"


def test_build_talks_to_the_cells_postgresql_version(live: Any) -> None:
    master, _, clusters, expected = live
    for builder in expected:
        build = _only_build(master, builder)
        major = int(builder.rsplit("-pg", 1)[1])
        step = TEST_STEP.get(builder.split("-")[0], "install_modules_test")
        log = master.step_log(build["buildid"], step)
        assert f"PostgreSQL {clusters[major].version} " in log, builder


def test_failing_cell_names_the_failing_test(live: Any) -> None:
    master, _, _, expected = live
    build = _only_build(master, next(b for b in expected if b.startswith("failing-")))
    step = next(s for s in master.steps(build["buildid"]) if s["name"] == "install_modules_test")
    assert step["results"] == 2
    assert "test_invoice_rounding" in step["state_string"]


def test_databases_dropped_after_success_and_kept_after_failure(live: Any) -> None:
    _, _, clusters, expected = live
    names: set[str] = set()
    for cluster in clusters.values():
        out = cluster.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'")
        names |= set(out.split())
    failing = [b for b in expected if b.startswith("failing-")]
    assert len(names) == len(failing), f"one kept database per failing cell: {names}"
    assert all("failing" in n for n in names), names


def test_no_secret_in_logs_properties_or_the_api(live: Any) -> None:
    master, _, _, expected = live
    secrets = list(PASSWORDS.values())
    texts = [json.dumps(master.get(path)) for path in ("workers", "builders", "changes")]
    lo, _, hi = _versions(live[2])
    for builder in (f"passing-pg{lo}", f"failing-pg{hi}", f"plain-pg{lo}"):
        build = _only_build(master, builder)
        texts.append(json.dumps(build["properties"]))
        for step in master.steps(build["buildid"]):
            for log in master.get(f"steps/{step['stepid']}/logs")["logs"]:
                texts.append(master.step_log(build["buildid"], step["name"], log["slug"]))
    texts.append((Path(master.basedir) / "twistd.log").read_text())
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_push_builds_exactly_the_new_revision_of_that_buildout_only(live: Any) -> None:
    master, repos, _, expected = live
    before = {b: len(master.builds(b)) for b in expected}
    repo: Path = repos["passing"]
    (repo / "tests.cfg").write_text("[tests]\ntest_sale_total = pass\ntest_new = pass\n")
    git(repo, "commit", "-q", "-am", "a new test")
    revision = git(repo, "rev-parse", "HEAD")

    def rebuilt() -> bool:
        return all(
            len(master.builds(b)) > before[b] and master.builds(b)[-1]["complete"]
            for b in expected
            if b.startswith("passing-")
        )

    master.wait(rebuilt, 600, "builds of the pushed revision")
    # Every scheduler sees a change at once: the buildsets of this revision, all complete,
    # show what it triggered, with no time allowance needed.
    sets = [
        bs
        for bs in master.get("buildsets")["buildsets"]
        if any(ss["revision"] == revision for ss in bs["sourcestamps"])
    ]
    master.wait_buildsets([bs["bsid"] for bs in sets], timeout=60)
    ids = {v: k for k, v in master.builder_ids().items()}
    triggered = {
        ids[r["builderid"]]
        for r in master.get("buildrequests")["buildrequests"]
        if r["buildsetid"] in {bs["bsid"] for bs in sets}
    }
    assert triggered == {b for b in expected if b.startswith("passing-")}
    for builder in expected:
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
    master, repos, _, expected = live
    root = Path(master.basedir).parent
    codebase = codebase_name(f"file://{repos['passing']}", "main")
    builder = next(b for b in expected if b.startswith("passing-"))
    fields = {f"{codebase}_branch": branch, f"{codebase}_revision": revision}
    try:
        bsid = master.force(builder, **fields)
    except urllib.error.HTTPError as exc:
        assert exc.code == 400, exc  # the force form refuses it: nothing was built
    else:
        master.wait_buildsets([bsid], timeout=300)
        build = master.builds(builder)[-1]
        assert build["results"] != 0
    assert not list(root.rglob("pwned"))
    assert not Path("pwned").exists()
