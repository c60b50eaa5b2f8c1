"""The render layer: what the configurator puts into a Buildbot configuration dict.

The step tests at the end are trial-style (``buildbot.test.steps.TestBuildStepMixin``):
they run under plain pytest as ``unittest.TestCase`` subclasses.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from buildbot.changes.changes import Change
from buildbot.config.errors import ConfigErrors
from buildbot.config.master import FileLoader, MasterConfig
from buildbot.interfaces import IRenderable
from buildbot.plugins import changes, schedulers, steps, util
from buildbot.plugins import worker as bbworker
from buildbot.process.factory import BuildFactory
from buildbot.process.properties import Secret
from buildbot.process.results import FAILURE, SUCCESS
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectShell, TestBuildStepMixin
from twisted.trial import unittest

from anybox_ci.cli import main as cli_main
from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core.capabilities import CapabilityRegistry
from anybox_ci.render.buildsteps import CellEnv, UtilStep
from anybox_ci.render.factory import WithRevision
from anybox_ci.render.steps_release import VersionStep

MANIFEST = """\
[erp]
buildout = git https://e.com/erp.git main buildout.cfg
build-for = postgresql >= 15
build-category = odoo
watch =
    git https://e.com/addons.git 17.0
    hg https://e.com/hgaddons default
tree-stable-timer = 30
description = The ERP

[site]
buildout = standalone site/buildout.cfg
build-for = postgresql 15
build-requires = wkhtmltopdf
"""

WORKERS = """\
[ci1]
password = secret:worker-ci1
priority = 10
max_builds = 2
arch = x86_64
capability =
    postgresql 15 port=5433 host=/var/run/postgresql user=ci bin=/pg15/bin lib=/pg15/lib
    postgresql 17 port=5434 bin=/pg17/bin
    wkhtmltopdf

[ci2]
password = clear-text
capability = postgresql 17 port=5432
"""


def make_master(root: Path, manifest: str = MANIFEST, workers: str = WORKERS) -> Path:
    root = root.resolve()
    (root / "buildouts" / "site").mkdir(parents=True, exist_ok=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "site" / "buildout.cfg").write_text(
        "[buildout]\nextends = versions.cfg\nparts =\n"
    )
    (root / "buildouts" / "site" / "versions.cfg").write_text("[versions]\n")
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(workers)
    return root


def configured(root: Path, config_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    config_dict = {} if config_dict is None else config_dict
    AnyboxConfigurator(root).configure(config_dict)
    return config_dict


def by_name(items: list[Any]) -> dict[str, Any]:
    return {item.name: item for item in items}


def change(repository: str, branch: str | None) -> Change:
    return Change(
        who="dev <dev@e.com>",
        files=["a.py"],
        comments="fix",
        revision="abc123",
        branch=branch,
        repository=repository,
    )


def base_config(*configurators: Any) -> dict[str, Any]:
    return {
        "configurators": list(configurators),
        "protocols": {"pb": {"port": "tcp:0"}},
        "buildbotNetUsageData": None,
    }


# ---------------------------------------------------------------- builders and workers


def test_builders_per_cell(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path))
    builders = by_name(d["builders"])
    assert sorted(builders) == ["erp-pg15", "erp-pg17", "site-pg15"]
    erp15, erp17, site = builders["erp-pg15"], builders["erp-pg17"], builders["site-pg15"]
    assert erp15.workernames == ["ci1"]
    assert erp17.workernames == ["ci1", "ci2"]  # priority order
    assert site.workernames == ["ci1"]
    assert erp15.tags == ["odoo", "pg15"]
    assert erp17.tags == ["odoo", "pg17"]
    assert site.tags == ["pg15"]
    assert (erp15.project, site.project) == ("erp", "site")
    assert erp15.description == "The ERP"
    assert erp15.properties["pg_version"] == "15"
    assert erp15.properties["buildout"] == "erp"
    assert erp15.properties["build_requires"] == []
    assert site.properties["build_requires"] == ["wkhtmltopdf"]
    assert erp17.properties["pg_version"] == "17"
    # one factory per buildout, shared by its cells
    assert erp15.factory is erp17.factory
    assert isinstance(site.factory, BuildFactory)
    assert [p.name for p in d["projects"]] == ["erp", "site"]
    assert by_name(d["projects"])["erp"].description == "The ERP"


def test_workers(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path))
    workers = {w.workername: w for w in d["workers"]}
    assert sorted(workers) == ["ci1", "ci2"]
    ci1, ci2 = workers["ci1"], workers["ci2"]
    assert isinstance(ci1, bbworker.Worker)
    # a secret: password stays a secret reference, never the value
    assert isinstance(ci1.password, Secret)
    assert ci1.password.secret_name == "worker-ci1"
    assert ci2.password == "clear-text"
    assert ci1.max_builds == 2
    assert ci1.properties.getProperty("arch") == "x86_64"
    caps = ci1.properties.getProperty("anybox_capabilities")
    assert [(c["name"], c["version"]) for c in caps] == [
        ("postgresql", "15"),
        ("postgresql", "17"),
        ("wkhtmltopdf", ""),
    ]
    assert caps[0]["options"]["port"] == "5433"


# ---------------------------------------------------------------- schedulers, change sources


def test_one_change_scheduler_per_watching_buildout(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path))
    scheds = by_name(d["schedulers"])
    erp = scheds["changes:erp"]
    assert isinstance(erp, schedulers.AnyBranchScheduler)
    assert sorted(erp.builderNames) == ["erp-pg15", "erp-pg17"]
    # Buildbot services keep their constructor arguments until they are started
    assert erp._config_kwargs["treeStableTimer"] == 30
    accept = erp._config_kwargs["change_filter"].filter_change
    assert accept(change("https://e.com/erp.git", "main"))
    assert accept(change("https://e.com/addons.git", "17.0"))
    assert accept(change("https://e.com/hgaddons", "default"))
    assert not accept(change("https://e.com/erp.git", "17.0"))
    assert not accept(change("https://e.com/addons.git", "main"))
    assert not accept(change("https://e.com/other.git", "main"))
    assert not accept(change("https://e.com/erp.git", None))
    # a standalone buildout watches nothing: no change scheduler of its own
    change_scheds = [s for s in d["schedulers"] if isinstance(s, schedulers.AnyBranchScheduler)]
    assert [s.name for s in change_scheds] == ["changes:erp"]


def test_force_schedulers_per_buildout_and_one_for_admins(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path))
    force = {s.name: s for s in d["schedulers"] if isinstance(s, schedulers.ForceScheduler)}
    assert sorted(force) == ["force-erp", "force-site", "force_matching"]
    assert force["force-erp"].builderNames == ["erp-pg15", "erp-pg17"]
    assert force["force-site"].builderNames == ["site-pg15"]
    assert sorted(force["force_matching"].builderNames) == ["erp-pg15", "erp-pg17", "site-pg15"]


def test_pollers_per_watched_repository(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path))
    polled = sorted(
        (
            type(p).__name__,
            p._config_kwargs.get("repourl") or p._config_args[0],
            tuple(p._config_kwargs["branches"]),
        )
        for p in d["change_source"]
    )
    assert polled == [
        ("GitPoller", "https://e.com/addons.git", ("17.0",)),
        ("GitPoller", "https://e.com/erp.git", ("main",)),
        ("HgPoller", "https://e.com/hgaddons", ("default",)),
    ]
    assert all(isinstance(p, changes.GitPoller | changes.HgPoller) for p in d["change_source"])


def test_user_configuration_is_kept(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    own_factory = BuildFactory([steps.ShellCommand(command=["true"])])
    own_worker = bbworker.Worker("mine", "pw")
    own_builder = util.BuilderConfig(name="my-builder", workernames=["mine"], factory=own_factory)
    own_sched = schedulers.ForceScheduler(name="my_force", builderNames=["my-builder"])
    own_poller = changes.GitPoller(repourl="https://e.com/mine.git", branches=["main"])
    d = base_config(AnyboxConfigurator(root))
    d.update(
        title="mine",
        workers=[own_worker],
        builders=[own_builder],
        schedulers=[own_sched],
        change_source=[own_poller],
    )
    config = MasterConfig.loadFromDict(d, "master.cfg")
    assert d["builders"][0] is own_builder
    assert d["schedulers"][0] is own_sched
    assert d["workers"][0] is own_worker
    assert d["change_source"][0] is own_poller
    assert config.title == "mine"
    assert sorted(b.name for b in config.builders) == [
        "erp-pg15",
        "erp-pg17",
        "my-builder",
        "site-pg15",
    ]
    assert sorted(config.schedulers) == [
        "changes:erp",
        "force-erp",
        "force-site",
        "force_matching",
        "my_force",
    ]
    assert sorted(w.workername for w in config.workers) == ["ci1", "ci2", "mine"]
    assert len(config.change_sources) == 4


def test_whole_configuration_loads_without_error(tmp_path: Path) -> None:
    config = MasterConfig.loadFromDict(
        base_config(AnyboxConfigurator(make_master(tmp_path))), "master.cfg"
    )
    assert len(config.builders) == 3


# ---------------------------------------------------------------- errors


def test_manifest_error_is_a_buildbot_config_error(tmp_path: Path) -> None:
    root = make_master(tmp_path, MANIFEST + "colour = red\n")
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    line = f"{root}/buildouts/MANIFEST.cfg:15: [site] colour: unknown option"
    # our diagnostic first; Buildbot then notes that nothing got configured
    assert info.value.errors[0] == line


def test_workers_error_is_a_buildbot_config_error(tmp_path: Path) -> None:
    root = make_master(tmp_path, workers=WORKERS + "max_builds = many\n")
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    line = f"{root}/workers.cfg:14: [ci2] max_builds: expected an integer, got 'many'"
    assert info.value.errors[0] == line


def test_file_loader_reports_the_diagnostic(tmp_path: Path) -> None:
    root = make_master(tmp_path, MANIFEST + "biuld-requires = x\n")
    (root / "master.cfg").write_text(
        "from anybox_ci.configurator import AnyboxConfigurator\n"
        "c = BuildmasterConfig = {}\n"
        "c['buildbotNetUsageData'] = None\n"
        "c['protocols'] = {'pb': {'port': 'tcp:0'}}\n"
        "c['configurators'] = [AnyboxConfigurator(basedir)]\n"
    )
    with pytest.raises(ConfigErrors) as info:
        FileLoader(str(root), "master.cfg").loadConfig()
    assert info.value.errors[0] == (
        f"{root}/buildouts/MANIFEST.cfg:15: [site] biuld-requires: unknown option "
        "(did you mean build-requires?)"
    )
    assert not any("Traceback" in e for e in info.value.errors)


def test_file_loader_clean(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    shutil.copy(Path(__file__).parent.parent / "master.cfg.sample", root / "master.cfg")
    config = FileLoader(str(root), "master.cfg").loadConfig()
    assert sorted(b.name for b in config.builders) == ["erp-pg15", "erp-pg17", "site-pg15"]


def test_step_set_without_its_options_is_refused(tmp_path: Path) -> None:
    root = make_master(tmp_path, "[erp]\nbuildout = standalone b.cfg\ndb-steps = restore\n")
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert info.value.errors[0] == (
        f"{root}/buildouts/MANIFEST.cfg:3: [erp] db-steps: step set 'restore' needs a value "
        "for 'restore.dump', 'restore.master-dump', 'restore.url' or 'db-restore-command'"
    )


def test_master_cfg_step_set_declares_what_it_needs(tmp_path: Path) -> None:
    """``register(..., requires=...)``: the loader checks it like a built-in's needs."""
    from anybox_ci.core import schema
    from anybox_ci.render.stepsets import DEFAULT_STEP_SETS, StepContext

    mine = DEFAULT_STEP_SETS.copy()

    @mine.register("post-buildout-steps", "smoke", "old-smoke", requires=[schema.PYTEST_ARGS])
    def smoke(ctx: StepContext) -> list[Any]:
        """Run the smoke tests."""
        return [ctx.shell("smoke", ["bin/smoke", *ctx.get(schema.PYTEST_ARGS)])]

    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n"
        "post-buildout-steps = old-smoke\n",
    )
    diags = AnyboxConfigurator(root, step_sets=mine).load().diagnostics.items
    m = f"{root}/buildouts/MANIFEST.cfg"
    diags = [d for d in diags if d.path == m]
    assert [str(d) for d in diags] == [
        f"{m}:4: warning: [erp] post-buildout-steps: deprecated step set name 'old-smoke', "
        "use 'smoke'",
        f"{m}:4: [erp] post-buildout-steps: step set 'smoke' needs a value for 'pytest-args'",
    ]
    spec = mine.catalogue().names(schema.POST_BUILDOUT_STEPS)["smoke"]
    assert spec.doc == "Run the smoke tests."


def test_master_cfg_step_set_refusing_a_buildout_is_a_render_error(tmp_path: Path) -> None:
    from anybox_ci.render.stepsets import DEFAULT_STEP_SETS, StepContext

    mine = DEFAULT_STEP_SETS.copy()

    @mine.register("post-buildout-steps", "picky")
    def picky(ctx: StepContext) -> list[Any]:
        raise ValueError("picky needs a sunny day")

    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\npost-buildout-steps = picky\n",
    )
    configurator = AnyboxConfigurator(root, step_sets=mine)
    loaded = configurator.load()
    assert not loaded.diagnostics.errors
    assert [str(p) for p in configurator.render_problems(loaded)] == [
        f"{root}/buildouts/MANIFEST.cfg:1: [erp] picky needs a sunny day"
    ]


def test_unknown_step_set_kind_is_refused_at_registration() -> None:
    from anybox_ci.render.stepsets import DEFAULT_STEP_SETS

    with pytest.raises(ValueError, match="unknown step set kind 'post-steps'"):
        DEFAULT_STEP_SETS.copy().register("post-steps", "x")


def test_build_category_equal_to_a_cell_tag(tmp_path: Path) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\nbuild-category = pg15\n",
    )
    config = MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert by_name(config.builders)["erp-pg15"].tags == ["pg15"]


def test_section_named_force(tmp_path: Path) -> None:
    root = make_master(
        tmp_path, "[force]\nbuildout = git https://e.com/f.git main b.cfg\nbuild-for = postgresql\n"
    )
    config = MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert sorted(config.schedulers) == ["changes:force", "force-force", "force_matching"]


def test_nightly_scheduler_name_is_not_another_sections(tmp_path: Path) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nnightly = 02:30\n\n"
        "[erp-nightly-0230]\nbuildout = git https://e.com/n.git main b.cfg\n",
    )
    config = MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert sorted(config.schedulers) == [
        "changes:erp-nightly-0230",
        "force-erp",
        "force-erp-nightly-0230",
        "force_matching",
        "nightly:erp:0230",
    ]


def test_build_category_repeats_are_merged(tmp_path: Path) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql 15\n"
        "build-category = odoo odoo, v17\n",
    )
    config = MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert by_name(config.builders)["erp-pg15"].tags == ["odoo", "v17", "pg15"]


# ---------------------------------------------------------------- factories


SOURCES = {
    "standalone": "standalone site/buildout.cfg",
    "git": "git https://e.com/erp.git main buildout.cfg subdir=deploy",
    "hg": "hg https://e.com/erp default buildout.cfg",
    "bzr": "bzr lp:erp buildout.cfg",
    "gittag": "gittag https://e.com/erp.git release.cfg",
    "hgtag": "hgtag https://e.com/erp release.cfg",
    "archive": "archive https://e.com/%(prop:tarball)s release.cfg",
}

# what follows the fetch: the same pipeline for every source type
PIPELINE = [
    (steps.SetProperty, "testing_db"),
    (steps.SetProperties, "cell_settings"),
    (UtilStep, "bootstrap"),
    (UtilStep, "buildout"),
    (UtilStep, "create_db"),
    (UtilStep, "install_modules_test"),
    (UtilStep, "drop_db"),
]


def factory_steps(root: Path, section: str) -> list[Any]:
    d = configured(root)
    builder = next(b for b in d["builders"] if b.project == section)
    return [s.buildStep() for s in builder.factory.steps]


def assert_argv(command: Any) -> None:
    if isinstance(command, WithRevision):  # an argv list, and maybe a revision after it
        command = command.argv
    assert isinstance(command, list), f"not an argv list: {command!r}"
    for item in command:
        assert isinstance(item, str) or IRenderable.providedBy(item), repr(item)


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_factory_steps_per_source_type(tmp_path: Path, kind: str) -> None:
    manifest = f"[{kind}]\nbuildout = {SOURCES[kind]}\nbuild-for = postgresql 15\n"
    built = factory_steps(make_master(tmp_path, manifest), kind)
    assert (type(built[0]), built[0].name) == (steps.FileDownload, "send_build_utils")
    fetch = built[1 : -len(PIPELINE)]
    assert [(type(s), s.name) for s in built[-len(PIPELINE) :]] == PIPELINE
    if kind in ("git", "gittag", "hg", "hgtag"):
        # then the release version, counted from the last version tag
        *fetch, version = fetch
        assert (type(version), version.name) == (VersionStep, "release_version")
    if kind == "standalone":
        # the buildout file and the file it extends
        assert [type(s) for s in fetch] == [steps.FileDownload, steps.FileDownload]
        assert [Path(s.mastersrc).name for s in fetch] == ["buildout.cfg", "versions.cfg"]
        assert [s.workerdest for s in fetch] == ["buildout.cfg", "versions.cfg"]
    elif kind == "git":
        (git,) = fetch
        assert isinstance(git, steps.Git)
        assert git.repourl == "https://e.com/erp.git"
        assert git.branch == "main"
        assert git.codebase
    elif kind == "hg":
        (hg,) = fetch
        assert isinstance(hg, steps.Mercurial)
        assert (hg.repourl, hg.branchType) == ("https://e.com/erp", "inrepo")
        assert hg.codebase
    else:
        (util_step,) = fetch
        assert isinstance(util_step, UtilStep)
        argv = util_step.command
        if kind == "bzr":  # --revision only when the build has one (a forced build: the tip)
            assert isinstance(argv, WithRevision)
            argv = argv.argv
        assert_argv(argv)
        vcs = {"bzr": "bzr", "gittag": "git", "hgtag": "hg", "archive": "archive"}[kind]
        assert argv[2:5] == ["fetch", vcs, "--url"]
        if kind in ("gittag", "hgtag"):  # a release: the tag given as a property
            assert argv[-2:] == ["--revision", util.Property("buildout-tag")]
    for step in built:
        if hasattr(step, "command"):
            assert_argv(step.command)


def test_every_step_set_renders_argv_lists(tmp_path: Path) -> None:
    manifest = """\
[erp]
buildout = git https://e.com/erp.git main buildout.cfg
build-for = postgresql 15
post-dl-steps =
db-steps = simple_create
post-buildout-steps =
    install-modules-test
    install-modules
    update-modules
    nose
    static-analysis
    doc
    packaging
    pytest
    test-command
    functional
test-command =
    bin/pytest -x "tests dir"
    bin/other --flag
functional.server-command = bin/start_openerp --http-port={port}
functional.commands = bin/behave features
functional.wait-url = http://localhost:{port}/web/login
doc.upload-dir = /srv/docs
packaging.upload-dir = /srv/packages
nose.coverage = true
"""
    built = factory_steps(make_master(tmp_path, manifest), "erp")
    names = [s.name for s in built if isinstance(s.name, str)]
    for expected in (
        "install_modules_test",
        "install_modules",
        "update_modules",
        "nose",
        "static_analysis",
        "doc",
        "upload_doc",
        "packaging",
        "upload_package",
        "pytest",
        "test_1",
        "test_2",
        "functional",
    ):
        assert expected in names
    commands = [s.command for s in built if isinstance(s, UtilStep)]
    assert len(commands) >= 14
    for command in commands:
        assert_argv(command)
    test_1 = next(s for s in built if isinstance(s.name, str) and s.name == "test_1")
    assert test_1.command == ["bin/pytest", "-x", "tests dir"]


def test_deprecated_step_name_runs_the_new_step_set(tmp_path: Path) -> None:
    manifest = "[erp]\nbuildout = standalone b.cfg\npost-buildout-steps = standard\n"
    built = factory_steps(make_master(tmp_path, manifest), "erp")
    assert "install_modules_test" in [s.name for s in built]


# ---------------------------------------------------------------- steps at build time

PG_OFFERS = [
    {
        "name": "postgresql",
        "version": "15",
        "options": {
            "port": "5433",
            "host": "/var/run/postgresql",
            "user": "ci",
            "bin": "/pg15/bin",
            "lib": "/pg15/lib",
            "password": "pg-ci1",
        },
    },
    {"name": "postgresql", "version": "17", "options": {"port": "5434", "bin": "/pg17/bin"}},
]


class UtilStepTests(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    def setUp(self) -> Any:
        self.setup_test_reactor()
        return self.setup_test_build_step(with_secrets={"pg-ci1": "s3cret"})

    def test_summary_line_becomes_the_step_summary(self) -> Any:
        argv = ["python3", "anybox-ci-utils.pyz", "odoo_log", "run"]
        self.setup_step(UtilStep(name="tests", command=argv))
        self.expect_commands(
            ExpectShell(workdir="wkdir", command=argv)
            .stdout("running\nFAIL: test_x\nanybox-ci summary: 2 failed: test_x\n")
            .exit(1)
        )
        self.expect_outcome(result=FAILURE)
        self.expect_result_summary({"step": "2 failed: test_x"})
        return self.run_step()

    def test_exported_got_revision_sets_a_property(self) -> Any:
        argv = ["python3", "anybox-ci-utils.pyz", "fetch", "bzr"]
        self.setup_step(UtilStep(name="fetch_buildout", command=argv))
        self.expect_commands(
            ExpectShell(workdir="wkdir", command=argv)
            .stdout("checked out\ngot_revision=42\nnot_exported=1\n")
            .exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        self.expect_property("got_revision", "42", "fetch_buildout")
        self.expect_no_property("not_exported")
        return self.run_step()

    def test_cell_env_of_the_matching_postgresql_offer(self) -> Any:
        self.setup_step(
            UtilStep(name="tests", command=["bin/test"], env=CellEnv(CapabilityRegistry()))
        )
        self.build.setProperty("anybox_capabilities", PG_OFFERS, "Worker")
        self.build.setProperty("anybox_cell_versions", [["postgresql", "15"]], "Builder")
        self.build.setProperty("anybox_cell_requires", [], "Builder")
        self.expect_commands(
            ExpectShell(
                workdir="wkdir",
                command=["bin/test"],
                env={
                    "PGPORT": "5433",
                    "PGHOST": "/var/run/postgresql",
                    "PGUSER": "ci",
                    # the password is in the cell's password file, never in the env
                    "PGPASSFILE": "./.anybox-ci-pgpass",
                    "PGPASSWORD": None,
                    "ANYBOX_CI_HOOK_SECRET": None,
                    "PG_VERSION": "15",
                    "PATH": ["/pg15/bin", "${PATH}"],
                    "LD_LIBRARY_PATH": ["/pg15/lib", "${LD_LIBRARY_PATH}"],
                },
            ).exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def test_cell_env_of_another_version(self) -> Any:
        self.setup_step(
            UtilStep(name="tests", command=["bin/test"], env=CellEnv(CapabilityRegistry()))
        )
        self.build.setProperty("anybox_capabilities", PG_OFFERS, "Worker")
        self.build.setProperty("anybox_cell_versions", [["postgresql", "17"]], "Builder")
        self.expect_commands(
            ExpectShell(
                workdir="wkdir",
                command=["bin/test"],
                env={
                    "PGPORT": "5434",
                    "PG_VERSION": "17",
                    "PATH": ["/pg17/bin", "${PATH}"],
                    "ANYBOX_CI_HOOK_SECRET": None,
                },
            ).exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()


class ExpectShellEnvIncludes(ExpectShell):
    """An ExpectShell whose ``env`` lists variables that must be set, with their values.

    Everything else (command, workdir, timeout...) is compared exactly; other variables
    the render layer adds are allowed.
    """

    def _check(self, case: Any, command: Any) -> None:
        wanted = self.args["env"]
        got = command.args.get("env") or {}
        case.assertEqual({name: got.get(name) for name in wanted}, wanted)
        exact = self.args
        self.args = {**exact, "env": got}
        try:
            super()._check(case, command)
        finally:
            self.args = exact


class FactoryStepTests(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    """Steps of a generated factory, with the properties a real build would have."""

    def setUp(self) -> Any:
        self.setup_test_reactor()
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        self.root = make_master(Path(tmp))
        return self.setup_test_build_step()

    def test_buildout_step_command_and_env(self) -> Any:
        d = configured(self.root)
        builder = by_name(d["builders"])["erp-pg15"]
        worker = next(w for w in d["workers"] if w.workername == "ci1")
        wanted = ("testing_db", "cell_settings", "buildout")
        for factory in builder.factory.steps:
            if factory.kwargs.get("name") in wanted:
                self.setup_step(factory)
        for name, value in builder.properties.items():
            self.build.setProperty(name, value, "Builder")
        for name in worker.properties.asDict():
            self.build.setProperty(name, worker.properties.getProperty(name), "Worker")
        self.build.setProperty("buildername", "erp-pg15", "Builder")
        self.build.setProperty("builddir", "/w/erp-pg15", "Worker")
        self.build.setProperty("buildout_bin", "/cache/venv/bin/buildout", "bootstrap")
        cache = "/w/erp-pg15/../anybox-ci-cache"
        self.expect_commands(
            ExpectShellEnvIncludes(
                workdir="build",
                command=[
                    "/cache/venv/bin/buildout",
                    "-c",
                    "buildout.cfg",
                    f"buildout:download-cache={cache}/downloads",
                    f"buildout:eggs-directory={cache}/eggs",
                    "openerp:options.db_host=/var/run/postgresql",
                    "openerp:options.db_port=5433",
                    "openerp:options.db_user=ci",
                    "openerp:options.db_name=anybox-erp-pg15",
                ],
                env={
                    "PGPORT": "5433",
                    "PGHOST": "/var/run/postgresql",
                    "PGUSER": "ci",
                    "PG_VERSION": "15",
                    "PATH": ["/pg15/bin", "${PATH}"],
                    "LD_LIBRARY_PATH": ["/pg15/lib", "${LD_LIBRARY_PATH}"],
                    "ANYBOX_CI_DB": "anybox-erp-pg15",
                },
                timeout=3600,
            ).exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        self.expect_outcome(result=SUCCESS)
        self.expect_outcome(result=SUCCESS)
        # checked after each step: testing_db is set by the first one
        self.expect_property("testing_db", "anybox-erp-pg15")
        return self.run_step()


def test_commit_status_option_adds_reporters_with_a_secret_token(tmp_path: Path) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = git https://e.com/erp.git main b.cfg\nbuild-for = postgresql\n"
        "commit-status = gitea https://gitea.example.com gitea-token\n",
    )
    d = configured(root)
    reporters = [s for s in d["services"] if type(s).__name__.endswith("StatusPush")]
    assert len(reporters) == 2
    assert "gitea-token" in repr(reporters[0]._config_args) + repr(reporters[0]._config_kwargs)


def test_commit_status_refuses_an_unknown_forge(tmp_path: Path, capsys: Any) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\ncommit-status = bitbucket https://x tok\n",
    )
    assert cli_main(["check", str(root)]) == 1
    assert "commit-status: expected 'FORGE API_URL TOKEN_SECRET'" in capsys.readouterr().out


def test_url_rewrites_make_workers_fetch_from_the_mirror(tmp_path: Path) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = git https://e.com/erp.git main b.cfg\nbuild-for = postgresql\n",
    )
    (root / "url-rewrites.cfg").write_text("https://e.com/ -> file:///srv/mirrors/git/e.com/\n")
    d = configured(root)
    factory = by_name(d["builders"])["erp-pg15"].factory
    git_step = next(s for s in factory.steps if s.step_class is steps.Git)
    assert git_step.kwargs["repourl"] == "file:///srv/mirrors/git/e.com/erp.git"
    # changes still name the original repository
    assert d["codebaseGenerator"]({"repository": "https://e.com/erp.git", "branch": "main"})


def test_malformed_url_rewrites_refuse_the_configuration(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    (root / "url-rewrites.cfg").write_text("no arrow here\n")
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert info.value.errors[0] == (
        f"{root}/url-rewrites.cfg:1: expected 'PREFIX -> REPLACEMENT', got 'no arrow here'"
    )


def test_master_cfg_can_add_a_step_set_without_touching_the_defaults(tmp_path: Path) -> None:
    from anybox_ci.render.stepsets import DEFAULT_STEP_SETS, StepContext

    mine = DEFAULT_STEP_SETS.copy()

    @mine.register("post-buildout-steps", "smoke")
    def smoke(ctx: StepContext) -> list[Any]:
        return [ctx.shell("smoke", ["bin/smoke", "--fast"])]

    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\npost-buildout-steps = smoke\n",
    )
    assert "smoke" not in DEFAULT_STEP_SETS.names()["post-buildout-steps"]
    errors = AnyboxConfigurator(root).load().diagnostics.errors
    assert any("unknown step set 'smoke'" in str(e) for e in errors)
    d: dict[str, Any] = {}
    AnyboxConfigurator(root, step_sets=mine).configure(d)
    factory = by_name(d["builders"])["erp-pg15"].factory
    smoke_step = next(s for s in factory.steps if s.kwargs.get("name") == "smoke")
    assert smoke_step.kwargs["command"] == ["bin/smoke", "--fast"]


def test_users_own_codebase_generator_still_names_other_changes(tmp_path: Path) -> None:
    d = configured(make_master(tmp_path), {"codebaseGenerator": lambda ch: "mine"})
    generator = d["codebaseGenerator"]
    assert generator({"repository": "https://e.com/erp.git", "branch": "main"}) != "mine"
    assert generator({"repository": "https://elsewhere/x.git", "branch": "main"}) == "mine"


def test_highest_priority_free_worker_gets_the_build() -> None:
    from types import SimpleNamespace

    from anybox_ci.render.buildsteps import priority_next_worker

    def wfb(name: str) -> Any:
        return SimpleNamespace(worker=SimpleNamespace(workername=name))

    choose = priority_next_worker({"slow": 1.0, "fast": 10.0, "mid": 5.0})
    free = [wfb("slow"), wfb("mid"), wfb("fast")]
    assert all(choose(None, free, None).worker.workername == "fast" for _ in range(20))
    assert choose(None, free[:2], None).worker.workername == "mid"
    assert choose(None, [], None) is None


def test_master_cfg_can_override_a_capability(tmp_path: Path) -> None:
    from anybox_ci.core.capabilities import CapabilitySpec

    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n",
    )
    spec = CapabilitySpec("postgresql", "postgres", "pgv", env={"DB_PORT": "port"})
    d: dict[str, Any] = {}
    AnyboxConfigurator(root, capabilities={"postgresql": spec}).configure(d)
    names = sorted(b.name for b in d["builders"])
    assert names == ["erp-postgres15", "erp-postgres17"]
    assert by_name(d["builders"])["erp-postgres15"].properties["pgv"] == "15"


# ---------------------------------------------------------------- secrets on workers (issue 11)


def test_a_postgresql_password_adds_the_password_file_steps(tmp_path: Path) -> None:
    workers = WORKERS.replace("postgresql 17 port=5434", "postgresql 17 port=5434 password=pg17")
    d = configured(make_master(tmp_path, workers=workers))
    names = [s.kwargs.get("name") for s in by_name(d["builders"])["erp-pg17"].factory.steps]
    # written before the first step that connects, removed after the last one
    assert names.index("pgpass") < names.index("bootstrap")
    assert names[-1] == "remove_pgpass"
    steps_by_name = {
        s.kwargs.get("name"): s for s in by_name(d["builders"])["erp-pg17"].factory.steps
    }
    assert steps_by_name["pgpass"].kwargs["mode"] == 0o600


def test_worker_secrets_lock_out_only_their_worker_when_missing(tmp_path: Path) -> None:
    from anybox_ci.render.secrets import WorkerPassword

    d = configured(make_master(tmp_path))
    ci1 = next(w for w in d["workers"] if w.workername == "ci1")
    assert isinstance(ci1.password, WorkerPassword)
    assert ci1.password.secret_name == "worker-ci1"
