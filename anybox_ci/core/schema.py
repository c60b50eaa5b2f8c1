"""The one schema of every manifest and worker option.

Each option is declared once, with its type, default, documentation and old names.
Validation, deprecation warnings, "did you mean" suggestions and the generated
reference docs (``docs/reference/*.md``) all read this table, so they cannot drift.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .versions import VersionFilter, parse_requirement


@dataclass(frozen=True)
class Kind:
    """A value type: how to parse the raw INI text, and how the docs name it."""

    name: str
    parse: Callable[[str], Any]


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {text.strip()!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text.strip()!r}") from None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text.strip()!r}")


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.replace(",", " ").split())


def _argv(text: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise ValueError(f"cannot split into arguments: {exc}") from None
    if not argv:
        raise ValueError("empty command")
    return argv


def _argv_lines(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(_argv(line) for line in _lines(text))


def _requirements(text: str) -> tuple[tuple[str, VersionFilter], ...]:
    return tuple(parse_requirement(line) for line in _lines(text))


_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def _times(text: str) -> tuple[tuple[int, int], ...]:
    """``HH:MM`` values, several allowed (one nightly build each)."""
    result = []
    for word in text.split():
        match = _TIME_RE.match(word)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f"expected a time as HH:MM, got {word!r}")
        time = (int(match.group(1)), int(match.group(2)))
        if time in result:
            raise ValueError(f"time {word!r} given twice")
        result.append(time)
    return tuple(result)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _str(text: str) -> str:
    return text.strip()


FORGE_TYPES = ("github", "gitlab", "gitea")


def _commit_status(text: str) -> tuple[str, str, str] | None:
    """``FORGE API_URL TOKEN_SECRET``: statuses for one forge, token from a secret."""
    words = text.split()
    if not words:
        return None
    if len(words) != 3 or words[0] not in FORGE_TYPES:
        raise ValueError(
            f"expected 'FORGE API_URL TOKEN_SECRET' with FORGE in {', '.join(FORGE_TYPES)}, "
            f"got {text.strip()!r}"
        )
    if not words[1].startswith(("http://", "https://")):
        raise ValueError(f"the API URL must start with http:// or https://, got {words[1]!r}")
    return words[0], words[1], words[2].removeprefix("secret:")


STR = Kind("text", _str)
INT = Kind("integer", _int(0))
POSITIVE = Kind("integer >= 1", _int(1))
FLOAT = Kind("number", _float)
BOOL = Kind("boolean", _bool)
LINES = Kind("lines", _lines)
WORDS = Kind("words", _words)
#: words without repeats (Buildbot refuses a builder with the same tag twice)
TAGS = Kind("words", lambda text: tuple(dict.fromkeys(_words(text))))
ARGV = Kind("command", _argv)
ARGV_LINES = Kind("commands, one per line", _argv_lines)
REQUIREMENTS = Kind("capability filters, one per line", _requirements)
TIMES = Kind("HH:MM times", _times)
COMMIT_STATUS = Kind("FORGE API_URL TOKEN_SECRET", _commit_status)
DB_CLEANUP = Kind("on-success | always | never", _choice("on-success", "always", "never"))


@dataclass(frozen=True)
class Option:
    name: str
    kind: Kind
    default: Any
    doc: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    example: str = ""


def _table(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


MANIFEST_OPTIONS: dict[str, Option] = _table(
    Option(
        "buildout",
        STR,
        None,
        "Where the buildout comes from: `standalone FILE`, `git URL BRANCH FILE [subdir=DIR]`, "
        "`hg URL BRANCH FILE [subdir=DIR]`, `bzr URL FILE [subdir=DIR]`, `gittag URL FILE`, "
        "`hgtag URL FILE` (the tag comes from the `buildout-tag` build property) or "
        "`archive URL FILE` (an artefact made by another build).",
        example="git https://example.com/erp.git main buildout.cfg",
    ),
    Option("inherit", STR, None, "Take every option of another section, then override them."),
    Option(
        "watch",
        LINES,
        (),
        "Extra repositories whose changes trigger this buildout: `git URL BRANCH`, "
        "`hg URL BRANCH` or `bzr URL`, one per line. The buildout's own repository is "
        "always watched.",
        example="git https://example.com/addons.git 17.0",
    ),
    Option(
        "auto-watch",
        BOOL,
        False,
        "Discover the floating VCS sources the buildout uses (addons lines, mr.developer "
        "sources) during builds, and watch them too.",
    ),
    Option(
        "tree-stable-timer",
        INT,
        0,
        "Seconds without new changes before a build starts; 0 starts at once.",
    ),
    Option(
        "build-for",
        REQUIREMENTS,
        (),
        "One builder per capability version that matches, e.g. `postgresql >= 13`. Several "
        "lines give their cartesian product.",
        example="postgresql >= 13 < 17",
    ),
    Option(
        "build-requires",
        REQUIREMENTS,
        (),
        "Capabilities a worker must offer to build this, one filter per line (all must match).",
        example="wkhtmltopdf",
    ),
    Option("build-category", TAGS, (), "Tags of the builders, shown in the web UI."),
    Option(
        "post-dl-steps",
        LINES,
        (),
        "Step sets run right after the buildout is fetched, by name.",
    ),
    Option(
        "db-steps",
        LINES,
        ("simple_create",),
        "Database step sets, by name: `simple_create` (from `db_template`) or `restore` "
        "(runs `db-restore-command`).",
    ),
    Option(
        "post-buildout-steps",
        LINES,
        ("install-modules-test",),
        "Step sets run once the buildout is ready, by name, in order.",
        example="install-modules-test\nstatic-analysis",
    ),
    Option("db_template", STR, "template1", "Template of the test database."),
    Option(
        "db-restore-command",
        ARGV,
        None,
        "Command that fills the empty test database, for the `restore` db step; the database "
        "name is in `$ANYBOX_CI_DB`.",
    ),
    Option(
        "db-cleanup",
        DB_CLEANUP,
        "on-success",
        "When to drop the test database at the end: after success only (kept for debugging "
        "after a failure), always, or never.",
    ),
    Option(
        "odoo-addons",
        WORDS,
        ("all",),
        "Odoo modules to install and test (comma or space separated).",
        aliases=("openerp-addons",),
    ),
    Option("buildout-part", STR, "openerp", "The buildout part that installs Odoo."),
    Option(
        "buildout-timeout",
        POSITIVE,
        3600,
        "Seconds without output before the buildout step is killed.",
    ),
    Option("test-timeout", POSITIVE, 3600, "Seconds without output before a test step is killed."),
    Option(
        "buildout-options",
        LINES,
        (),
        "Extra `section:option=value` overrides given to `bin/buildout`.",
    ),
    Option(
        "bootstrap-version",
        STR,
        "zc.buildout>=4,<7",
        "The zc.buildout requirement installed in the per-worker bootstrap virtualenv.",
    ),
    Option(
        "virtualenv",
        BOOL,
        True,
        "Bootstrap into a virtualenv (kept for compatibility; always true now).",
    ),
    Option("python", STR, "python3", "Interpreter used when no `python` capability is given."),
    Option("git-shallow", BOOL, False, "Keep a shallow clone of git buildouts."),
    Option(
        "start-command",
        ARGV,
        None,
        "Odoo start script; default `bin/start_<buildout-part>`.",
    ),
    Option(
        "test-command",
        ARGV_LINES,
        (),
        "For `install-modules-test`: the Odoo test script (default `bin/test_<buildout-part>`)."
        " For the generic `test-command` step set: the commands to run, one per line.",
        example="bin/pytest -x tests",
    ),
    Option("install.demo-data", BOOL, True, "Install Odoo modules with demo data."),
    Option("install-as-upgrade", BOOL, False, "Install through the upgrade script."),
    Option("odoo.use-port", BOOL, False, "Give Odoo a reserved free HTTP port during tests."),
    Option("odoo.http-port-min", INT, 6069, "Lowest port tried for Odoo (compatibility)."),
    Option("odoo.http-port-max", INT, 7068, "Highest port tried for Odoo (compatibility)."),
    Option("odoo.http-port-step", POSITIVE, 5, "Step between ports tried (compatibility)."),
    Option("upgrade.script", STR, None, "Script of the `update-modules` step set."),
    Option("update.log_file_option", STR, "--log-file", "Log option of the upgrade script."),
    Option("nose.tests", WORDS, (), "Arguments giving the nose tests to run."),
    Option("nose.coverage", BOOL, False, "Run nose with coverage."),
    Option(
        "nose.cover-options",
        WORDS,
        ("--cover-erase", "--cover-branches"),
        "Extra coverage options.",
    ),
    Option("nose.profile", BOOL, False, "Run nose with the profiler."),
    Option("nose.cprofile", BOOL, False, "Run nose with cProfile."),
    Option("nose.profile-restrict", STR, None, "Restriction of the profiler output."),
    Option("nose.upload-path", STR, None, "Master path to upload nose output to."),
    Option("nose.upload-url", STR, None, "URL of the uploaded nose output."),
    Option("pytest-args", WORDS, (), "Arguments of `bin/pytest` for the `pytest` step set."),
    Option(
        "static-analysis-command",
        ARGV_LINES,
        (("bin/flake8",),),
        "Commands of the `static-analysis` step set.",
    ),
    Option("static-analysis.flake-directories", WORDS, (), "Directories given to flake8."),
    Option("static-analysis.max-line-length", POSITIVE, 79, "Max line length for flake8."),
    Option("doc-command", ARGV_LINES, (), "Commands of the `doc` step set (e.g. sphinx-build)."),
    Option("doc.upload-dir", STR, None, "Master folder the built docs are uploaded to."),
    Option("doc.upload-root", STR, None, "Root of the docs upload (compatibility)."),
    Option("doc.base-url", STR, None, "URL under which uploaded docs are served."),
    Option("doc.sphinx-sourcedir", STR, "doc", "Sphinx source folder."),
    Option("doc.sphinx-bin", STR, "bin/sphinx-build", "Sphinx executable."),
    Option("doc.sphinx-mode", STR, "incremental", "Sphinx build mode (compatibility)."),
    Option(
        "functional.server-command",
        ARGV,
        None,
        "Server started for the `functional` step set; `{port}` in any argument becomes the "
        "reserved port.",
    ),
    Option(
        "functional.wait-url", STR, None, "URL polled until the server answers (`{port}` allowed)."
    ),
    Option("functional.commands", ARGV_LINES, (), "Commands run while the server is up."),
    Option("functional.timeout", POSITIVE, 120, "Seconds to wait for the server."),
    Option("packaging.upload-dir", STR, None, "Master folder receiving release tarballs."),
    Option("packaging.base-url", STR, None, "URL under which uploaded tarballs are served."),
    Option(
        "autocommit.script", STR, None, "Script of `autocommit`; default `bin/autocommit_<part>`."
    ),
    Option("autocommit.message", STR, "Commit by buildbot", "Message of the autocommit commits."),
    Option("static-analysis.part", STR, "static-analysis", "Buildout part installing the tools."),
    Option("doc.version", STR, None, "Subfolder of the uploaded docs (compatibility)."),
    Option("doc.sphinx-builddir", STR, None, "Sphinx build folder (compatibility)."),
    Option("packaging.prefix", STR, None, "Name prefix of release tarballs."),
    Option("packaging.parts", WORDS, (), "Buildout parts frozen in a release."),
    Option(
        "nightly",
        TIMES,
        (),
        "Also build every day at these times (HH:MM, master's local time).",
        example="02:30",
    ),
    Option("poll", BOOL, False, "Watch this buildout's repositories with pollers too."),
    Option(
        "commit-status",
        COMMIT_STATUS,
        None,
        "Post commit statuses to a forge: one per cell, plus `anybox-ci/<section>` for the "
        "whole buildout and revision (for branch protection). The token is the name of a "
        "Buildbot secret, never the token itself.",
        example="github https://api.github.com github-token",
    ),
    Option("description", STR, "", "Shown on the builders' pages."),
)

WORKER_OPTIONS: dict[str, Option] = _table(
    Option(
        "password",
        STR,
        None,
        "The worker's password: a literal, or `secret:NAME` for a Buildbot secret (recommended).",
        aliases=("passwd",),
        required=True,
        example="secret:worker-ci1",
    ),
    Option(
        "capability",
        LINES,
        (),
        "What the worker offers, one per line: `NAME [VERSION [key=value ...]]`. For "
        "postgresql the keys are `port`, `host`, `user`, `bin`, `lib` and `password` (a secret "
        "name).",
        example="postgresql 15 port=5433 bin=/usr/lib/postgresql/15/bin",
    ),
    Option("max_builds", POSITIVE, None, "How many builds may run on this worker at once."),
    Option("notify_on_missing", WORDS, (), "Email addresses told when the worker goes missing."),
    Option(
        "priority",
        FLOAT,
        0.0,
        "Among candidate workers, the highest priority gets the build.",
        aliases=("slave_priority", "worker_priority"),
    ),
    Option(
        "build-only-if-requires",
        WORDS,
        (),
        "Capability names: this worker only takes buildouts that require one of them.",
    ),
    Option("db_prefix", STR, "anybox", "Prefix of the test databases on this worker."),
)


#: step-set names of the ancestor that were renamed: old name -> new name


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _format_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "\n".join(" ".join(v) if isinstance(v, tuple) else str(v) for v in value)
    return str(value)


def _code_lines(text: str) -> str:
    """Each line of ``text`` as inline code, lines separated by ``<br>`` (table-safe)."""
    return "<br>".join(f"`{line}`" for line in text.splitlines() if line)


def reference_markdown(title: str, intro: str, options: dict[str, Option]) -> str:
    """The reference page of one schema; ``docs/reference/`` is made of these.

    One table row per option, sorted by name, with its type, default, documentation,
    example and old names; then a table of the old names, for migrations.
    """
    out = [f"# {title}", "", "<!-- Generated by `anybox-ci docs`: do not edit. -->", "", intro, ""]
    out += ["| option | type | default | description |", "|---|---|---|---|"]
    for opt in sorted(options.values(), key=lambda o: o.name):
        doc = _markdown_escape(opt.doc)
        if opt.required:
            doc = "**Required.** " + doc
        if opt.aliases:
            doc += " Old name" + ("s" if len(opt.aliases) > 1 else "") + ": "
            doc += ", ".join(f"`{a}`" for a in opt.aliases) + " (deprecated)."
        if opt.example:
            doc += " Example: " + _markdown_escape(_code_lines(opt.example)) + "."
        default = _markdown_escape(_code_lines(_format_default(opt.default)))
        kind = _markdown_escape(opt.kind.name)
        out.append(f"| `{opt.name}` | {kind} | {default} | {doc} |")
    renamed = sorted((alias, opt.name) for opt in options.values() for alias in opt.aliases)
    if renamed:
        out += [
            "",
            "## Old names",
            "",
            "These names still work and give a deprecation warning; `anybox-ci check` "
            "shows where they are used.",
            "",
            "| old name | new name |",
            "|---|---|",
        ]
        out += [f"| `{alias}` | `{name}` |" for alias, name in renamed]
    out.append("")
    return "\n".join(out)
