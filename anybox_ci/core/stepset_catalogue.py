"""The built-in step sets by name, and what each needs, without Buildbot.

``post-dl-steps``, ``db-steps`` and ``post-buildout-steps`` name step sets. This catalogue
says which names exist (old names included) and which options a step set cannot run
without, so ``anybox-ci check`` reports a missing option at the line naming the step set,
before anything is rendered. :mod:`anybox_ci.render.stepsets` implements each entry;
master.cfg may add entries of its own through the render registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import schema
from .schema import Option

#: the options naming step sets, in pipeline order; a step set's kind is one of them
KINDS: tuple[Option[tuple[str, ...]], ...] = (
    schema.POST_DL_STEPS,
    schema.DB_STEPS,
    schema.POST_BUILDOUT_STEPS,
)
_KIND_BY_NAME = {kind.name: kind for kind in KINDS}


def kind_option(kind: str | Option[tuple[str, ...]]) -> Option[tuple[str, ...]]:
    """The option a step-set kind is (``"db-steps"`` is :data:`schema.DB_STEPS`)."""
    name = kind if isinstance(kind, str) else kind.name
    if name not in _KIND_BY_NAME:
        raise ValueError(
            f"unknown step set kind {name!r}; expected one of {', '.join(_KIND_BY_NAME)}"
        )
    return _KIND_BY_NAME[name]


@dataclass(frozen=True)
class StepSetSpec:
    """One step set: where it may be named, its names, what it needs, what it does."""

    kind: Option[tuple[str, ...]]
    name: str
    doc: str
    #: old names, accepted with a deprecation warning
    aliases: tuple[str, ...] = ()
    #: options that must have a non-empty value when the step set is used
    requires: tuple[Option[Any], ...] = ()
    #: why an ancestor step set is accepted but does nothing (warned where it is named)
    ignored: str = ""
    #: options of which at least one must have a value when the step set is used
    requires_any: tuple[Option[Any], ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """The step sets a configuration may name, per kind."""

    specs: tuple[StepSetSpec, ...]

    def names(self, kind: Option[tuple[str, ...]]) -> Mapping[str, StepSetSpec]:
        """Every accepted name of this kind (old names included) -> its step set."""
        found: dict[str, StepSetSpec] = {}
        for spec in self.specs:
            if spec.kind.name == kind.name:
                found[spec.name] = spec
                found.update(dict.fromkeys(spec.aliases, spec))
        return found


def _spec(
    kind: Option[tuple[str, ...]],
    name: str,
    doc: str,
    *aliases: str,
    requires: tuple[Option[Any], ...] = (),
    ignored: str = "",
    requires_any: tuple[Option[Any], ...] = (),
) -> StepSetSpec:
    return StepSetSpec(kind, name, doc, aliases, requires, ignored, requires_any)


_DL, _DB, _POST = schema.POST_DL_STEPS, schema.DB_STEPS, schema.POST_BUILDOUT_STEPS

NOOP = _spec(_DL, "noop", "Nothing (the ancestor's default post-download step set).")
RELEASE_PACKAGING = _spec(
    _DL,
    "packaging",
    "Nothing: the ancestor prepared its release here; the `packaging` post-buildout step "
    "set makes the release tarball.",
    ignored="the release tarball is made from the built buildout by the `packaging` "
    "post-buildout step set (name it in post-buildout-steps)",
)
SIMPLE_CREATE = _spec(
    _DB,
    "simple_create",
    "Drop and create the cell's test database from `db_template`.",
    "simple-create",
)
RESTORE = _spec(
    _DB,
    "restore",
    "Restore a dump (`restore.dump` on the worker, `restore.master-dump` on the master or "
    "`restore.url`) into the test database, cached as a template per dump and PostgreSQL "
    "server, neutralised (`restore.neutralize`); without a dump, create an empty test "
    "database and fill it with `db-restore-command`.",
    requires_any=(
        schema.RESTORE_DUMP,
        schema.RESTORE_MASTER_DUMP,
        schema.RESTORE_URL,
        schema.DB_RESTORE_COMMAND,
    ),
)
PG_REMOTE_COPY = _spec(
    _DB,
    "pg_remote_copy",
    "Drop the test database, then run `pg_remote_copy.executable` to create it as a copy "
    "(`pg_remote_copy.db_option` NAME `pg_remote_copy.arguments`).",
    requires=(schema.PG_REMOTE_COPY_ARGUMENTS,),
)
INSTALL_MODULES_TEST = _spec(
    _POST,
    "install-modules-test",
    "Install `odoo-addons` with their tests (`bin/test_<part>`); the log analyser names failures.",
    "standard",
    "test-openerp",
    "test-odoo",
)
INSTALL_MODULES = _spec(
    _POST,
    "install-modules",
    "Install `odoo-addons` without tests, optionally through the upgrade script.",
)
UPDATE_MODULES = _spec(
    _POST,
    "update-modules",
    "Update `odoo-addons` (`-u`), or run `upgrade.script`.",
    "update-odoo",
    "update-openerp",
)
OPENERP_COMMAND_TESTS = _spec(
    _POST,
    "openerpcommand-initialize-tests",
    "Install `odoo-addons` (all: `--all-modules`) with their tests through "
    "`bin/<buildout-part>_command initialize --tests` (OpenERP 7 and openerp-command).",
)
TEST_COMMAND = _spec(
    _POST,
    "test-command",
    "Run each `test-command` line, for any buildout (Plone, plain Python...).",
    requires=(schema.TEST_COMMAND,),
)
PYTEST = _spec(_POST, "pytest", "Run `bin/pytest` with `pytest-args`.")
NOSE = _spec(
    _POST,
    "nose",
    "Run `bin/nosetests` on `nose.tests`, with coverage and profilers if asked.",
    "install-modules-nose",
)
STATIC_ANALYSIS = _spec(
    _POST,
    "static-analysis",
    "Run `static-analysis-command` (flake8 on `static-analysis.flake-directories` by default).",
    requires=(schema.STATIC_ANALYSIS_COMMAND,),
)
DOC = _spec(
    _POST,
    "doc",
    "Build the docs (`doc-command`, or sphinx) and upload them to `doc.upload-dir`.",
)
FUNCTIONAL = _spec(
    _POST,
    "functional",
    "Install `functional.parts`, start `functional.server-command` (default: Odoo) on a "
    "reserved port, wait until it answers, run `functional.commands`, stop it.",
    requires=(schema.FUNCTIONAL_COMMANDS,),
)
PACKAGING = _spec(
    _POST,
    "packaging",
    "Freeze the built buildout into a self-contained archive `PREFIX-VERSION.tar.gz` (its "
    "eggs, its develop sources and `anybox-ci-release.cfg`, which builds them with no package "
    "index), upload it to `packaging.upload-dir` with its SHA-256 (`NAME.sha256` beside it, "
    "property `archive_sha256`), then trigger the `archive` buildouts whose `archive.from` "
    "names this section.",
)
UPGRADE_TEST = _spec(
    _POST,
    "upgrade-test",
    "Check out the last release (the nearest version tag, or `upgrade-test.from`) beside the "
    "build, run its buildout, install `odoo-addons` with it into the test database (unless a "
    "db step filled it, e.g. a restored dump), then update them with the code under test "
    "(`-u`) and run their tests; a failing migration names its module.",
)
AUTOCOMMIT = _spec(
    _POST,
    "autocommit",
    "Run the recipe's autocommit script, which commits and pushes what the build froze.",
)

BUILTIN = Catalogue(
    (
        NOOP,
        RELEASE_PACKAGING,
        SIMPLE_CREATE,
        RESTORE,
        PG_REMOTE_COPY,
        INSTALL_MODULES_TEST,
        INSTALL_MODULES,
        UPDATE_MODULES,
        OPENERP_COMMAND_TESTS,
        TEST_COMMAND,
        PYTEST,
        NOSE,
        STATIC_ANALYSIS,
        DOC,
        FUNCTIONAL,
        PACKAGING,
        UPGRADE_TEST,
        AUTOCOMMIT,
    )
)

#: every step-set name the ancestor accepted, per kind (both branches; aliases included)
ANCESTOR_STEP_SETS: dict[str, tuple[str, ...]] = {
    schema.POST_DL_STEPS.name: ("noop", "packaging"),
    schema.DB_STEPS.name: ("simple_create", "simple-create", "pg_remote_copy"),
    schema.POST_BUILDOUT_STEPS.name: (
        "install-modules-test",
        "install-modules",
        "test-openerp",
        "test-odoo",
        "standard",
        "update-openerp",
        "update-odoo",
        "openerpcommand-initialize-tests",
        "nose",
        "functional",
        "static-analysis",
        "doc",
        "packaging",
        "autocommit",
    ),
}
