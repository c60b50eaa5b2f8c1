"""The one schema of every manifest and worker option.

Each option is a typed module constant, declared once with its kind, default,
documentation and old names. Code reads a value through its constant
(``buildout.get(schema.DB_STEPS)`` is a ``tuple[str, ...]`` to mypy), so grepping a
constant finds every use of the option. Validation, deprecation warnings, "did you
mean" suggestions and the generated reference docs (``docs/reference/*.md``) read the
tables at the end, so they cannot drift.

An option kept only for old manifests says why in ``ignored``: ``anybox-ci check``
warns where it is set, and the docs say it has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .kinds import (
    ARGV,
    ARGV_LINES,
    BOOL,
    FLOAT,
    FORGE_STATUS,
    INT,
    LINES,
    POSITIVE,
    REQUIREMENTS,
    STR,
    TAGS,
    TIMES,
    WORDS,
    Argv,
    CommitStatus,
    Kind,
    Requirements,
    choice,
)

T = TypeVar("T", covariant=True)


@dataclass(frozen=True)
class Option(Generic[T]):
    """One option: its value is ``kind.parse(text)``, or ``default`` when not given."""

    name: str
    kind: Kind[T]
    default: T
    doc: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    example: str = ""
    #: why the option is accepted but changes nothing; empty when the code reads it
    ignored: str = ""


Words = tuple[str, ...]

# ---------------------------------------------------------------- manifest: source and matrix

BUILDOUT: Option[str | None] = Option(
    "buildout",
    STR,
    None,
    "Where the buildout comes from: `standalone FILE`, `git URL BRANCH FILE [subdir=DIR]`, "
    "`hg URL BRANCH FILE [subdir=DIR]`, `bzr URL FILE [subdir=DIR]`, `gittag URL FILE`, "
    "`hgtag URL FILE` (the tag comes from the `buildout-tag` build property) or "
    "`archive URL FILE` (an artefact made by another build).",
    example="git https://example.com/erp.git main buildout.cfg",
)
INHERIT: Option[str | None] = Option(
    "inherit", STR, None, "Take every option of another section, then override them."
)
WATCH: Option[Words] = Option(
    "watch",
    LINES,
    (),
    "Extra repositories whose changes trigger this buildout: `git URL BRANCH`, "
    "`hg URL BRANCH` or `bzr URL`, one per line. The buildout's own repository is "
    "always watched.",
    example="git https://example.com/addons.git 17.0",
)
AUTO_WATCH: Option[bool] = Option(
    "auto-watch",
    BOOL,
    False,
    "Discover the floating VCS sources the buildout uses (addons lines, mr.developer "
    "sources) during builds, and watch them too.",
)
TREE_STABLE_TIMER: Option[int] = Option(
    "tree-stable-timer",
    INT,
    0,
    "Seconds without new changes before a build starts; 0 starts at once.",
)
BUILD_FOR: Option[Requirements] = Option(
    "build-for",
    REQUIREMENTS,
    (),
    "One builder per capability version that matches, e.g. `postgresql >= 13`. Several "
    "lines give their cartesian product.",
    example="postgresql >= 13 < 17",
)
BUILD_REQUIRES: Option[Requirements] = Option(
    "build-requires",
    REQUIREMENTS,
    (),
    "Capabilities a worker must offer to build this, one filter per line (all must match).",
    example="wkhtmltopdf",
)
BUILD_CATEGORY: Option[Words] = Option(
    "build-category", TAGS, (), "Tags of the builders, shown in the web UI."
)
NIGHTLY: Option[tuple[tuple[int, int], ...]] = Option(
    "nightly",
    TIMES,
    (),
    "Also build every day at these times (HH:MM, master's local time).",
    example="02:30",
)
POLL: Option[bool] = Option(
    "poll", BOOL, False, "Watch this buildout's repositories with pollers too."
)
COMMIT_STATUS: Option[CommitStatus | None] = Option(
    "commit-status",
    FORGE_STATUS,
    None,
    "Post commit statuses to a forge: one per cell, plus `anybox-ci/<section>` for the "
    "whole buildout and revision (for branch protection). The token is the name of a "
    "Buildbot secret, never the token itself.",
    example="github https://api.github.com github-token",
)
DESCRIPTION: Option[str] = Option("description", STR, "", "Shown on the builders' pages.")

# ---------------------------------------------------------------- manifest: the pipeline

POST_DL_STEPS: Option[Words] = Option(
    "post-dl-steps",
    LINES,
    (),
    "Step sets run right after the buildout is fetched, by name.",
)
DB_STEPS: Option[Words] = Option(
    "db-steps",
    LINES,
    ("simple_create",),
    "Database step sets, by name: `simple_create` (from `db_template`) or `restore` "
    "(runs `db-restore-command`).",
)
POST_BUILDOUT_STEPS: Option[Words] = Option(
    "post-buildout-steps",
    LINES,
    ("install-modules-test",),
    "Step sets run once the buildout is ready, by name, in order.",
    example="install-modules-test\nstatic-analysis",
)
DB_TEMPLATE: Option[str] = Option("db_template", STR, "template1", "Template of the test database.")
DB_RESTORE_COMMAND: Option[Argv | None] = Option(
    "db-restore-command",
    ARGV,
    None,
    "Command that fills the empty test database, for the `restore` db step; the database "
    "name is in `$ANYBOX_CI_DB`.",
)
DB_CLEANUP: Option[str] = Option(
    "db-cleanup",
    choice("on-success", "always", "never"),
    "on-success",
    "When to drop the test database at the end: after success only (kept for debugging "
    "after a failure), always, or never.",
)
BUILDOUT_PART: Option[str] = Option(
    "buildout-part", STR, "openerp", "The buildout part that installs Odoo."
)
BUILDOUT_TIMEOUT: Option[int] = Option(
    "buildout-timeout",
    POSITIVE,
    3600,
    "Seconds without output before the buildout step is killed.",
)
TEST_TIMEOUT: Option[int] = Option(
    "test-timeout", POSITIVE, 3600, "Seconds without output before a test step is killed."
)
BUILDOUT_OPTIONS: Option[Words] = Option(
    "buildout-options",
    LINES,
    (),
    "Extra `section:option=value` overrides given to `bin/buildout`.",
)
BOOTSTRAP_VERSION: Option[str] = Option(
    "bootstrap-version",
    STR,
    "zc.buildout>=4,<7",
    "The zc.buildout requirement installed in the per-worker bootstrap virtualenv.",
)
VIRTUALENV: Option[bool] = Option(
    "virtualenv",
    BOOL,
    True,
    "Bootstrap into a virtualenv.",
    ignored="the bootstrap always installs zc.buildout into a per-worker virtualenv",
)
PYTHON: Option[str] = Option(
    "python", STR, "python3", "Interpreter used when no `python` capability is given."
)
GIT_SHALLOW: Option[bool] = Option(
    "git-shallow", BOOL, False, "Keep a shallow clone of git buildouts."
)

# ---------------------------------------------------------------- manifest: Odoo step sets

ODOO_ADDONS: Option[Words] = Option(
    "odoo-addons",
    WORDS,
    ("all",),
    "Odoo modules to install and test (comma or space separated).",
    aliases=("openerp-addons",),
)
START_COMMAND: Option[Argv | None] = Option(
    "start-command",
    ARGV,
    None,
    "Odoo start script; default `bin/start_<buildout-part>`.",
)
TEST_COMMAND: Option[tuple[Argv, ...]] = Option(
    "test-command",
    ARGV_LINES,
    (),
    "For `install-modules-test`: the Odoo test script (default `bin/test_<buildout-part>`)."
    " For the generic `test-command` step set: the commands to run, one per line.",
    example="bin/pytest -x tests",
)
INSTALL_DEMO_DATA: Option[bool] = Option(
    "install.demo-data", BOOL, True, "Install Odoo modules with demo data."
)
INSTALL_AS_UPGRADE: Option[bool] = Option(
    "install-as-upgrade", BOOL, False, "Install through the upgrade script."
)
ODOO_USE_PORT: Option[bool] = Option(
    "odoo.use-port", BOOL, False, "Give Odoo a reserved free HTTP port during tests."
)
_PORT_RANGE_IGNORED = (
    "ports are chosen by the kernel and locked by the worker (no range to scan, no race)"
)
ODOO_HTTP_PORT_MIN: Option[int] = Option(
    "odoo.http-port-min", INT, 6069, "Lowest port tried for Odoo.", ignored=_PORT_RANGE_IGNORED
)
ODOO_HTTP_PORT_MAX: Option[int] = Option(
    "odoo.http-port-max", INT, 7068, "Highest port tried for Odoo.", ignored=_PORT_RANGE_IGNORED
)
ODOO_HTTP_PORT_STEP: Option[int] = Option(
    "odoo.http-port-step",
    POSITIVE,
    5,
    "Step between ports tried.",
    ignored=_PORT_RANGE_IGNORED,
)
UPGRADE_SCRIPT: Option[str | None] = Option(
    "upgrade.script", STR, None, "Script of the `update-modules` step set."
)
UPDATE_LOG_FILE_OPTION: Option[str] = Option(
    "update.log_file_option",
    STR,
    "--log-file",
    "Option of `upgrade.script` naming its log file: `update-modules` passes "
    "`OPTION upgrade.log` and shows that file with the step. Empty: pass nothing.",
)
AUTOCOMMIT_SCRIPT: Option[str | None] = Option(
    "autocommit.script", STR, None, "Script of `autocommit`; default `bin/autocommit_<part>`."
)
AUTOCOMMIT_MESSAGE: Option[str] = Option(
    "autocommit.message", STR, "Commit by buildbot", "Message of the autocommit commits."
)

# ---------------------------------------------------------------- manifest: generic step sets

NOSE_TESTS: Option[Words] = Option(
    "nose.tests", WORDS, (), "Arguments giving the nose tests to run."
)
NOSE_COVERAGE: Option[bool] = Option("nose.coverage", BOOL, False, "Run nose with coverage.")
NOSE_COVER_OPTIONS: Option[Words] = Option(
    "nose.cover-options",
    WORDS,
    ("--cover-erase", "--cover-branches"),
    "Extra coverage options.",
)
NOSE_PROFILE: Option[bool] = Option(
    "nose.profile", BOOL, False, "Run nose with its profiler plugin (`--with-profile`)."
)
NOSE_CPROFILE: Option[bool] = Option(
    "nose.cprofile", BOOL, False, "Run nose with the cProfile plugin (`--with-cprofile`)."
)
NOSE_PROFILE_RESTRICT: Option[str | None] = Option(
    "nose.profile-restrict",
    STR,
    None,
    "Restriction of the profiler output (`--profile-restrict=VALUE`).",
)
NOSE_UPLOAD_PATH: Option[str | None] = Option(
    "nose.upload-path",
    STR,
    None,
    "Master folder receiving nose's HTML coverage report (`--cover-html`, coverage turned on).",
)
NOSE_UPLOAD_URL: Option[str | None] = Option(
    "nose.upload-url",
    STR,
    None,
    "URL under which `nose.upload-path` is served, linked from the build.",
)
PYTEST_ARGS: Option[Words] = Option(
    "pytest-args", WORDS, (), "Arguments of `bin/pytest` for the `pytest` step set."
)
STATIC_ANALYSIS_COMMAND: Option[tuple[Argv, ...]] = Option(
    "static-analysis-command",
    ARGV_LINES,
    (("bin/flake8",),),
    "Commands of the `static-analysis` step set.",
)
STATIC_ANALYSIS_FLAKE_DIRECTORIES: Option[Words] = Option(
    "static-analysis.flake-directories", WORDS, (), "Directories given to flake8."
)
STATIC_ANALYSIS_MAX_LINE_LENGTH: Option[int] = Option(
    "static-analysis.max-line-length", POSITIVE, 79, "Max line length for flake8."
)
STATIC_ANALYSIS_PART: Option[str | None] = Option(
    "static-analysis.part",
    STR,
    None,
    "Buildout part with the tools, installed (`bin/buildout install PART`) before the "
    "`static-analysis` commands run.",
)
DOC_COMMAND: Option[tuple[Argv, ...]] = Option(
    "doc-command", ARGV_LINES, (), "Commands of the `doc` step set (default: sphinx)."
)
DOC_UPLOAD_DIR: Option[str | None] = Option(
    "doc.upload-dir", STR, None, "Master folder the built docs are uploaded to."
)
DOC_UPLOAD_ROOT: Option[str | None] = Option(
    "doc.upload-root", STR, None, "Master folder that a relative `doc.upload-dir` is in."
)
DOC_BASE_URL: Option[str | None] = Option(
    "doc.base-url",
    STR,
    None,
    "URL under which uploaded docs are served, linked from the build (`doc.version` appended).",
)
DOC_VERSION: Option[str | None] = Option(
    "doc.version",
    STR,
    None,
    "Subfolder of `doc.upload-dir` (and of `doc.base-url`) receiving the docs.",
)
DOC_SPHINX_SOURCEDIR: Option[str] = Option(
    "doc.sphinx-sourcedir", STR, "doc", "Sphinx source folder."
)
DOC_SPHINX_BIN: Option[str] = Option(
    "doc.sphinx-bin", STR, "bin/sphinx-build", "Sphinx executable."
)
DOC_SPHINX_MODE: Option[str] = Option(
    "doc.sphinx-mode",
    choice("incremental", "full"),
    "incremental",
    "`full` rebuilds every page (`sphinx-build -E -a`); `incremental` reuses the last build.",
)
DOC_SPHINX_BUILDDIR: Option[str] = Option(
    "doc.sphinx-builddir",
    STR,
    "doc-html",
    "Folder the docs are built into (by sphinx) and uploaded from.",
)
FUNCTIONAL_SERVER_COMMAND: Option[Argv | None] = Option(
    "functional.server-command",
    ARGV,
    None,
    "Server started for the `functional` step set; `{port}` in any argument becomes the "
    "reserved port.",
)
FUNCTIONAL_WAIT_URL: Option[str | None] = Option(
    "functional.wait-url", STR, None, "URL polled until the server answers (`{port}` allowed)."
)
FUNCTIONAL_COMMANDS: Option[tuple[Argv, ...]] = Option(
    "functional.commands", ARGV_LINES, (), "Commands run while the server is up."
)
FUNCTIONAL_TIMEOUT: Option[int] = Option(
    "functional.timeout", POSITIVE, 120, "Seconds to wait for the server."
)
PACKAGING_UPLOAD_DIR: Option[str | None] = Option(
    "packaging.upload-dir", STR, None, "Master folder receiving release tarballs."
)
PACKAGING_BASE_URL: Option[str | None] = Option(
    "packaging.base-url",
    STR,
    None,
    "URL under which uploaded tarballs are served, linked from the build.",
)
PACKAGING_PREFIX: Option[str | None] = Option(
    "packaging.prefix", STR, None, "Name prefix of release tarballs."
)
PACKAGING_PARTS: Option[Words] = Option(
    "packaging.parts",
    WORDS,
    (),
    "Buildout parts frozen in a release.",
    ignored="a release tarball holds the whole built buildout",
)

# ---------------------------------------------------------------- workers

PASSWORD: Option[str | None] = Option(
    "password",
    STR,
    None,
    "The worker's password: a literal, or `secret:NAME` for a Buildbot secret (recommended).",
    aliases=("passwd",),
    required=True,
    example="secret:worker-ci1",
)
CAPABILITY: Option[Words] = Option(
    "capability",
    LINES,
    (),
    "What the worker offers, one per line: `NAME [VERSION [key=value ...]]`. For "
    "postgresql the keys are `port`, `host`, `user`, `bin`, `lib` and `password` (a secret "
    "name).",
    example="postgresql 15 port=5433 bin=/usr/lib/postgresql/15/bin",
)
MAX_BUILDS: Option[int | None] = Option(
    "max_builds", POSITIVE, None, "How many builds may run on this worker at once."
)
NOTIFY_ON_MISSING: Option[Words] = Option(
    "notify_on_missing", WORDS, (), "Email addresses told when the worker goes missing."
)
PRIORITY: Option[float] = Option(
    "priority",
    FLOAT,
    0.0,
    "Among candidate workers, the highest priority gets the build.",
    aliases=("slave_priority", "worker_priority"),
)
BUILD_ONLY_IF_REQUIRES: Option[Words] = Option(
    "build-only-if-requires",
    WORDS,
    (),
    "Capability names: this worker only takes buildouts that require one of them.",
)
DB_PREFIX: Option[str] = Option(
    "db_prefix", STR, "anybox", "Prefix of the test databases on this worker."
)

# ---------------------------------------------------------------- tables


def _table(*options: Option[Any]) -> dict[str, Option[Any]]:
    return {o.name: o for o in options}


MANIFEST_OPTIONS: dict[str, Option[Any]] = _table(
    BUILDOUT,
    INHERIT,
    WATCH,
    AUTO_WATCH,
    TREE_STABLE_TIMER,
    BUILD_FOR,
    BUILD_REQUIRES,
    BUILD_CATEGORY,
    NIGHTLY,
    POLL,
    COMMIT_STATUS,
    DESCRIPTION,
    POST_DL_STEPS,
    DB_STEPS,
    POST_BUILDOUT_STEPS,
    DB_TEMPLATE,
    DB_RESTORE_COMMAND,
    DB_CLEANUP,
    BUILDOUT_PART,
    BUILDOUT_TIMEOUT,
    TEST_TIMEOUT,
    BUILDOUT_OPTIONS,
    BOOTSTRAP_VERSION,
    VIRTUALENV,
    PYTHON,
    GIT_SHALLOW,
    ODOO_ADDONS,
    START_COMMAND,
    TEST_COMMAND,
    INSTALL_DEMO_DATA,
    INSTALL_AS_UPGRADE,
    ODOO_USE_PORT,
    ODOO_HTTP_PORT_MIN,
    ODOO_HTTP_PORT_MAX,
    ODOO_HTTP_PORT_STEP,
    UPGRADE_SCRIPT,
    UPDATE_LOG_FILE_OPTION,
    AUTOCOMMIT_SCRIPT,
    AUTOCOMMIT_MESSAGE,
    NOSE_TESTS,
    NOSE_COVERAGE,
    NOSE_COVER_OPTIONS,
    NOSE_PROFILE,
    NOSE_CPROFILE,
    NOSE_PROFILE_RESTRICT,
    NOSE_UPLOAD_PATH,
    NOSE_UPLOAD_URL,
    PYTEST_ARGS,
    STATIC_ANALYSIS_COMMAND,
    STATIC_ANALYSIS_FLAKE_DIRECTORIES,
    STATIC_ANALYSIS_MAX_LINE_LENGTH,
    STATIC_ANALYSIS_PART,
    DOC_COMMAND,
    DOC_UPLOAD_DIR,
    DOC_UPLOAD_ROOT,
    DOC_BASE_URL,
    DOC_VERSION,
    DOC_SPHINX_SOURCEDIR,
    DOC_SPHINX_BIN,
    DOC_SPHINX_MODE,
    DOC_SPHINX_BUILDDIR,
    FUNCTIONAL_SERVER_COMMAND,
    FUNCTIONAL_WAIT_URL,
    FUNCTIONAL_COMMANDS,
    FUNCTIONAL_TIMEOUT,
    PACKAGING_UPLOAD_DIR,
    PACKAGING_BASE_URL,
    PACKAGING_PREFIX,
    PACKAGING_PARTS,
)

WORKER_OPTIONS: dict[str, Option[Any]] = _table(
    PASSWORD,
    CAPABILITY,
    MAX_BUILDS,
    NOTIFY_ON_MISSING,
    PRIORITY,
    BUILD_ONLY_IF_REQUIRES,
    DB_PREFIX,
)


def constant_name(option: Option[Any]) -> str:
    """The module constant of an option: ``odoo.use-port`` is ``ODOO_USE_PORT``."""
    return option.name.upper().replace("-", "_").replace(".", "_")
