"""Releases and production data on real Odoo, real PostgreSQL (two versions), real builds.

The real Odoo 18 sample (``buildouts/samples/odoo``) goes into a git repository made here:
its first commit is tagged ``1.0``; the next commit on ``main`` is version 1.1 of the addon
``anybox_ci_sample``: a new field and a migration script that fills it. A branch ``broken``
holds a 1.1 whose migration script fails. The manifest (the path users take, through the
configurator of the shipped master.cfg.sample) has:

- ``[upgrade]`` (``post-buildout-steps = upgrade-test``) on two PostgreSQL versions: builds
  ``1.0`` beside the build, installs it, updates to the code under test, runs the tests.
  Green, ``release_version`` = ``1.0.1``, the migration ran;
- ``[broken]`` (branch ``broken``), on the lower version: red, and the summary names the
  module whose migration failed. Its database keeps the 1.0 data (the update rolled back):
  the test dumps it with ``pg_dump -Fc``, a small real Odoo "production" dump;
- ``[restore]`` (``db-steps = restore`` of that dump, neutralised by ``odoo neutralize``,
  then ``upgrade-test``) on both versions: the dump restored, neutralised, migrated and
  tested; a second build on the same cluster creates the database from the cached template.

One module-scoped run (about 10 minutes on a loaded 2-core machine with warm caches). The
Odoo source comes from tests/odoofixtures.py, the clusters from tests/pgfixtures.py.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import Master, git, make_sample_repo
from anybox_ci.devtools.localrun import LocalRun, cache_root
from anybox_ci.devtools.pgcluster import Cluster, client_tool

ODOO_MIN_PG = 12
JOBS = 2
TIMEOUT = 2700.0
ADDON = "anybox_ci_sample"
MIGRATED_KEY = "anybox_ci_sample.migrated_from"

MODEL_V11 = """

class AnyboxCiSampleCurrency(models.Model):
    _inherit = "anybox_ci.sample"

    currency_code = fields.Char(default="EUR")
"""
MIGRATION_OK = (
    '''"""1.1: every line gets a currency; say which version was migrated."""


def migrate(cr, version):
    cr.execute("UPDATE anybox_ci_sample SET currency_code = 'EUR' WHERE currency_code IS NULL")
    cr.execute(
        "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        ["'''
    + MIGRATED_KEY
    + """", version],
    )
"""
)
MIGRATION_BROKEN = """def migrate(cr, version):
    cr.execute("SELECT no_such_column FROM anybox_ci_sample")
"""


def bump_to_v11(repo: Path, migration: str, stage: str) -> None:
    """Version 1.1 of the addon: a field, a migration script, a new manifest version."""
    addon = repo / "addons" / ADDON
    manifest = addon / "__manifest__.py"
    manifest.write_text(manifest.read_text().replace('"18.0.1.0.0"', '"18.0.1.1.0"'))
    model = addon / "models" / "sample.py"
    model.write_text(model.read_text() + MODEL_V11)
    folder = addon / "migrations" / "18.0.1.1.0"
    folder.mkdir(parents=True)
    (folder / f"{stage}-migrate.py").write_text(migration)


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def make_repo(root: Path) -> Path:
    repo = make_sample_repo("odoo", root / "repos", with_fake_odoo=False)
    git(repo, "tag", "1.0")
    git(repo, "checkout", "-q", "-b", "broken")
    bump_to_v11(repo, MIGRATION_BROKEN, "pre")
    commit(repo, "1.1 with a broken migration")
    git(repo, "checkout", "-q", "main")
    bump_to_v11(repo, MIGRATION_OK, "post")
    commit(repo, "1.1: currency_code, filled by a migration")
    return repo


def manifest_text(repo: Path, odoo_src: Path, low: int, dump: Path) -> str:
    common = (
        f"buildout-options = odoo:src={odoo_src}\nodoo-addons = {ADDON}\n"
        "odoo.use-port = true\npost-buildout-steps = upgrade-test\n"
    )
    return (
        f"[upgrade]\nbuildout = git file://{repo} main buildout.cfg\n"
        f"build-for = postgresql >= {ODOO_MIN_PG}\n{common}\n"
        f"[broken]\nbuildout = git file://{repo} broken buildout.cfg\n"
        f"build-for = postgresql == {low}\n{common}\n"
        f"[restore]\nbuildout = git file://{repo} main buildout.cfg\n"
        f"build-for = postgresql >= {ODOO_MIN_PG}\n{common}"
        f"db-steps = restore\nrestore.dump = {dump}\nrestore.neutralize = odoo\n"
    )


@dataclass
class ReleaseRun:
    master: Master
    session: LocalRun
    clusters: dict[int, Cluster]
    low: int
    high: int
    dump: Path
    walls: dict[str, float]

    def builds(self, cell: str) -> list[dict[str, Any]]:
        return sorted(self.master.builds(cell), key=lambda b: b["number"])

    def build(self, cell: str, index: int = 0) -> dict[str, Any]:
        found = self.builds(cell)
        assert len(found) > index, f"{cell}: {len(found)} builds"
        assert found[index]["complete"], f"{cell} did not finish in {TIMEOUT:.0f}s"
        return found[index]

    def step(self, cell: str, name: str, index: int = 0) -> dict[str, Any]:
        steps = self.master.steps(self.build(cell, index)["buildid"])
        found = [s for s in steps if s["name"] == name]
        assert found, f"{cell}: no step {name} in {[s['name'] for s in steps]}"
        return found[0]

    def log(self, cell: str, name: str, index: int = 0) -> str:
        return self.master.step_log(self.build(cell, index)["buildid"], name)

    def prop(self, cell: str, name: str, index: int = 0) -> Any:
        value = self.build(cell, index)["properties"].get(name)
        return value[0] if value else None

    def psql(self, cell: str, sql: str, index: int = 0) -> str:
        major = int(cell.rsplit("-pg", 1)[1])
        return self.clusters[major].psql(sql, dbname=str(self.prop(cell, "testing_db", index)))

    def explain(self, cell: str, index: int = 0) -> str:
        build = self.build(cell, index)
        steps = self.master.steps(build["buildid"])
        failed = [s for s in steps if s["results"] not in (0, None)]
        tail = self.log(cell, failed[0]["name"], index)[-3000:] if failed else ""
        return f"{cell}: {build['state_string']}\n{tail}"


def dump_database(cluster: Cluster, database: str, target: Path) -> None:
    """``pg_dump -Fc`` of ``database``, as the cluster's superuser."""
    subprocess.run(
        [
            client_tool("pg_dump", cluster.bin),
            "-Fc",
            "--no-owner",
            "-h",
            cluster.host,
            "-p",
            str(cluster.port),
            "-U",
            cluster.user,
            "-f",
            str(target),
            database,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def release_run(
    tmp_path_factory: pytest.TempPathFactory,
    pg_clusters: dict[int, Cluster],
    odoo_src: Path,
) -> Iterator[ReleaseRun]:
    majors = [m for m in sorted(pg_clusters) if m >= ODOO_MIN_PG]
    if len(majors) < 2:
        pytest.fail(f"two PostgreSQL >= {ODOO_MIN_PG} needed among {sorted(pg_clusters)}")
    low, high = majors[0], majors[-1]
    root = tmp_path_factory.mktemp("releases")
    repo = make_repo(root)
    dump = root / "production.dump"
    manifest = root / "buildouts" / "MANIFEST.cfg"
    manifest.parent.mkdir()
    manifest.write_text(manifest_text(repo, odoo_src, low, dump))
    session = LocalRun(
        root=root / "run",
        manifests=[manifest],
        majors=[],
        clusters=[pg_clusters[low], pg_clusters[high]],
        max_builds=JOBS,
        title="anybox-ci live releases",
        buildout_cache=cache_root() / "buildout",
    )
    clusters = {low: pg_clusters[low], high: pg_clusters[high]}
    walls: dict[str, float] = {}
    with session.running() as master:
        started = time.monotonic()
        session.build([f"upgrade-pg{low}", f"upgrade-pg{high}", f"broken-pg{low}"], TIMEOUT)
        walls["upgrade"] = time.monotonic() - started
        run = ReleaseRun(master, session, clusters, low, high, dump, walls)
        broken_db = run.prop(f"broken-pg{low}", "testing_db")
        if broken_db:  # kept after its failure: the 1.0 data
            dump_database(clusters[low], str(broken_db), dump)
        started = time.monotonic()
        session.build([f"restore-pg{low}", f"restore-pg{high}"], TIMEOUT)
        walls["restore"] = time.monotonic() - started
        started = time.monotonic()
        session.build([f"restore-pg{low}"], TIMEOUT)
        walls["restore again"] = time.monotonic() - started
        print(f"live releases: {', '.join(f'{k} {v:.0f}s' for k, v in walls.items())}")
        yield run


# ------------------------------------------------------------------ versions and upgrades


@pytest.mark.live
def test_a_build_gets_its_continuous_release_version(release_run: ReleaseRun) -> None:
    for cell in (f"upgrade-pg{release_run.low}", f"broken-pg{release_run.low}"):
        assert release_run.prop(cell, "release_version") == "1.0.1", cell
        assert release_run.prop(cell, "release_tag") == "1.0"
        assert release_run.prop(cell, "release_distance") == 1
        summary = release_run.step(cell, "release_version")["state_string"]
        assert summary == "version 1.0.1 (tag 1.0 + 1 commit)"


@pytest.mark.live
@pytest.mark.parametrize("which", ["low", "high"])
def test_the_upgrade_from_the_last_release_passes(release_run: ReleaseRun, which: str) -> None:
    major = getattr(release_run, which)
    cell = f"upgrade-pg{major}"
    build = release_run.build(cell)
    assert build["results"] == 0, release_run.explain(cell)
    # 1.0 was installed from its own checkout and buildout...
    assert "/upgrade-from" in release_run.log(cell, "upgrade_fetch_release")
    assert release_run.step(cell, "upgrade_buildout_release")["results"] == 0
    install = release_run.step(cell, "upgrade_install_release")
    assert install["results"] == 0, release_run.log(cell, "upgrade_install_release")[-3000:]
    # ...then updated by the code under test: the migration ran, the tests passed
    assert release_run.step(cell, "upgrade_test")["state_string"] == "4 tests, 0 failed"
    upgrade = release_run.log(cell, "upgrade_test")
    assert re.search(rf"module {ADDON}: Running migration \[18\.0\.1\.1\.0>\] post", upgrade)
    # Odoo's own record of the update, on this PostgreSQL version
    assert re.search(rf"^ {{2}}PG_VERSION={major}$", upgrade, re.M), upgrade[:2000]


@pytest.mark.live
def test_a_broken_migration_turns_the_cell_red_naming_the_module(
    release_run: ReleaseRun,
) -> None:
    cell = f"broken-pg{release_run.low}"
    build = release_run.build(cell)
    assert build["results"] == 2, release_run.explain(cell)
    step = release_run.step(cell, "upgrade_test")
    assert step["results"] == 2
    assert step["state_string"].startswith(f"migration of {ADDON} failed: "), step
    assert "no_such_column" in release_run.log(cell, "upgrade_test")
    # the failed update rolled back: the database still holds release 1.0
    version = release_run.psql(
        cell, f"SELECT latest_version FROM ir_module_module WHERE name = '{ADDON}'"
    )
    assert version == "18.0.1.0.0"


# ------------------------------------------------------------------ production data


@pytest.mark.live
@pytest.mark.parametrize("which", ["low", "high"])
def test_a_production_dump_is_restored_neutralised_and_upgraded(
    release_run: ReleaseRun, which: str
) -> None:
    assert release_run.dump.is_file(), "the broken cell kept no database to dump"
    cell = f"restore-pg{getattr(release_run, which)}"
    build = release_run.build(cell)
    assert build["results"] == 0, release_run.explain(cell)
    restore = release_run.step(cell, "restore_db")["state_string"]
    assert re.fullmatch(
        r"\S+ restored \(custom format\) in [\d.]+s, neutralized by start_openerp; "
        r"cached as anybox_tpl_[0-9a-f]{16}",
        restore,
    ), restore
    names = [s["name"] for s in release_run.master.steps(build["buildid"])]
    # the dump is the release's data: nothing of 1.0 is built or installed
    assert "upgrade_install_release" not in names
    assert release_run.step(cell, "upgrade_test")["state_string"] == "4 tests, 0 failed"
    assert re.search(
        rf"module {ADDON}: Running migration \[18\.0\.1\.1\.0>\] post",
        release_run.log(cell, "upgrade_test"),
    )


@pytest.mark.live
def test_the_restored_database_was_neutralised_and_migrated(release_run: ReleaseRun) -> None:
    cell = f"restore-pg{release_run.low}"
    run = release_run
    # kept? db-cleanup drops it after success: read the template the restore made instead
    template = re.search(r"anybox_tpl_[0-9a-f]{16}", run.step(cell, "restore_db")["state_string"])
    assert template
    cluster = run.clusters[run.low]
    cluster.psql(f'ALTER DATABASE "{template[0]}" ALLOW_CONNECTIONS true')
    try:
        neutralized = cluster.psql(
            "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'",
            dbname=template[0],
        )
        active_crons = cluster.psql(
            "SELECT count(*) FROM ir_cron c WHERE active AND c.id NOT IN (SELECT res_id FROM "
            "ir_model_data WHERE model = 'ir.cron' AND name = 'autovacuum_job')",
            dbname=template[0],
        )
        migrated = cluster.psql(
            f"SELECT count(*) FROM ir_config_parameter WHERE key = '{MIGRATED_KEY}'",
            dbname=template[0],
        )
    finally:
        cluster.psql(f'ALTER DATABASE "{template[0]}" ALLOW_CONNECTIONS false')
    assert neutralized == "true"
    assert active_crons == "0"
    assert migrated == "0"  # the template is the dump (1.0), the build's copy was migrated


@pytest.mark.live
def test_a_second_restore_on_the_same_cluster_uses_the_cached_template(
    release_run: ReleaseRun,
) -> None:
    cell = f"restore-pg{release_run.low}"
    first = release_run.step(cell, "restore_db", 0)["state_string"]
    build = release_run.build(cell, 1)
    assert build["results"] == 0, release_run.explain(cell, 1)
    second = release_run.step(cell, "restore_db", 1)["state_string"]
    template = re.search(r"anybox_tpl_[0-9a-f]{16}", first)
    assert template
    took = re.fullmatch(rf"\S+ from cached template {template[0]} in ([\d.]+)s", second)
    assert took, second
    restored = re.search(r"restored \(custom format\) in ([\d.]+)s", first)
    assert restored
    print(f"restore {restored[1]}s, cached create {took[1]}s")
