"""Generic step sets: commands, test runners, static analysis, docs, functional tests,
release tarballs. They suit any buildout, Odoo or not."""

from __future__ import annotations

import json
import posixpath

from buildbot.plugins import steps, util
from buildbot.process.buildstep import BuildStep

from ..core import schema
from ..core import stepset_catalogue as catalogue
from ..core.kinds import Argv
from .buildsteps import BUILDOUT_CACHE_LOCK
from .stepset_registry import StepContext, StepSet

#: where nose writes its HTML coverage report when ``nose.upload-path`` is set
NOSE_HTML = "nose-cover"


def _each(ctx: StepContext, name: str, commands: tuple[Argv, ...]) -> list[BuildStep]:
    """One step per command, numbered when there are several."""
    return [
        ctx.shell(f"{name}_{i}" if len(commands) > 1 else name, list(cmd))
        for i, cmd in enumerate(commands, start=1)
    ]


def noop(ctx: StepContext) -> list[BuildStep]:
    """Nothing (the ancestor's default post-download step set)."""
    return []


def test_command(ctx: StepContext) -> list[BuildStep]:
    """Run each ``test-command`` line, for any buildout (Plone, plain Python...)."""
    return _each(ctx, "test", ctx.get(schema.TEST_COMMAND))


def pytest_steps(ctx: StepContext) -> list[BuildStep]:
    """Run ``bin/pytest`` with ``pytest-args``."""
    return [ctx.shell("pytest", ["bin/pytest", *ctx.get(schema.PYTEST_ARGS)])]


def nose(ctx: StepContext) -> list[BuildStep]:
    """Run ``bin/nosetests`` on ``nose.tests``, with coverage and profilers if asked."""
    command = ["bin/nosetests", "-v", *ctx.get(schema.NOSE_TESTS)]
    upload = ctx.get(schema.NOSE_UPLOAD_PATH)
    if ctx.get(schema.NOSE_COVERAGE) or upload:
        command += ["--with-coverage", *ctx.get(schema.NOSE_COVER_OPTIONS)]
    if upload:
        command += ["--cover-html", f"--cover-html-dir={NOSE_HTML}"]
    if ctx.get(schema.NOSE_PROFILE):
        command.append("--with-profile")
    if ctx.get(schema.NOSE_CPROFILE):
        command.append("--with-cprofile")
    restrict = ctx.get(schema.NOSE_PROFILE_RESTRICT)
    if restrict:
        command.append(f"--profile-restrict={restrict}")
    result = [ctx.shell("nose", command)]
    if upload:
        result.append(
            steps.DirectoryUpload(
                name="upload_nose_coverage",
                workersrc=NOSE_HTML,
                masterdest=util.Interpolate(upload),
                url=ctx.get(schema.NOSE_UPLOAD_URL),
                workdir=ctx.workdir,
            )
        )
    return result


def static_analysis(ctx: StepContext) -> list[BuildStep]:
    """Run ``static-analysis-command`` (flake8 on ``static-analysis.flake-directories`` by default)."""
    commands = ctx.get(schema.STATIC_ANALYSIS_COMMAND)
    dirs = ctx.get(schema.STATIC_ANALYSIS_FLAKE_DIRECTORIES)
    if dirs and commands == schema.STATIC_ANALYSIS_COMMAND.default:
        length = f"--max-line-length={ctx.get(schema.STATIC_ANALYSIS_MAX_LINE_LENGTH)}"
        commands = (("bin/flake8", length, *dirs),)
    result: list[BuildStep] = []
    part = ctx.get(schema.STATIC_ANALYSIS_PART)
    if part:
        result.append(
            ctx.shell(
                "install_static_analysis",
                [*ctx.buildout_argv, "install", part],
                timeout=ctx.get(schema.BUILDOUT_TIMEOUT),
                locks=[BUILDOUT_CACHE_LOCK.access("exclusive")],
            )
        )
    return result + _each(ctx, "static_analysis", commands)


def _joined(*parts: str | None) -> str:
    return posixpath.join(*[p for p in parts if p]) if any(parts) else ""


def doc(ctx: StepContext) -> list[BuildStep]:
    """Build the docs (``doc-command``, or sphinx) and upload them to ``doc.upload-dir``."""
    builddir = ctx.get(schema.DOC_SPHINX_BUILDDIR)
    full = ("-E", "-a") if ctx.get(schema.DOC_SPHINX_MODE) == "full" else ()
    sphinx: Argv = (
        ctx.get(schema.DOC_SPHINX_BIN),
        *full,
        "-b",
        "html",
        ctx.get(schema.DOC_SPHINX_SOURCEDIR),
        builddir,
    )
    result = _each(ctx, "doc", ctx.get(schema.DOC_COMMAND) or (sphinx,))
    upload_dir = ctx.get(schema.DOC_UPLOAD_DIR)
    if upload_dir:
        version = ctx.get(schema.DOC_VERSION)
        base_url = ctx.get(schema.DOC_BASE_URL)
        result.append(
            steps.DirectoryUpload(
                name="upload_doc",
                workersrc=builddir,
                masterdest=util.Interpolate(
                    _joined(ctx.get(schema.DOC_UPLOAD_ROOT), upload_dir, version)
                ),
                url=util.Interpolate(_joined(base_url, version)) if base_url else None,
                workdir=ctx.workdir,
            )
        )
    return result


def functional(ctx: StepContext) -> list[BuildStep]:
    """Start ``functional.server-command`` on a reserved port, run ``functional.commands``."""
    server = ctx.get(schema.FUNCTIONAL_SERVER_COMMAND) or ()
    commands = ctx.get(schema.FUNCTIONAL_COMMANDS)
    wait_url = ctx.get(schema.FUNCTIONAL_WAIT_URL)
    result = []
    for i, cmd in enumerate(commands, start=1):
        argv = ctx.util_argv(
            "functional",
            "--server-cmd-json",
            json.dumps(list(server)),
            "--timeout",
            str(ctx.get(schema.FUNCTIONAL_TIMEOUT)),
        )
        if wait_url:
            argv += ["--wait-url", wait_url]
        argv += ["--", *cmd]
        result.append(ctx.shell(f"functional_{i}" if len(commands) > 1 else "functional", argv))
    return result


def packaging(ctx: StepContext) -> list[BuildStep]:
    """Make a tarball of the built buildout and upload it to ``packaging.upload-dir``."""
    prefix = ctx.get(schema.PACKAGING_PREFIX) or ctx.buildout.name
    archive = util.Interpolate(f"{prefix}-%(prop:got_revision:-build%(prop:buildnumber)s)s.tar.gz")
    result: list[BuildStep] = [
        ctx.shell(
            "packaging",
            ["tar", "--exclude-vcs", "-czf", util.Interpolate(f"../{prefix}.tar.gz"), "."],
        ),
    ]
    upload_dir = ctx.get(schema.PACKAGING_UPLOAD_DIR)
    if upload_dir:
        base_url = ctx.get(schema.PACKAGING_BASE_URL)
        result.append(
            steps.FileUpload(
                name="upload_package",
                workersrc=f"../{prefix}.tar.gz",
                masterdest=util.Interpolate(upload_dir + "/%(kw:a)s", a=archive),
                url=util.Interpolate(base_url.rstrip("/") + "/%(kw:a)s", a=archive)
                if base_url
                else None,
                workdir=ctx.workdir,
            )
        )
    return result


STEP_SETS: tuple[tuple[catalogue.StepSetSpec, StepSet], ...] = (
    (catalogue.NOOP, noop),
    (catalogue.TEST_COMMAND, test_command),
    (catalogue.PYTEST, pytest_steps),
    (catalogue.NOSE, nose),
    (catalogue.STATIC_ANALYSIS, static_analysis),
    (catalogue.DOC, doc),
    (catalogue.FUNCTIONAL, functional),
    (catalogue.PACKAGING, packaging),
)
