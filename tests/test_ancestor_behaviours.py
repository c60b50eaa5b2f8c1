"""The ancestor's documented behaviours, one test each (issue 10, items 1 to 8): what its
manifests meant, they still mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.changes.changes import Change
from buildbot.plugins import changes
from buildbot.process.properties import Properties

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core import schema
from anybox_ci.core.inifile import strip_inline_comment
from anybox_ci.core.loader import Loaded, check
from anybox_ci.core.model import Watch
from anybox_ci.core.versions import Version, VersionFilter, parse_requirement
from anybox_ci.render.buildsteps import UtilStep
from anybox_ci.render.stepset_registry import EnvWith

WORKERS = """\
[pg]
password = secret:pg
capability =
    postgresql 9.4 port=5432
    postgresql 8.4-special port=5433
    private-bzr+ssh-access

[nopg]
password = secret:nopg
capability = private-bzr+ssh-access
"""


def master(root: Path, manifest: str, workers: str = WORKERS) -> Path:
    root = root.resolve()
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(workers)
    return root


def loaded(root: Path) -> Loaded:
    return check(root)


def messages(found: Loaded) -> list[str]:
    return [str(d) for d in found.diagnostics.items]


def configured(root: Path) -> dict[str, Any]:
    config: dict[str, Any] = {}
    AnyboxConfigurator(root).configure(config)
    return config


def steps_of(config: dict[str, Any], builder: str) -> list[Any]:
    found = next(b for b in config["builders"] if b.name == builder)
    return [s.buildStep() for s in found.factory.steps]


def rendered(value: Any, **properties: Any) -> Any:
    props = Properties()
    for name, prop in properties.items():
        props.setProperty(name, prop, "test")
    result: list[Any] = []
    props.render(value).addCallback(result.append)
    return result[0]


def polled(config: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(repository, branches) of each poller, as Buildbot was given them."""
    return [
        (p._config_kwargs.get("repourl") or p._config_args[0], list(p._config_kwargs["branches"]))
        for p in config["change_source"]
        if isinstance(p, changes.GitPoller)
    ]


# ---------------------------------------------------------------- 1. postgresql not-used


def test_not_used_gives_one_builder_on_any_worker(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[priv]\nbuildout = standalone b.cfg\nbuild-for = postgresql not-used\n"
        "build-requires = private-bzr+ssh-access\n",
    )
    found = loaded(root)
    assert messages(found) == []
    (cell,) = found.matrix.cells
    assert cell.name == "priv"
    # the PostgreSQL version does not matter: workers without one qualify
    assert sorted(cell.workers) == ["nopg", "pg"]
    assert dict(cell.properties) == {
        "buildout": "priv",
        "build_requires": ["private-bzr+ssh-access"],
        "pg_version": "not-used",
    }
    builder = next(b for b in configured(root)["builders"] if b.name == "priv")
    assert builder.properties["pg_version"] == "not-used"
    assert builder.properties["anybox_cell_versions"] == []


def test_not_used_with_another_build_for_line(tmp_path: Path) -> None:
    workers = WORKERS.replace(
        "private-bzr+ssh-access\n\n", "private-bzr+ssh-access\n    python 3.11\n\n"
    )
    root = master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for =\n    postgresql not-used\n    python\n",
        workers,
    )
    (cell,) = loaded(root).matrix.cells
    assert (cell.name, cell.workers) == ("erp-py3.11", ("pg",))
    assert cell.properties["pg_version"] == "not-used"


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "build-requires = postgresql not-used",
            "build-requires: postgresql not-used: 'not-used' only has a meaning in build-for",
        ),
        (
            "build-for = postgresql not-used OR >= 9",
            "build-for: 'not-used' stands alone, as in 'postgresql not-used', in "
            "'postgresql not-used OR >= 9'",
        ),
    ],
)
def test_not_used_elsewhere_is_an_error(tmp_path: Path, line: str, message: str) -> None:
    root = master(tmp_path, f"[erp]\nbuildout = standalone b.cfg\n{line}\n")
    (error,) = loaded(root).diagnostics.errors
    assert str(error).startswith(f"{root}/buildouts/MANIFEST.cfg:3: [erp] {message}")


# ---------------------------------------------------------------- 2. removed and kept options


def test_removed_options_warn_where_written(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbootstrap-type = v2\nbootstrap-eggs = /e\n"
        "packaging.vcs = git\n",
    )
    found = loaded(root)
    assert not found.diagnostics.errors
    m = root / "buildouts" / "MANIFEST.cfg"
    assert [(d.path, d.line, d.option) for d in found.diagnostics.warnings] == [
        (str(m), 3, "bootstrap-type"),
        (str(m), 4, "bootstrap-eggs"),
        (str(m), 5, "packaging.vcs"),
    ]
    for warning in found.diagnostics.warnings:
        assert warning.message.startswith("ignored since anybox_ci 0.1: ")
        assert warning.message.endswith("; remove it (anybox-ci migrate does)")


def test_pip_exists_action_is_the_buildout_step_environment(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[w]\nbuildout = standalone b.cfg\nbuild-for = postgresql 9.4\n"
        "buildout.pip-exists-action =  w  ; Wipe\n\n"
        "[default]\nbuildout = standalone b.cfg\nbuild-for = postgresql 9.4\n",
    )
    config = configured(root)
    for builder, action in (("w-pg9.4", "w"), ("default-pg9.4", "s")):
        step = next(s for s in steps_of(config, builder) if s.name == "buildout")
        assert isinstance(step.env, EnvWith)
        env = rendered(step.env)
        assert env["PIP_EXISTS_ACTION"] == action
        assert "ANYBOX_CI_DB" in env  # the cell's environment is still there


def test_pip_exists_action_is_checked(tmp_path: Path) -> None:
    root = master(tmp_path, "[w]\nbuildout = standalone b.cfg\nbuildout.pip-exists-action = wipe\n")
    (error,) = loaded(root).diagnostics.errors
    assert error.message == "expected one of s, i, w, b, a, got 'wipe'"


def test_packaging_root_dir_holds_the_upload_dir(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[DEFAULT]\npackaging.root-dir = /srv/releases\n\n"
        "[rel]\nbuildout = standalone b.cfg\npost-buildout-steps = packaging\n"
        "packaging.upload-dir = rel\n",
    )
    upload = next(s for s in steps_of(configured(root), "rel") if s.name == "upload_package")
    assert upload.root == "/srv/releases/rel"


def test_functional_parts_are_installed_before_the_tests(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[f]\nbuildout = standalone b.cfg\npost-buildout-steps = functional\n"
        "functional.commands = bin/selenium-run\nfunctional.parts = selenium robot\n"
        "functional.wait = 60\n",
    )
    built = steps_of(configured(root), "f")
    names = [s.name for s in built]
    install = built[names.index("install_functional_parts")]
    assert install.command[-3:] == ["install", "selenium", "robot"]
    run = built[names.index("functional")]
    assert names.index("install_functional_parts") < names.index("functional")
    # the default server is Odoo's start script; functional.wait is functional.timeout
    assert '["bin/start_openerp", "--http-port={port}"]' in run.command
    assert run.command[run.command.index("--timeout") + 1] == "60"


# ---------------------------------------------------------------- 3. step sets


def test_ancestor_step_sets(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[oe]\nbuildout = standalone b.cfg\nodoo-addons = stock, crm\n"
        "post-dl-steps = packaging\ndb-steps = pg_remote_copy\n"
        "pg_remote_copy.arguments = --from prod\npg_remote_copy.db_option = None\n"
        "pg_remote_copy.timeout = 7200\n"
        "post-buildout-steps =\n    openerpcommand-initialize-tests\n    update-openerp\n\n"
        "[all]\nbuildout = standalone b.cfg\ndb-steps = simple-create\n"
        "post-buildout-steps = openerpcommand-initialize-tests\nodoo.use-port = true\n",
    )
    found = loaded(root)
    assert not found.diagnostics.errors
    config = configured(root)
    built = {s.name: s for s in steps_of(config, "oe")}
    assert built["openerp_command_tests"].command[:5] == [
        "bin/openerp_command",
        "initialize",
        "--no-create",
        "--tests",
        "--database",
    ]
    assert built["openerp_command_tests"].command[6:] == ["--module", "stock", "--module", "crm"]
    copy = built["pg_remote_copy"]
    assert copy.command[0] == "pg_remote_copy"
    assert copy.command[2:] == ["--from", "prod"]  # no db option: the name is positional
    assert copy.timeout == 7200
    assert "update_modules" in built
    every = {s.name: s for s in steps_of(config, "all")}
    assert "create_db" in every
    command = every["openerp_command_tests"].command
    assert (
        command[command.index("--") + 1 :][-5:]
        == [
            "--all-modules",
            "--exclude",
            "auth_ldap",
            "--exclude",
            "document_ftp",
            "--port={port}",
        ][-5:]
    )
    assert command[2] == "ports"


def test_pg_remote_copy_needs_its_arguments(tmp_path: Path) -> None:
    root = master(tmp_path, "[oe]\nbuildout = standalone b.cfg\ndb-steps = pg_remote_copy\n")
    (error,) = loaded(root).diagnostics.errors
    assert error.message == "step set 'pg_remote_copy' needs a value for 'pg_remote_copy.arguments'"


# ---------------------------------------------------------------- 4. DEFAULT and interpolation


def test_default_variables_and_interpolation(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[DEFAULT]\nsome_common = /path/to/some/file\nroot = /srv\n"
        "doc.upload-root = %(root)s/doc\n\n"
        "[erp]\nbuildout = standalone b.cfg\nname = erp\ndoc.upload-dir = %(name)s-%(part)s\n"
        "part = web\ndescription = 100%% %(name)s, %(prop:buildername)s\n",
    )
    found = loaded(root)
    assert messages(found) == []
    (erp,) = found.config.buildouts
    assert erp.get(schema.DOC_UPLOAD_ROOT) == "/srv/doc"
    assert erp.get(schema.DOC_UPLOAD_DIR) == "erp-web"
    # %% is % once a value uses interpolation; Buildbot's own %(prop:...)s stays
    assert erp.get(schema.DESCRIPTION) == "100% erp, %(prop:buildername)s"


def test_a_missing_interpolation_key_is_an_error_at_its_line(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[DEFAULT]\nuploads = /srv\n\n[erp]\nbuildout = standalone b.cfg\n"
        "doc.upload-dir =\n    ok\n    %(upload)s/doc\n",
    )
    assert [str(e) for e in loaded(root).diagnostics.errors] == [
        f"{root}/buildouts/MANIFEST.cfg:8: [erp] doc.upload-dir: %(upload)s refers to no "
        "option of [erp] or [DEFAULT] (did you mean uploads?)"
    ]


def test_an_interpolation_loop_is_an_error(tmp_path: Path) -> None:
    root = master(tmp_path, "[erp]\nbuildout = standalone b.cfg\na = %(b)s\nb = %(a)s\n")
    errors = [e.message for e in loaded(root).diagnostics.errors]
    assert errors and all("levels of %(name)s interpolation" in e for e in errors)


def test_unknown_section_keys_are_still_typos(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[DEFAULT]\ntree-stable-timr = 5\n\n[erp]\nbuildout = standalone b.cfg\ncolour = red\n",
    )
    assert messages(loaded(root)) == [
        f"{root}/buildouts/MANIFEST.cfg:2: warning: [DEFAULT] tree-stable-timr: not an "
        "option: kept as a variable for %(tree-stable-timr)s (did you mean tree-stable-timer?)",
        f"{root}/buildouts/MANIFEST.cfg:6: [erp] colour: unknown option",
    ]


def test_dollar_properties_become_buildbot_interpolation(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[n]\nbuildout = standalone b.cfg\npost-buildout-steps =\n    nose\n    doc\n"
        "nose.upload-path = /srv/nose/$(buildername)s/$(prop:buildnumber)s\n"
        "nose.upload-url = http://nose.example.com/$(buildername)s\n"
        "doc.upload-dir = /srv/doc\ndoc.version = $(buildout-tag:-current)s\n",
    )
    (n,) = loaded(root).config.buildouts
    assert n.get(schema.NOSE_UPLOAD_PATH) == "/srv/nose/%(prop:buildername)s/%(prop:buildnumber)s"
    assert n.get(schema.NOSE_UPLOAD_URL) == "http://nose.example.com/%(prop:buildername)s"
    assert n.get(schema.DOC_VERSION) == "%(prop:buildout-tag:-current)s"
    built = {s.name: s for s in steps_of(configured(root), "n")}
    upload = built["upload_doc"]
    assert rendered(upload.masterdest, **{"buildout-tag": "1.2"}) == "/srv/doc/1.2"
    assert rendered(upload.masterdest) == "/srv/doc/current"


# ---------------------------------------------------------------- 5. inline comments


@pytest.mark.parametrize(
    "written, value",
    [
        ("314  ; seconds", "314"),
        ("stock, crm\t; Wipe", "stock, crm"),
        ("; all of it", ""),
        ("a;b", "a;b"),  # no blank before: not a comment
        ('sh -c "a ; b"', 'sh -c "a ; b"'),  # inside double quotes
        ("git+https://e.com/x.git#egg=x", "git+https://e.com/x.git#egg=x"),
        ("x # not a comment", "x # not a comment"),
    ],
)
def test_inline_comments(written: str, value: str) -> None:
    assert strip_inline_comment(written) == value


def test_inline_comments_in_a_manifest(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg  ; on the master\n"
        "tree-stable-timer = 314  ; seconds\nodoo-addons = stock, crm  ; Wipe\n"
        "post-buildout-steps =\n    install-modules-test  ; first\n    nose ; then\n",
    )
    found = loaded(root)
    assert messages(found) == []
    (erp,) = found.config.buildouts
    assert erp.get(schema.TREE_STABLE_TIMER) == 314
    assert erp.get(schema.ODOO_ADDONS) == ("stock", "crm")
    assert erp.get(schema.POST_BUILDOUT_STEPS) == ("install-modules-test", "nose")


# ---------------------------------------------------------------- 6. sections without buildout


def test_a_section_without_buildout_is_a_change_source(tmp_path: Path) -> None:
    addons = "https://e.com/addons.git"
    root = master(
        tmp_path,
        f"[addons]\nwatch = git {addons} 17.0\n\n"
        f"[erp]\nbuildout = standalone b.cfg\nwatch = git {addons} 17.0\n",
    )
    found = loaded(root)
    assert messages(found) == []
    assert [b.name for b in found.config.buildouts] == ["erp"]
    (section,) = found.config.watch_sections
    assert (section.name, section.watches) == ("addons", (Watch("git", addons, "17.0"),))
    assert Watch("git", addons, "17.0") in found.watches
    config = configured(root)
    assert [c.name for c in found.matrix.cells] == ["erp"]
    assert polled(config) == [(addons, ["17.0"])]
    # a change there reaches every scheduler watching it
    (scheduler,) = [s for s in config["schedulers"] if s.name == "changes:erp"]
    change = Change("dev", ["a.py"], "fix", repository=addons, branch="17.0", revision="a" * 40)
    assert scheduler._config_kwargs["change_filter"].filter_change(change)


def test_a_watch_only_section_alone_polls(tmp_path: Path) -> None:
    root = master(tmp_path, "[addons]\nwatch = git https://e.com/addons.git 17.0\n")
    config = configured(root)
    assert config["builders"] == []
    assert polled(config) == [("https://e.com/addons.git", ["17.0"])]


def test_a_section_without_buildout_nor_watch_is_ignored(tmp_path: Path) -> None:
    root = master(tmp_path, "[base]\nodoo-addons = sale\n")
    assert messages(loaded(root)) == [
        f"{root}/buildouts/MANIFEST.cfg:1: warning: [base] no 'buildout' option: section ignored"
    ]


# ---------------------------------------------------------------- 7. precedence


def test_the_buildouts_own_branch_takes_precedence(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[hg_buildout_precedence]\nbuildout = hg https://hg.e.com/buildout somebranch b.cfg\n"
        "watch =\n    hg https://hg.e.com/buildout default\n    hg https://hg.e.com/addons default\n",
    )
    found = loaded(root)
    (buildout,) = found.config.buildouts
    assert buildout.all_watches == (
        Watch("hg", "https://hg.e.com/buildout", "somebranch"),
        Watch("hg", "https://hg.e.com/addons", "default"),
    )
    (warning,) = found.diagnostics.warnings
    assert (warning.line, warning.option) == (4, "watch")
    assert "own branch 'somebranch'" in warning.message


# ---------------------------------------------------------------- 8. version filters


def test_local_version_suffixes_and_capability_names_with_plus() -> None:
    special = Version.parse("8.4-special")
    assert special != Version.parse("8.4")
    assert Version.parse("8.4") < special < Version.parse("8.5")
    assert special == Version.parse("8.4-Special")
    assert Version.parse("9.1-devel") < Version.parse("9.1")
    flt = VersionFilter.parse(">= 9.2-devel OR == 8.4-special")
    assert flt.match("8.4-special") and flt.match("9.2") and not flt.match("8.4")
    assert parse_requirement("private-bzr+ssh-access") == (
        "private-bzr+ssh-access",
        VersionFilter(),
    )
    assert parse_requirement("rabbitmq >= 2.8.4-special")[1].match("2.8.4-special")


def test_build_requires_with_suffixes_in_a_manifest(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-requires = private-bzr+ssh-access\n"
        "build-for = postgresql == 8.4-special\n",
    )
    found = loaded(root)
    assert messages(found) == []
    (cell,) = found.matrix.cells
    assert (cell.name, cell.workers) == ("erp-pg8.4-special", ("pg",))


def test_util_steps_stay_argv_lists(tmp_path: Path) -> None:
    root = master(
        tmp_path,
        "[oe]\nbuildout = standalone b.cfg\ndb-steps = pg_remote_copy\n"
        "pg_remote_copy.arguments = --from prod\n"
        "post-buildout-steps = openerpcommand-initialize-tests\n",
    )
    for step in steps_of(configured(root), "oe"):
        if isinstance(step, UtilStep):
            assert isinstance(step.command, list)
