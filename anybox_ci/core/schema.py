"""The one schema of every manifest and worker option.

Each option is a typed module constant, declared once with its kind, default,
documentation and old names. Code reads a value through its constant
(``buildout.get(schema.DB_STEPS)`` is a ``tuple[str, ...]`` to mypy), so grepping a
constant finds every use of the option. Validation, deprecation warnings, "did you
mean" suggestions and the generated reference docs (``docs/reference/*.md``) read the
tables at the end, so they cannot drift.

An option kept only for old manifests says why in ``ignored``: ``anybox-ci check``
warns where it is set, and the docs say it has no effect. An option of the ancestor that
no longer exists at all is a :class:`Removed` entry: accepted with the same warning, and
dropped. :data:`ANCESTOR_MANIFEST_OPTIONS` and :data:`ANCESTOR_WORKER_OPTIONS` list what the
ancestor read, for the generated migration tables and the tests in its dialect.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .kinds import (
    ARGV,
    ARGV_LINES,
    BOOL,
    BUILDBOT_TEXT,
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

#: the release from which the ancestor's dropped options are ignored
IGNORED_SINCE = "anybox_ci 0.1"


def ignored_reason(why: str) -> str:
    """Why an option of old manifests does nothing: ``ignored since ...: WHY``."""
    return f"ignored since {IGNORED_SINCE}: {why}"


def ignored_message(why: str) -> str:
    """The warning of an option that is accepted for old manifests but does nothing."""
    return ignored_reason(why) + "; remove it (anybox-ci migrate does)"


@dataclass(frozen=True)
class Removed:
    """An ancestor option that no longer exists: accepted with a warning, then dropped."""

    name: str
    why: str
    #: ``name`` is a prefix: every option starting with it (``bootstrap-``)
    prefix: bool = False

    def matches(self, key: str) -> bool:
        return key.startswith(self.name) if self.prefix else key == self.name


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
    "Database step sets, by name: `simple_create` (from `db_template`), `restore` (a dump: "
    "`restore.dump` or `restore.url`; else `db-restore-command`) or `pg_remote_copy`.",
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
    "Command that fills the empty test database, for the `restore` db step when neither "
    "`restore.dump` nor `restore.url` is set; the database name is in `$ANYBOX_CI_DB`.",
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
BUILDOUT_PIP_EXISTS_ACTION: Option[str] = Option(
    "buildout.pip-exists-action",
    choice("s", "i", "w", "b", "a"),
    "s",
    "`PIP_EXISTS_ACTION` of the buildout step: what pip does when a checkout it would "
    "make already exists: (s)witch, (i)gnore, (w)ipe, (b)ackup or (a)bort.",
    example="w",
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
ODOO_TEST_TAGS: Option[str] = Option(
    "odoo.test-tags",
    STR,
    "",
    "Odoo's `--test-tags` for `install-modules-test`, to run a chosen subset of the tests "
    "(Odoo 12 and later); empty runs every test of the installed modules.",
    example="/anybox_ci_sample:TestSample",
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
    BUILDBOT_TEXT,
    None,
    "Master folder receiving nose's HTML coverage report (`--cover-html`, coverage turned "
    "on). Build properties are allowed: `%(prop:buildnumber)s` (or the ancestor's "
    "`$(buildnumber)s`).",
    example="/srv/coverage/%(prop:buildername)s",
)
NOSE_UPLOAD_URL: Option[str | None] = Option(
    "nose.upload-url",
    BUILDBOT_TEXT,
    None,
    "URL under which `nose.upload-path` is served, linked from the build; build properties "
    "as in `nose.upload-path`.",
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
    BUILDBOT_TEXT,
    None,
    "Subfolder of `doc.upload-dir` (and of `doc.base-url`) receiving the docs. Build "
    "properties are allowed: `%(prop:buildout-tag:-current)s` (or the ancestor's "
    "`$(buildout-tag:-current)s`).",
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
    "reserved port. Default: the Odoo start script (`start-command`, else "
    "`bin/start_<buildout-part>`) with `--http-port={port}`.",
)
FUNCTIONAL_WAIT_URL: Option[str | None] = Option(
    "functional.wait-url", STR, None, "URL polled until the server answers (`{port}` allowed)."
)
FUNCTIONAL_COMMANDS: Option[tuple[Argv, ...]] = Option(
    "functional.commands",
    ARGV_LINES,
    (),
    "Commands run while the server is up, one per line; `{port}` in an argument becomes the "
    "server's port (also in `$ANYBOX_CI_PORT`), and the database is `$ANYBOX_CI_DB`.",
    example="bin/selenium-tests --port {port}",
)
FUNCTIONAL_PARTS: Option[Words] = Option(
    "functional.parts",
    WORDS,
    (),
    "Buildout parts installed (`bin/buildout install PART...`) before the `functional` "
    "step set starts the server: the tools its commands need.",
)
FUNCTIONAL_TIMEOUT: Option[int] = Option(
    "functional.timeout",
    POSITIVE,
    120,
    "Seconds to wait for the server to answer (polled, never a fixed sleep).",
    aliases=("functional.wait",),
)
PACKAGING_UPLOAD_DIR: Option[str | None] = Option(
    "packaging.upload-dir",
    STR,
    None,
    "Master folder receiving release tarballs; relative to `packaging.root-dir` when that is set.",
)
PACKAGING_ROOT_DIR: Option[str | None] = Option(
    "packaging.root-dir",
    STR,
    None,
    "Master folder that a relative `packaging.upload-dir` is in, typically set once in "
    "`[DEFAULT]` for every buildout that makes releases.",
    example="/srv/releases",
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

# ---------------------------------------------------------------- manifest: releases

#: the default of ``release.tag-pattern``; the same as build_utils/version.py's
DEFAULT_TAG_PATTERN = r"^v?(\d+(\.\d+)*)$"


def _regex(text: str) -> str:
    value = text.strip()
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if compiled.search(""):
        raise ValueError("the pattern matches an empty tag name: anchor it, e.g. ^v?(\\d+)")
    return value


REGEX: Kind[str] = Kind("regular expression", _regex)
#: a Buildbot secret name, or a tag/revision to check out: a plain token, never an option
_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+@-]{0,199}\Z")


def _token(what: str) -> Kind[str]:
    def parse(text: str) -> str:
        value = text.strip()
        if value and (not _TOKEN_RE.match(value) or ".." in value):
            raise ValueError(f"expected {what} (letters, digits, '.', '_', '/', '+', '@', '-')")
        return value

    return Kind(what, parse)


def _sha256(text: str) -> str:
    value = text.strip().lower()
    if value and not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("expected 64 hexadecimal digits")
    return value


def _restore_url(text: str) -> str:
    value = text.strip()
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https", "file"):
        raise ValueError(f"expected an http(s):// or file:// URL, got scheme {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials do not belong in the URL: name a secret in restore.auth-secret"
        )
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        raise ValueError("the URL holds spaces or control characters")
    return value


_MAP_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,29}\Z")


def _restore_map(text: str) -> tuple[tuple[str, str], ...]:
    result: list[tuple[str, str]] = []
    for line in _lines_of(text):
        name, sep, member = (part.strip() for part in line.partition("="))
        if not sep or not name or not member:
            raise ValueError(f"expected NAME = MEMBER, got {line!r}")
        if not _MAP_NAME_RE.match(name):
            raise ValueError(f"database name suffix {name!r}: lower-case letters, digits, '_'")
        if any(name == seen for seen, _ in result):
            raise ValueError(f"database {name!r} given twice")
        result.append((name, member.removeprefix("./")))
    return tuple(result)


def _lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


RESTORE_MAP_KIND: Kind[tuple[tuple[str, str], ...]] = Kind("NAME = MEMBER lines", _restore_map)


def _master_dump(text: str) -> str:
    """A path inside ``restore.master-dir``: relative, without ``..`` (links are resolved and
    checked again on the master when the build runs)."""
    value = text.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value) or "\\" in value:
        raise ValueError("the path holds control characters or backslashes")
    if value.startswith(("/", "~")):
        raise ValueError("expected a path relative to restore.master-dir, not an absolute one")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("'..' may not leave restore.master-dir")
    if not parts:
        raise ValueError("expected a file name inside restore.master-dir")
    return "/".join(parts)


MASTER_DUMP_KIND: Kind[str] = Kind("a path inside restore.master-dir", _master_dump)

RELEASE_TAG_PATTERN: Option[str] = Option(
    "release.tag-pattern",
    REGEX,
    DEFAULT_TAG_PATTERN,
    "Which tags are versions (searched with Python's `re.search`): the version is the group "
    "named `version`, else group 1, else the match. Every build of a git or hg buildout "
    "gets `release_version` = the nearest matching tag plus the commits since it (`1.4.7`: "
    "7 commits after `1.4`; `0.0.N` without a tag); it names release tarballs.",
    example=r"^myproject-(?P<version>\d+\.\d+)$",
)
RESTORE_DUMP: Option[str | None] = Option(
    "restore.dump",
    STR,
    None,
    "For `db-steps = restore`: the dump file on the worker (absolute, or relative to the "
    "buildout folder): plain SQL, `pg_dump -Fc`, gzip/bzip2/xz compressed or not, or a tar "
    "of such dumps (see `restore.member`).",
    example="/srv/dumps/prod-latest.dump",
)
RESTORE_URL: Option[str | None] = Option(
    "restore.url",
    Kind("URL", _restore_url),
    None,
    "For `db-steps = restore`: the dump's http(s):// or file:// URL, downloaded by the "
    "worker when its template is not cached yet (with `restore.sha256`, a cache hit "
    "downloads nothing).",
    example="https://backups.example.com/erp/prod-latest.dump",
)
RESTORE_MASTER_DUMP: Option[str | None] = Option(
    "restore.master-dump",
    MASTER_DUMP_KIND,
    None,
    "For `db-steps = restore`: the dump file on the master, relative to "
    "`restore.master-dir` (no `..`, no absolute path; symbolic links may not lead out of "
    "it). The master checks and hashes it, each cell downloads it over its worker's "
    "connection, and a missing file fails the cell.",
    example="erp/prod-latest.sql.gz",
)
RESTORE_MASTER_DIR: Option[str] = Option(
    "restore.master-dir",
    STR,
    "dumps",
    "The master folder that `restore.master-dump` is in (relative paths: the master's "
    "basedir), typically set once in `[DEFAULT]`.",
    example="/srv/backups",
)
RESTORE_AUTH_SECRET: Option[str | None] = Option(
    "restore.auth-secret",
    _token("a Buildbot secret name"),
    None,
    "Name of the Buildbot secret holding the credentials of `restore.url`: `user:password` "
    "(HTTP Basic) or a token (Bearer). It reaches the restore script in its environment, "
    "never in argv or logs.",
    example="prod-dumps",
)
RESTORE_SHA256: Option[str | None] = Option(
    "restore.sha256",
    Kind("SHA-256", _sha256),
    None,
    "The dump's expected SHA-256: a mismatch fails the restore, and a cached template is "
    "used without reading (or downloading) the dump again.",
)
RESTORE_CACHE: Option[bool] = Option(
    "restore.cache",
    BOOL,
    True,
    "Keep each restored dump as a template database per (dump checksum, PostgreSQL server): "
    "later builds copy it in about a second; a changed dump replaces it.",
)
RESTORE_SPARE: Option[bool] = Option(
    "restore.spare",
    BOOL,
    False,
    "Keep one more copy of the template ready, made in the background after the restore "
    "step: the next build only renames it (one more copy on disk, no copy in the step).",
)
RESTORE_MEMBER: Option[str | None] = Option(
    "restore.member",
    STR,
    None,
    "When the dump is a tar of dumps: the member restored into the test database.",
    example="erp.dump",
)
RESTORE_MAP: Option[tuple[tuple[str, str], ...]] = Option(
    "restore.map",
    RESTORE_MAP_KIND,
    (),
    "When the dump is a tar of dumps: more databases restored beside the test database, one "
    "`NAME = MEMBER` per line; each is `<test database>_NAME`, dropped with it.",
    example="dms = dms.sql.gz",
)
RESTORE_NEUTRALIZE: Option[str] = Option(
    "restore.neutralize",
    choice("odoo", "sql", "none"),
    "odoo",
    "How a restored database is made harmless before it is cached or tested: `odoo` runs "
    "`neutralize` of the Odoo start script (Odoo 16 and later), `sql` the built-in SQL "
    "(outgoing and incoming mail servers and crons off; older Odoo), `none` nothing.",
)
UPGRADE_TEST_FROM: Option[str] = Option(
    "upgrade-test.from",
    _token("a tag or revision"),
    "",
    "For `upgrade-test`: the tag or revision of the release to upgrade from; empty: the "
    "nearest version tag (`release.tag-pattern`) of the revision under test.",
    example="v1.4",
)
ARCHIVE_FROM: Option[str] = Option(
    "archive.from",
    _token("a buildout section name"),
    "",
    "For an `archive` buildout: the section whose `packaging` step set makes the archive. "
    "Each of its release builds uploads the archive, then triggers this buildout's cells with "
    "the archive's name and SHA-256 (properties `archive_name`, `archive_sha256`); each cell "
    "takes that exact archive from the master, checks its hash, builds it with no package "
    "index (`anybox-ci-release.cfg`, the file to name in `buildout`) and runs its step sets. "
    "A build not triggered (forced) fetches the URL of the `buildout` line.",
    example="erp-release",
)

# ---------------------------------------------------------------- manifest: domains and stacks

#: the prefix of a domain section's name: ``[domain:erp]``
DOMAIN_SECTION_PREFIX = "domain:"
#: the step sets ``acceptance-steps`` may name
ACCEPTANCE_MEMBERS = "members"
ACCEPTANCE_INSTALL_TEST = "install-test"

MEMBERS: Option[Words] = Option(
    "members",
    WORDS,
    (),
    "In a `[domain:NAME]` section: the buildout sections whose green builds become the "
    "domain's *unstable* candidates, and which a stack pins together (see docs/stacks.md).",
    required=True,
    example="erp-core erp-web",
)
ACCEPTANCE_STEPS: Option[Words] = Option(
    "acceptance-steps",
    LINES,
    ("members",),
    "In a `[domain:NAME]` section: what the acceptance builder `NAME-acceptance` runs on a "
    "freshly frozen stack, in order: `members` (every member's builders, at the stack's "
    "pinned revisions) and `install-test` (one build per `install-test.targets` worker). "
    "The stack is promoted to *stable* only when every part passes.",
    example="members\ninstall-test",
)
INSTALL_TEST_TARGETS: Option[Requirements] = Option(
    "install-test.targets",
    REQUIREMENTS,
    (),
    "In a `[domain:NAME]` section, for `install-test`: capability filters (all must match, "
    "one per line); one install build runs on every worker that matches.",
    example="debian >= 12",
)
INSTALL_TEST_COMMAND: Option[Argv | None] = Option(
    "install-test.command",
    ARGV,
    None,
    "In a `[domain:NAME]` section, for `install-test`: the check run on each target in the "
    "folder where the stack was installed (`stack.json` and one folder per member); the "
    "target's build is green when it exits 0.",
    example="python3 erp-core/check_install.py",
)
INSTALL_TEST_SERVER_COMMAND: Option[Argv | None] = Option(
    "install-test.server-command",
    ARGV,
    None,
    "In a `[domain:NAME]` section, for `install-test`: a service started (on a free port, "
    "`{port}`) before `install-test.command`; its readiness is polled, never slept on.",
    example="python3 -m http.server {port}",
)
INSTALL_TEST_WAIT_URL: Option[str | None] = Option(
    "install-test.wait-url",
    STR,
    None,
    "In a `[domain:NAME]` section: the URL polled until the service answers "
    "(`{port}` substituted); without it, a TCP connection to the port.",
    example="http://127.0.0.1:{port}/",
)
INSTALL_TEST_TIMEOUT: Option[int] = Option(
    "install-test.timeout",
    POSITIVE,
    60,
    "In a `[domain:NAME]` section: seconds the service has to become ready; after that "
    "the target fails with a message saying so.",
)

# ---------------------------------------------------------------- manifest: pg_remote_copy

PG_REMOTE_COPY_ARGUMENTS: Option[Argv | None] = Option(
    "pg_remote_copy.arguments",
    ARGV,
    None,
    "Arguments of the `pg_remote_copy` db step set's command, after the database name.",
    example="--source prod-db --dump latest",
)
PG_REMOTE_COPY_EXECUTABLE: Option[str] = Option(
    "pg_remote_copy.executable",
    STR,
    "pg_remote_copy",
    "Command of the `pg_remote_copy` db step set: a site script that creates the test "
    "database from a copy of another one.",
)
PG_REMOTE_COPY_DB_OPTION: Option[str] = Option(
    "pg_remote_copy.db_option",
    STR,
    "--copied_db_name",
    "Option giving the test database's name to `pg_remote_copy.executable`; empty (or "
    "`None`, as the ancestor wrote it) passes the name as a positional argument.",
)
PG_REMOTE_COPY_TIMEOUT: Option[int | None] = Option(
    "pg_remote_copy.timeout",
    POSITIVE,
    None,
    "Seconds without output before the copy is killed; default `test-timeout`.",
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
    "Capability names: this worker only takes buildouts that require every one of them "
    "(in `build-requires` or `build-for`): keep a rare resource for the builds that need it.",
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
    BUILDOUT_PIP_EXISTS_ACTION,
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
    ODOO_TEST_TAGS,
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
    FUNCTIONAL_PARTS,
    FUNCTIONAL_TIMEOUT,
    PACKAGING_UPLOAD_DIR,
    PACKAGING_ROOT_DIR,
    PACKAGING_BASE_URL,
    PACKAGING_PREFIX,
    PACKAGING_PARTS,
    ARCHIVE_FROM,
    RELEASE_TAG_PATTERN,
    RESTORE_DUMP,
    RESTORE_URL,
    RESTORE_MASTER_DUMP,
    RESTORE_MASTER_DIR,
    RESTORE_AUTH_SECRET,
    RESTORE_SHA256,
    RESTORE_CACHE,
    RESTORE_SPARE,
    RESTORE_MEMBER,
    RESTORE_MAP,
    RESTORE_NEUTRALIZE,
    UPGRADE_TEST_FROM,
    MEMBERS,
    ACCEPTANCE_STEPS,
    INSTALL_TEST_TARGETS,
    INSTALL_TEST_COMMAND,
    INSTALL_TEST_SERVER_COMMAND,
    INSTALL_TEST_WAIT_URL,
    INSTALL_TEST_TIMEOUT,
    PG_REMOTE_COPY_ARGUMENTS,
    PG_REMOTE_COPY_EXECUTABLE,
    PG_REMOTE_COPY_DB_OPTION,
    PG_REMOTE_COPY_TIMEOUT,
)

#: what a ``[domain:NAME]`` section reads (also listed in the manifest reference)
DOMAIN_OPTIONS: dict[str, Option[Any]] = _table(
    MEMBERS,
    ACCEPTANCE_STEPS,
    INSTALL_TEST_TARGETS,
    INSTALL_TEST_COMMAND,
    INSTALL_TEST_SERVER_COMMAND,
    INSTALL_TEST_WAIT_URL,
    INSTALL_TEST_TIMEOUT,
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


_NO_BOOTSTRAP_PY = (
    "there is no bootstrap.py any more: zc.buildout (`bootstrap-version`) is installed with "
    "pip into a per-worker virtualenv"
)

#: ancestor manifest options that no longer exist, most specific first
REMOVED_MANIFEST_OPTIONS: tuple[Removed, ...] = (
    Removed("bootstrap-type", _NO_BOOTSTRAP_PY),
    Removed("bootstrap-script", _NO_BOOTSTRAP_PY),
    Removed("bootstrap-virtualenv", "the bootstrap always uses a per-worker virtualenv"),
    Removed("bootstrap-", _NO_BOOTSTRAP_PY + ", which takes no other option", prefix=True),
    Removed(
        "packaging.vcs",
        "a release tarball is made from the built buildout, whatever its version control",
    ),
)

#: every manifest option the ancestor read (anybox.buildbot.openerp on its master branch,
#: anybox.buildbot.odoo on nine), bootstrap options as their common spellings
ANCESTOR_MANIFEST_OPTIONS: tuple[str, ...] = (
    "buildout",
    "inherit",
    "watch",
    "auto-watch",
    "tree-stable-timer",
    "build-for",
    "build-requires",
    "build-category",
    "post-dl-steps",
    "db-steps",
    "post-buildout-steps",
    "db_template",
    "buildout-part",
    "start-command",
    "test-command",
    "git-shallow",
    "virtualenv",
    "bootstrap-version",
    "bootstrap-type",
    "bootstrap-script",
    "bootstrap-virtualenv",
    "buildout.pip-exists-action",
    "openerp-addons",
    "odoo-addons",
    "install.demo-data",
    "install-as-upgrade",
    "upgrade.script",
    "update.log_file_option",
    "odoo.use-port",
    "odoo.http-port-min",
    "odoo.http-port-max",
    "odoo.http-port-step",
    "nose.tests",
    "nose.coverage",
    "nose.cover-options",
    "nose.profile",
    "nose.profile-restrict",
    "nose.cprofile",
    "nose.upload-path",
    "nose.upload-url",
    "functional.commands",
    "functional.parts",
    "functional.wait",
    "static-analysis.flake-directories",
    "static-analysis.part",
    "static-analysis.max-line-length",
    "doc.upload-dir",
    "doc.upload-root",
    "doc.version",
    "doc.base-url",
    "doc.sphinx-sourcedir",
    "doc.sphinx-builddir",
    "doc.sphinx-bin",
    "doc.sphinx-mode",
    "packaging.root-dir",
    "packaging.upload-dir",
    "packaging.prefix",
    "packaging.parts",
    "packaging.base-url",
    "packaging.vcs",
    "autocommit.script",
    "autocommit.message",
    "pg_remote_copy.arguments",
    "pg_remote_copy.executable",
    "pg_remote_copy.db_option",
    "pg_remote_copy.timeout",
)

#: every worker option the ancestor gave a meaning to (any other key was a property)
ANCESTOR_WORKER_OPTIONS: tuple[str, ...] = (
    "password",
    "passwd",
    "capability",
    "max_builds",
    "notify_on_missing",
    "slave_priority",
    "worker_priority",
    "build-only-if-requires",
)


def removed_option(
    key: str, removed: tuple[Removed, ...] = REMOVED_MANIFEST_OPTIONS
) -> Removed | None:
    """The :class:`Removed` entry of an option name, or None."""
    return next((r for r in removed if r.matches(key)), None)


def constant_name(option: Option[Any]) -> str:
    """The module constant of an option: ``odoo.use-port`` is ``ODOO_USE_PORT``."""
    return option.name.upper().replace("-", "_").replace(".", "_")
