"""Continuous versions and the upgrade test, as rendered from a manifest.

Each test writes a manifest, runs the configurator (the path users take) and reads the
steps of the one builder; the worker-side scripts have their own tests
(test_build_utils_version.py), and test_live_releases.py runs all of it on real Odoo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.config.errors import ConfigErrors
from buildbot.plugins import schedulers, steps, util
from buildbot.process.buildstep import create_step_from_step_or_factory
from buildbot.process.properties import Properties

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core import schema
from anybox_ci.core.diagnostics import Diagnostics
from anybox_ci.core.loader import Loaded, check, leave_out_broken
from anybox_ci.core.manifest import load_manifests
from anybox_ci.render.steps_generic import PACKAGE_FILE, ArchiveName
from anybox_ci.render.steps_release import (
    MIGRATION_RE,
    RELEASE_FILE,
    OfflineEnv,
    ReleaseFetch,
    UpgradeStep,
    VersionStep,
    _ModuleObserver,
    _ReleaseObserver,
    archive_name,
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


# ---------------------------------------------------------------- release archives, as shipped

RELEASE = (
    "[erp]\nbuild-for = postgresql\nbuildout = gittag https://example.com/erp.git b.cfg\n"
    "buildout-options =\n    odoo:src=/srv/odoo\n    -v\n"
    "post-buildout-steps = packaging\npackaging.upload-dir = {upload}\n\n"
)
INSTALL = (
    "[erp-install]\nbuild-for = postgresql\n"
    "buildout = archive https://example.com/latest.tar.gz anybox-ci-release.cfg\n"
    "archive.from = erp\npost-buildout-steps = test-command\ntest-command = bin/test\n"
)


def write_master(tmp_path: Path, manifest: str) -> Path:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir(parents=True, exist_ok=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(WORKERS)
    return root


def configure_release(tmp_path: Path, manifest: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    AnyboxConfigurator(write_master(tmp_path, manifest)).configure(config)
    return config


def check_then_leave_out(tmp_path: Path, manifest: str) -> Loaded:
    loaded = check(write_master(tmp_path, manifest))
    kept = leave_out_broken(loaded, loaded.diagnostics.errors)
    assert kept is not None, loaded.diagnostics.errors
    return kept


def steps_of(config: dict[str, Any], builder: str) -> dict[str, Any]:
    (found,) = [b for b in config["builders"] if b.name == builder]
    built = [s.buildStep() for s in found.factory.steps]
    return {step_name(s): s for s in built}


def test_packaging_freezes_uploads_hashes_and_triggers(tmp_path: Path) -> None:
    upload = tmp_path / "releases"
    built = steps_of(configure_release(tmp_path, RELEASE.format(upload=upload)), "erp-pg15")
    names = list(built)
    tail = ["packaging", "upload_package", "archive_sha256", "trigger_archive_tests"]
    start = names.index("packaging")
    assert names[start : start + len(tail)] == tail
    argv = built["packaging"].command
    assert argv[2:5] == ["package", "--buildout-dir", "."]
    assert "--config=b.cfg" in argv
    # the manifest's assignments are frozen into the archive; other arguments are not
    assert [a for a in argv if isinstance(a, str) and a.startswith("--option")] == [
        "--option=odoo:src=/srv/odoo"
    ]
    props = Properties(release_version="1.4.2", buildnumber=3, builddir="/w/erp-pg15")
    rendered = [props.render(a).result if not isinstance(a, str) else a for a in argv]
    assert "--name=erp-1.4.2" in rendered
    assert "--output=/w/erp-pg15/" + PACKAGE_FILE in rendered
    upload_step = built["upload_package"]
    assert upload_step.workersrc == PACKAGE_FILE
    assert props.render(upload_step.masterdest).result == f"{upload}/erp-1.4.2.tar.gz"
    trigger = built["trigger_archive_tests"]
    assert isinstance(trigger, steps.Trigger)
    assert trigger.schedulerNames == ["release:erp"]
    assert set(trigger.set_properties) >= {"archive_name", "archive_sha256"}
    assert trigger.waitForFinish is False


def test_archive_from_gets_a_triggerable_over_its_cells(tmp_path: Path) -> None:
    config = configure_release(tmp_path, RELEASE.format(upload=tmp_path / "r") + INSTALL)
    (triggerable,) = [s for s in config["schedulers"] if s.name == "release:erp"]
    assert isinstance(triggerable, schedulers.Triggerable)
    assert triggerable.builderNames == ["erp-install-pg15"]
    built = steps_of(config, "erp-install-pg15")
    assert list(built)[:3] == ["send_build_utils", "download_release", "fetch_buildout"]
    assert isinstance(built["fetch_buildout"].command, ReleaseFetch)
    # the archive brings its eggs: the worker's caches are not given to bin/buildout
    buildout = [fmt(a) for a in built["buildout"].command]
    assert not any("eggs-directory" in str(a) or "download-cache" in str(a) for a in buildout)
    assert buildout[1:3] == ["-c", "anybox-ci-release.cfg"]
    assert isinstance(built["buildout"].env, OfflineEnv)
    # a buildout without archive.from keeps its caches and has no release scheduler
    plain = steps_of(config, "erp-pg15")
    assert any("eggs-directory" in str(fmt(a)) for a in plain["buildout"].command)


def test_the_release_fetch_takes_the_exact_archive_and_its_hash() -> None:
    fetch = ReleaseFetch(util.Interpolate("https://example.com/latest.tar.gz"), "build")
    sha = "ab" * 32
    triggered = Properties(archive_name="erp-1.4.tar.gz", archive_sha256=sha)
    argv = fetch.getRenderingFor(triggered).result
    assert argv[2:] == [
        "fetch",
        "archive",
        "--url",
        RELEASE_FILE,
        "--dest",
        "build",
        f"--sha256={sha}",
    ]
    # triggered without a hash: the fetch is asked for an empty one, and refuses it
    assert fetch.getRenderingFor(Properties(archive_name="erp-1.tar.gz")).result[-1] == "--sha256="
    forced = fetch.getRenderingFor(Properties()).result
    assert forced[-4:] == ["--url", "https://example.com/latest.tar.gz", "--dest", "build"]


def test_only_plain_archive_names_are_read_on_the_master() -> None:
    assert archive_name("erp-1.4.2.tar.gz") == "erp-1.4.2.tar.gz"
    for bad in (
        "../erp.tar.gz",
        "/etc/passwd",
        "erp.tar.gz/..",
        "a/b.tar.gz",
        "x.zip",
        "",
        None,
        3,
    ):
        assert archive_name(bad) is None, bad


def test_the_offline_env_removes_every_index_of_pip() -> None:
    env = OfflineEnv(
        {"PATH": "/bin", "PIP_FIND_LINKS": "/opt/wheels"}, (("PIP_EXISTS_ACTION", "w"),)
    )
    rendered = env.getRenderingFor(Properties()).result
    assert rendered["PIP_NO_INDEX"] == "1"
    assert rendered["PIP_FIND_LINKS"] is None and rendered["PIP_INDEX_URL"] is None
    assert rendered["PATH"] == "/bin" and rendered["PIP_EXISTS_ACTION"] == "w"


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        (
            RELEASE.format(upload="/r")
            + INSTALL.replace("archive.from = erp", "archive.from = nope"),
            "archive.from: no buildout section 'nope'",
        ),
        (
            RELEASE.format(upload="/r").replace("packaging.upload-dir = /r\n", "") + INSTALL,
            "archive.from: 'erp' makes no release archive: it needs 'packaging' in "
            "post-buildout-steps and packaging.upload-dir",
        ),
        (
            RELEASE.format(upload="/r")
            + INSTALL.replace(
                "archive https://example.com/latest.tar.gz anybox-ci-release.cfg",
                "standalone b.cfg",
            ),
            "archive.from: only an 'archive' buildout tests release archives, not 'standalone'",
        ),
    ],
)
def test_a_bad_archive_from_is_a_config_error(tmp_path: Path, manifest: str, error: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        configure_release(tmp_path, manifest)
    assert any(e.endswith(f"[erp-install] {error}") for e in info.value.errors), info.value.errors
    # `anybox-ci check` (no Buildbot) reports it too, at the section
    found = [str(d) for d in check(tmp_path.resolve()).diagnostics.errors]
    assert any("MANIFEST.cfg:" in d and d.endswith(f"[erp-install] {error}") for d in found), found


def test_an_archive_from_a_broken_section_is_left_out_with_it(tmp_path: Path) -> None:
    manifest = RELEASE.format(upload="/r").replace("[erp]\n", "[erp]\ncolour = red\n", 1) + INSTALL
    loaded = check_then_leave_out(tmp_path / "broken", manifest)
    assert {b.name for b in loaded.config.buildouts}.isdisjoint({"erp", "erp-install"})
    whole = check_then_leave_out(tmp_path / "whole", RELEASE.format(upload="/r") + INSTALL)
    assert {b.name for b in whole.config.buildouts} >= {"erp", "erp-install"}
