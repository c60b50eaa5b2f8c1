"""A release archive of the real Odoo sample, tested as shipped on another worker.

From a manifest, through the configurator of the shipped master.cfg.sample, on a real
master with two real workers over PB and two real PostgreSQL versions:

- ``[release]`` (``gittag`` of the real Odoo sample, tag ``1.0``, ``post-buildout-steps =
  packaging``) runs on the worker ``builder`` only: it builds the buildout, freezes it into
  ``release-1.0.tar.gz`` (eggs, the Odoo source it develops, ``anybox-ci-release.cfg``),
  uploads it to the master with its SHA-256, and triggers...
- ``[release-install]`` (``buildout = archive ...``, ``archive.from = release``), one cell
  per PostgreSQL version (lowest and highest >= 12), pinned by ``build-requires`` to the
  worker ``tester``, which has no buildout cache of its own. Each cell takes the exact
  archive from the master, checks its hash, builds it with no package index and runs the
  Odoo tests of the sample addon.

The git repository is moved away once the release build has fetched it, before the
archive cells run. Then the archive on the master is tampered with and one archive build
is rebuilt (same properties, same expected hash): it turns red with the mismatch.

One module-scoped run (the release build with the shared egg cache, then two Odoo test
builds at once on ``tester``). The Odoo source comes from tests/odoofixtures.py, the
clusters from tests/pgfixtures.py.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import Master, WorkerProcess, git, make_sample_repo, offer_line
from anybox_ci.devtools.localrun import BUILD_ROLE, CACHE_DIR, HOOK_USERS, cache_root, ensure_role
from anybox_ci.devtools.pgcluster import Cluster

pytestmark = pytest.mark.live

ODOO_MIN_PG = 12
TIMEOUT = 2400.0
ADDON = "anybox_ci_sample"
CAPABILITY = "release-tests"
TEST_STEP = "install_modules_test"


@dataclass
class ArchiveRun:
    master: Master
    low: int
    high: int
    upload_dir: Path
    odoo_src: Path
    repo_moved_to: Path
    tester_dir: Path
    tampered: dict[str, Any]
    walls: dict[str, float]

    def cell(self, major: int) -> str:
        return f"release-install-pg{major}"

    def first_build(self, builder: str) -> dict[str, Any]:
        builds = sorted(self.master.builds(builder), key=lambda b: b["number"])
        assert builds, f"{builder}: no build"
        assert builds[0]["complete"], f"{builder} did not finish"
        return builds[0]

    def prop(self, build: dict[str, Any], name: str) -> Any:
        value = build["properties"].get(name)
        return value[0] if value else None

    def step(self, build: dict[str, Any], name: str) -> dict[str, Any]:
        steps = self.master.steps(build["buildid"])
        found = [s for s in steps if s["name"] == name]
        assert found, f"no step {name} in {[s['name'] for s in steps]}"
        return found[0]

    def log(self, build: dict[str, Any], name: str) -> str:
        return self.master.step_log(build["buildid"], name)

    def explain(self, build: dict[str, Any]) -> str:
        steps = self.master.steps(build["buildid"])
        failed = [s for s in steps if s["results"] not in (0, None, 3)]
        tail = self.log(build, failed[0]["name"])[-3000:] if failed else ""
        return f"{build['state_string']}\n{tail}"


def manifest_text(repo: Path, odoo_src: Path, upload_dir: Path, low: int, high: int) -> str:
    return f"""
[release]
buildout = gittag file://{repo} buildout.cfg
build-for = postgresql == {low}
buildout-options = odoo:src={odoo_src}
db-steps =
post-buildout-steps = packaging
packaging.upload-dir = {upload_dir}

[release-install]
buildout = archive file:///nonexistent/release.tar.gz anybox-ci-release.cfg
archive.from = release
build-for = postgresql >= {ODOO_MIN_PG}
build-requires = {CAPABILITY}
odoo-addons = {ADDON}
odoo.use-port = true
post-buildout-steps = install-modules-test
"""


def workers_text(builder: list[str], tester: list[str]) -> str:
    def caps(lines: list[str]) -> str:
        return "\n".join(f"    {line}" for line in lines)

    return (
        f"[builder]\npassword = secret:worker-builder\nmax_builds = 1\n"
        f"capability =\n{caps(builder)}\n\n"
        f"[tester]\npassword = secret:worker-tester\nmax_builds = 2\n"
        f"build-only-if-requires = {CAPABILITY}\ncapability =\n{caps(tester)}\n"
    )


def link_buildout_cache(worker_dir: Path) -> None:
    """The builder keeps eggs and downloads in the lasting cache (as ``anybox-ci run``)."""
    cache = worker_dir / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("eggs", "downloads"):
        (cache_root() / "buildout" / name).mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(cache_root() / "buildout" / name, target_is_directory=True)


def wait_builds(master: Master, builders: list[str], count: int, timeout: float) -> None:
    master.wait(
        lambda: all(
            len(bs := master.builds(b)) >= count and all(x["complete"] for x in bs)
            for b in builders
        ),
        timeout,
        f"{count} finished build(s) of {builders}",
    )


def force(master: Master, builder: str, buildout: str, **params: Any) -> int:
    """Force through the buildout's own force form (``force`` on older masters)."""
    names = {s["name"] for s in master.get("forceschedulers")["forceschedulers"]}
    scheduler = next(n for n in (f"force-{buildout}", "force") if n in names)
    return master.force(builder, scheduler, **params)


@pytest.fixture(scope="module")
def archive_run(
    odoo_src: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pg_clusters: dict[int, Cluster],
) -> Iterator[ArchiveRun]:
    majors = [m for m in sorted(pg_clusters) if m >= ODOO_MIN_PG]
    if len(majors) < 2:
        pytest.fail(f"two PostgreSQL >= {ODOO_MIN_PG} needed among {sorted(pg_clusters)}")
    low, high = majors[0], majors[-1]
    root = tmp_path_factory.mktemp("release-archive")
    repo = make_sample_repo("odoo", root / "repos", with_fake_odoo=False)
    git(repo, "tag", "1.0")
    upload_dir = root / "releases"
    for major in (low, high):
        ensure_role(pg_clusters[major], BUILD_ROLE)
    passwords = {name: secrets.token_urlsafe(16) for name in ("builder", "tester")}
    master = Master(root / "master")
    master.create(
        manifest=manifest_text(repo, odoo_src, upload_dir, low, high),
        workers=workers_text(
            [offer_line(pg_clusters[low], BUILD_ROLE)],
            [offer_line(pg_clusters[m], BUILD_ROLE) for m in (low, high)] + [CAPABILITY],
        ),
        secrets={
            "worker-builder": passwords["builder"],
            "worker-tester": passwords["tester"],
            HOOK_USERS: f"nobody:{secrets.token_urlsafe(16)}\n",
        },
    )
    walls: dict[str, float] = {}
    with master.running():
        workers = {
            name: WorkerProcess(root / name, name, password, master.pb_port, env=master.env)
            for name, password in passwords.items()
        }
        link_buildout_cache(workers["builder"].basedir)
        try:
            for worker in workers.values():
                worker.start()
            master.wait(lambda: master.connected_workers() == set(workers), 60, "both workers")
            started = time.monotonic()
            force(master, f"release-pg{low}", "release", **{"buildout-tag": "1.0"})
            # the release needs its repository only to fetch: once it packs, move it away
            master.wait(
                lambda: any(
                    s["name"] == "packaging"
                    for b in master.builds(f"release-pg{low}")
                    for s in master.steps(b["buildid"])
                ),
                TIMEOUT,
                "the release build to reach its packaging step",
            )
            moved = root / "repository-gone"
            repo.rename(moved)
            cells = [f"release-install-pg{m}" for m in (low, high)]
            wait_builds(master, [f"release-pg{low}"], 1, TIMEOUT)
            walls["release"] = time.monotonic() - started
            wait_builds(master, cells, 1, TIMEOUT)
            walls["release + archive cells"] = time.monotonic() - started
            # the archive on the master changes after its release: a rebuild must refuse it
            run = ArchiveRun(
                master, low, high, upload_dir, odoo_src, moved, root / "tester", {}, walls
            )
            first = run.first_build(cells[0])
            archive = upload_dir / str(run.prop(first, "archive_name"))
            data = bytearray(archive.read_bytes())
            data[len(data) // 2] ^= 0xFF
            archive.write_bytes(bytes(data))
            master.rpc(f"builds/{first['buildid']}", "rebuild")
            wait_builds(master, [cells[0]], 2, TIMEOUT)
            builds = sorted(master.builds(cells[0]), key=lambda b: b["number"])
            run.tampered.update(builds[1], tampered_sha256=hashlib.sha256(data).hexdigest())
            print(f"live release archive: {', '.join(f'{k} {v:.0f}s' for k, v in walls.items())}")
            yield run
        finally:
            for worker in workers.values():
                worker.stop()


def test_the_release_build_uploads_its_archive_with_its_sha256(archive_run: ArchiveRun) -> None:
    run = archive_run
    build = run.first_build(f"release-pg{run.low}")
    assert build["results"] == 0, run.explain(build)
    assert run.prop(build, "release_version") == "1.0"
    name = run.prop(build, "archive_name")
    assert name == "release-1.0.tar.gz"
    sha256 = run.prop(build, "archive_sha256")
    beside = (run.upload_dir / f"{name}.sha256").read_text()
    assert beside == f"{sha256}  {name}\n"
    assert run.step(build, "archive_sha256")["state_string"] == f"{name} sha256 {sha256[:12]}"
    packed = run.log(build, "packaging")
    assert f"sha256={sha256}" in packed.splitlines()  # the worker's hash is the master's
    eggs = re.search(r"^eggs=(\d+)$", packed, re.M)
    assert eggs and int(eggs[1]) > 20, packed[-2000:]
    # it ran on the builder, and triggered the archive cells
    workers = {w["workerid"]: w["name"] for w in run.master.get("workers")["workers"]}
    assert workers[build["workerid"]] == "builder"
    triggered = run.master.get(f"builds/{build['buildid']}/triggered_builds")
    assert triggered, "no triggered builds recorded"


@pytest.mark.parametrize("which", ["low", "high"])
def test_the_archive_cell_installs_and_tests_the_release_on_the_other_worker(
    archive_run: ArchiveRun, which: str
) -> None:
    run = archive_run
    release = run.first_build(f"release-pg{run.low}")
    build = run.first_build(run.cell(getattr(run, which)))
    assert build["results"] == 0, run.explain(build)
    workers = {w["workerid"]: w["name"] for w in run.master.get("workers")["workers"]}
    assert workers[build["workerid"]] == "tester"
    # the exact archive: its name and hash came from the release build, and were checked
    sha256 = run.prop(release, "archive_sha256")
    assert run.prop(build, "archive_sha256") == sha256
    assert run.prop(build, "archive_name") == "release-1.0.tar.gz"
    fetched = run.log(build, "fetch_buildout")
    assert f"sha256 verified: {sha256}" in fetched.splitlines(), fetched[-2000:]
    assert run.step(build, "fetch_buildout")["state_string"].endswith("sha256 verified")
    # the Odoo tests of the addon ran, on this PostgreSQL version
    assert run.step(build, TEST_STEP)["state_string"] == "4 tests, 0 failed"


def test_the_archive_cells_ran_without_the_repository_or_the_index(archive_run: ArchiveRun) -> None:
    run = archive_run
    assert run.repo_moved_to.is_dir()  # moved before the archive cells ran
    build = run.first_build(run.cell(run.low))
    packaging = run.step(run.first_build(f"release-pg{run.low}"), "packaging")
    assert build["started_at"] >= packaging["started_at"]
    built = run.log(build, "buildout")
    assert "Getting distribution" not in built  # every egg came from the archive
    # the scripts the tester generated point into its own copy of the release only (the
    # high cell's: the low one's tree went with the tampered rebuild, as it should)
    script = (run.tester_dir / run.cell(run.high) / "build" / "bin" / "test_openerp").read_text()
    assert str(run.tester_dir) in script
    assert str(run.odoo_src) not in script
    assert str(cache_root()) not in script


def test_a_tampered_archive_turns_the_cell_red_with_the_mismatch(archive_run: ArchiveRun) -> None:
    run = archive_run
    build = run.tampered
    assert build["results"] == 2, build["state_string"]
    release = run.first_build(f"release-pg{run.low}")
    expected = run.prop(release, "archive_sha256")
    summary = run.step(build, "fetch_buildout")["state_string"]
    assert summary == (
        f"archive fetch failed: sha256 mismatch: got {build['tampered_sha256']}, "
        f"expected {expected}; nothing extracted"
    )
    names = [s["name"] for s in run.master.steps(build["buildid"])]
    assert "buildout" not in names and TEST_STEP not in names
