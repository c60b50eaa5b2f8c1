"""Continuous versions and the upgrade test, as rendered from a manifest.

Each test writes a manifest, runs the configurator (the path users take) and reads the
steps of the one builder; the worker-side scripts have their own tests
(test_build_utils_version.py), and test_live_releases.py runs all of it on real Odoo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.plugins import steps, util
from buildbot.process.buildstep import create_step_from_step_or_factory
from buildbot.process.properties import Properties

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core import schema
from anybox_ci.core.diagnostics import Diagnostics
from anybox_ci.core.manifest import load_manifests
from anybox_ci.render.steps_generic import ArchiveName
from anybox_ci.render.steps_release import (
    MIGRATION_RE,
    UpgradeStep,
    VersionStep,
    _ModuleObserver,
    _ReleaseObserver,
    release_value,
)

WORKERS = "[w1]\npassword = secret:w1\ncapability = postgresql 15\n"
GIT = "buildout = git https://example.com/erp.git main buildout.cfg\n"


def configure(tmp_path: Path, section: str) -> dict[str, Any]:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir(parents=True, exist_ok=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text("[erp]\nbuild-for = postgresql\n" + section)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(WORKERS)
    config: dict[str, Any] = {}
    AnyboxConfigurator(root).configure(config)
    return config


def step_list(tmp_path: Path, section: str) -> list[Any]:
    (builder,) = configure(tmp_path, section)["builders"]
    return [s.buildStep() for s in builder.factory.steps]


def by_name(tmp_path: Path, section: str) -> dict[str, Any]:
    return {s.name: s for s in step_list(tmp_path, section) if isinstance(s.name, str)}


def fmt(value: Any) -> Any:
    return value.fmtstring if isinstance(value, util.Interpolate) else value


def dashes(command: list[Any]) -> int:
    """Where ``--`` is (renderables compare lazily: find it by type)."""
    return next(i for i, arg in enumerate(command) if isinstance(arg, str) and arg == "--")


def step_name(step: Any) -> str:
    """A step's name; the fetch step's is rendered from its codebase."""
    name = step.name
    if isinstance(name, util.Interpolate):
        return str(name.kwargs.get("name", name.fmtstring))
    return str(name)


# ---------------------------------------------------------------- release_version


def test_a_git_build_computes_its_release_version_right_after_the_fetch(tmp_path: Path) -> None:
    built = step_list(tmp_path, GIT)
    names = [step_name(s) for s in built]
    assert names.index("release_version") == names.index("fetch_buildout") + 1
    version = built[names.index("release_version")]
    assert isinstance(version, VersionStep)
    assert version.command[2:] == [
        "version",
        "--vcs",
        "git",
        f"--pattern={schema.DEFAULT_TAG_PATTERN}",
        "--",
        "build",
    ]
    # a version that cannot be computed warns; the tests still run
    assert (version.haltOnFailure, version.flunkOnFailure, version.warnOnFailure) == (
        False,
        False,
        True,
    )
    # the fetch brings the tags the version counts from
    fetch = built[names.index("fetch_buildout")]
    assert isinstance(fetch, steps.Git) and fetch.tags is True


def test_the_tag_pattern_is_per_buildout(tmp_path: Path) -> None:
    found = by_name(
        tmp_path,
        "buildout = hg https://example.com/erp main buildout.cfg\n"
        "release.tag-pattern = ^erp-(?P<version>[0-9.]+)$\n",
    )
    assert found["release_version"].command[4:7] == [
        "hg",
        "--pattern=^erp-(?P<version>[0-9.]+)$",
        "--",
    ]


def test_a_standalone_buildout_has_no_release_version_step(tmp_path: Path) -> None:
    assert "release_version" not in by_name(tmp_path, "buildout = standalone b.cfg\n")


@pytest.mark.parametrize(
    ("text", "error"),
    [("(unclosed", "not a regular expression"), ("v?", "matches an empty tag name")],
)
def test_a_bad_tag_pattern_is_refused_at_its_line(tmp_path: Path, text: str, error: str) -> None:
    manifest = tmp_path / "MANIFEST.cfg"
    manifest.write_text(f"[erp]\n{GIT}release.tag-pattern = {text}\n")
    diags = Diagnostics()
    load_manifests([manifest], diags)
    messages = [str(d) for d in diags.errors]
    assert any(":3: [erp] release.tag-pattern: " in m and error in m for m in messages), messages


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("release_version", "1.4.7", True),
        ("release_version", "0.0.12", True),
        ("release_version", "../../etc", False),
        ("release_version", "1.4 ; rm", False),
        ("release_tag", "v1.4", True),
        ("release_tag", "", True),
        ("release_tag", "-x", False),
        ("release_tag", "a/../b", False),
        ("release_distance", "7", True),
        ("release_distance", "7x", False),
        ("got_revision", "abc", False),  # not this step's to set
    ],
)
def test_only_well_formed_release_values_become_properties(
    key: str, value: str, kept: bool
) -> None:
    observer = _ReleaseObserver()
    observer.outLineReceived(f"{key}={value}")
    assert (key in observer.values) is kept
    assert (release_value(key, value) is not None) is kept


def test_a_bad_value_does_not_keep_an_earlier_good_one() -> None:
    observer = _ReleaseObserver()
    observer.outLineReceived("release_version=1.0")
    observer.outLineReceived("release_version=1.0/../x")
    assert "release_version" not in observer.values


def test_the_release_archive_is_named_by_release_version() -> None:
    archive = ArchiveName("erp", "cb")
    props = Properties()
    props.setProperty("got_revision", {"cb": "abc123"}, "test")
    props.setProperty("buildnumber", 3, "test")
    assert archive.getRenderingFor(props) == "erp-abc123.tar.gz"
    props.setProperty("release_version", "1.4.7", "test")
    assert archive.getRenderingFor(props) == "erp-1.4.7.tar.gz"
    props.setProperty("release_version", "../x", "test")  # never a path
    assert archive.getRenderingFor(props) == "erp-abc123.tar.gz"


# ---------------------------------------------------------------- upgrade-test


def test_upgrade_test_installs_the_release_then_updates_with_the_code_under_test(
    tmp_path: Path,
) -> None:
    built = step_list(
        tmp_path,
        GIT + "post-buildout-steps = upgrade-test\nodoo-addons = sale, stock\n"
        "install.demo-data = false\nodoo.use-port = true\n",
    )
    names = [step_name(s) for s in built]
    order = [
        "release_version",
        "buildout",
        "create_db",
        "upgrade_fetch_release",
        "upgrade_buildout_release",
        "upgrade_install_release",
        "upgrade_test",
        "drop_db",
    ]
    assert [n for n in names if n in order] == order
    found = dict(zip(names, built, strict=True))
    fetch = found["upgrade_fetch_release"]
    assert fetch.command[2:5] == ["fetch", "git", "--url"]
    assert fmt(fetch.command[5]) == "%(prop:builddir)s/build"
    assert fetch.command[6:8] == ["--dest", "upgrade-from"]
    revision = fetch.command[8]
    assert fmt(revision) == "--revision=%(kw:rev)s"
    assert isinstance(revision.kwargs["rev"], util.Property)
    assert revision.kwargs["rev"].key == "release_tag"
    old = found["upgrade_buildout_release"]
    assert old.workdir == "upgrade-from" and fmt(old.command[0]) is not None
    assert old.command[1:3] == ["-c", "buildout.cfg"]
    install = found["upgrade_install_release"]
    assert install.workdir == "upgrade-from"
    at = dashes(install.command)
    assert install.command[at + 1 : at + 4] == ["bin/start_openerp", "-i", "sale,stock"]
    assert "--without-demo=all" in install.command and "--http-port=0" in install.command
    test = found["upgrade_test"]
    assert isinstance(test, UpgradeStep) and test.workdir == "build"
    at = dashes(test.command)
    assert test.command[at + 1 : at + 4] == ["bin/test_openerp", "-u", "sale,stock"]


def test_upgrade_test_of_a_restored_dump_updates_it_without_installing_a_release(
    tmp_path: Path,
) -> None:
    found = by_name(
        tmp_path,
        "buildout = archive https://example.com/erp-1.4.tar.gz buildout.cfg\n"
        "db-steps = restore\nrestore.dump = /srv/prod.dump\npost-buildout-steps = upgrade-test\n",
    )
    # the restored dump is the release's data: no release to fetch, build nor install
    assert not any(name.startswith("upgrade_") and name != "upgrade_test" for name in found)
    assert "restore_db" in found and "upgrade_test" in found
    names = list(found)
    assert names.index("restore_db") < names.index("upgrade_test")


def test_upgrade_test_from_names_the_release(tmp_path: Path) -> None:
    found = by_name(
        tmp_path, GIT + "post-buildout-steps = upgrade-test\nupgrade-test.from = v1.2\n"
    )
    revision = found["upgrade_fetch_release"].command[8]
    assert revision.kwargs["rev"] == "v1.2"


def test_upgrade_test_needs_a_versioned_buildout(tmp_path: Path) -> None:
    from buildbot.config.errors import ConfigErrors
    from buildbot.config.master import MasterConfig

    from tests.test_render import base_config, make_master

    root = make_master(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\npost-buildout-steps = upgrade-test\n"
    )
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert "step set 'upgrade-test' needs a git or hg buildout" in str(info.value.errors)


@pytest.mark.parametrize("value", ["-x", "a b", "../tag", "%(prop:x)s"])
def test_upgrade_test_from_is_a_plain_token(tmp_path: Path, value: str) -> None:
    manifest = tmp_path / "MANIFEST.cfg"
    manifest.write_text(f"[erp]\n{GIT}upgrade-test.from = {value}\n")
    diags = Diagnostics()
    load_manifests([manifest], diags)
    assert any("upgrade-test.from" in str(d) for d in diags.errors)


def test_migration_lines_of_odoo_name_the_module() -> None:
    line = (
        "2026-12-01 10:00:00,000 42 INFO db odoo.modules.migration: module anybox_ci_sample: "
        "Running migration [18.0.1.1.0>] post-migrate"
    )
    match = MIGRATION_RE.search(line)
    assert match and match["module"] == "anybox_ci_sample"
    observer = _ModuleObserver()
    observer.outLineReceived("... odoo.modules.loading: Loading module base (1/8)")
    observer.outLineReceived(line)
    assert observer.migrating == "anybox_ci_sample"
    observer.outLineReceived("... odoo.modules.loading: Loading module web (3/8)")
    assert observer.migrating is None and observer.loading == "web"


def test_a_failed_upgrade_summary_names_the_module() -> None:
    step = create_step_from_step_or_factory(UpgradeStep(name="upgrade_test", command=["true"]))
    assert isinstance(step, UpgradeStep)
    step.observer.summary = "critical: Failed to initialize database `db`."
    step.modules.migrating = "anybox_ci_sample"
    step.failed = True
    assert step.getResultSummary()["step"] == (
        "migration of anybox_ci_sample failed: critical: Failed to initialize database `db`."
    )
    step.failed = False
    assert step.getResultSummary()["step"].startswith("critical:")
