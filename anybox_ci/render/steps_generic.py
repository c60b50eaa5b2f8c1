"""Generic step sets: commands, test runners, static analysis, docs, functional tests,
release tarballs. They suit any buildout, Odoo or not.

Uploads write on the master, so where they write is never left to build output: the
tarball's name is made of the buildout's name (or ``packaging.prefix``) and a version that
must be a plain token (otherwise ``build<N>``), and every upload step checks, once its
destination is rendered, that the resolved path is inside the folder the manifest named.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import steps, util
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import FAILURE
from twisted.internet import defer
from zope.interface import implementer

from ..core import schema
from ..core import stepset_catalogue as catalogue
from ..core.kinds import Argv
from ..core.vcs import codebase_name
from .buildsteps import BUILDOUT_CACHE_LOCK
from .stepset_registry import StepContext, StepSet

#: where nose writes its HTML coverage report when ``nose.upload-path`` is set
NOSE_HTML = "nose-cover"


#: a tarball's version: a revision id, a tag, a version number; never a path
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
#: a tarball's prefix, from the manifest
PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")


def safe_version(value: Any) -> str | None:
    """``value`` when it can be part of a file name, else None."""
    text = value if isinstance(value, str) else ""
    return text if VERSION_RE.match(text) and ".." not in text else None


def outside(root: str, dest: str, allow_root: bool = False) -> str | None:
    """Why ``dest`` is not inside ``root`` once both are resolved on the master, or None.

    Relative paths are the master's basedir's (its working directory), as for Buildbot's
    own upload steps; symbolic links are followed."""
    real_root = os.path.realpath(os.path.expanduser(root))
    real_dest = os.path.realpath(os.path.expanduser(dest))
    if real_dest == real_root and allow_root:
        return None
    if real_dest.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return f"destination {dest[:200]!r} is outside the upload folder {root!r}"


def static_root(template: str) -> str:
    """The folder of an upload template that no property can change: what is before the
    first ``%(``, cut at a ``/`` (the template itself when it has no property)."""
    head, sep, _ = template.partition("%(")
    if not sep:
        return template
    return head.rsplit("/", 1)[0] if "/" in head else "."


class _Confined:
    """Mixin of a Buildbot upload step: refuse a rendered destination outside ``root``."""

    allow_root = False

    def __init__(self, root: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.root = root

    @defer.inlineCallbacks
    def run(self) -> Any:
        why = outside(self.root, str(self.masterdest), self.allow_root)  # type: ignore[attr-defined]
        if why:
            yield self.addCompleteLog("refused", why + "\n")  # type: ignore[attr-defined]
            self.descriptionDone = ["upload refused: destination outside its folder"]
            return FAILURE
        result = yield super().run()  # type: ignore[misc]
        return result


class ConfinedFileUpload(_Confined, steps.FileUpload):
    """``FileUpload`` that writes only inside ``root``."""


class ConfinedDirectoryUpload(_Confined, steps.DirectoryUpload):
    """``DirectoryUpload`` that writes only inside ``root`` (or into ``root`` itself)."""

    allow_root = True


@implementer(IRenderable)
class ArchiveName:
    """``PREFIX-VERSION.tar.gz``: VERSION is the build's ``release_version`` (last version
    tag plus commits since), else the buildout's ``got_revision``, when that is a plain token
    (see :data:`VERSION_RE`), else ``build<N>``."""

    def __init__(self, prefix: str, codebase: str):
        self.prefix = prefix
        self.codebase = codebase

    def getRenderingFor(self, props: Any) -> str:
        version = safe_version(props.getProperty("release_version"))
        if version is not None:
            return f"{self.prefix}-{version}.tar.gz"
        got = props.getProperty("got_revision")
        if isinstance(got, dict):
            got = got.get(self.codebase)
        version = safe_version(got)
        if version is None:
            number = props.getProperty("buildnumber")
            version = f"build{number if isinstance(number, int) else 0}"
        return f"{self.prefix}-{version}.tar.gz"


def _literal(path: str) -> str:
    """A manifest path inside an Interpolate template, never read as a property."""
    return path.replace("%", "%%")


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
            ConfinedDirectoryUpload(
                root=static_root(upload),
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
        folder = _literal(_joined(ctx.get(schema.DOC_UPLOAD_ROOT), upload_dir))
        result.append(
            ConfinedDirectoryUpload(
                root=_joined(ctx.get(schema.DOC_UPLOAD_ROOT), upload_dir),
                name="upload_doc",
                workersrc=builddir,
                masterdest=util.Interpolate(_joined(folder, version)),
                url=util.Interpolate(_joined(base_url, version)) if base_url else None,
                workdir=ctx.workdir,
            )
        )
    return result


def functional(ctx: StepContext) -> list[BuildStep]:
    """Start ``functional.server-command`` on a reserved port, run ``functional.commands``."""
    server = ctx.get(schema.FUNCTIONAL_SERVER_COMMAND) or (
        *(ctx.get(schema.START_COMMAND) or (f"bin/start_{ctx.part}",)),
        "--http-port={port}",
    )
    commands = ctx.get(schema.FUNCTIONAL_COMMANDS)
    wait_url = ctx.get(schema.FUNCTIONAL_WAIT_URL)
    result = []
    parts = ctx.get(schema.FUNCTIONAL_PARTS)
    if parts:
        result.append(
            ctx.shell(
                "install_functional_parts",
                [*ctx.buildout_argv, "install", *parts],
                timeout=ctx.get(schema.BUILDOUT_TIMEOUT),
                locks=[BUILDOUT_CACHE_LOCK.access("exclusive")],
            )
        )
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
    if not PREFIX_RE.match(prefix) or ".." in prefix:
        raise ValueError(
            f"packaging.prefix {prefix[:100]!r}: expected a file name "
            "(letters, digits, '.', '_', '+', '-')"
        )
    source = ctx.buildout.source
    codebase = codebase_name(source.url, source.branch) if source.branch else ""
    archive = ArchiveName(prefix, codebase)
    result: list[BuildStep] = [
        ctx.shell(
            "packaging",
            ["tar", "--exclude-vcs", "-czf", util.Interpolate(f"../{prefix}.tar.gz"), "."],
        ),
    ]
    upload_dir = ctx.get(schema.PACKAGING_UPLOAD_DIR)
    if upload_dir:
        upload_dir = posixpath.join(ctx.get(schema.PACKAGING_ROOT_DIR) or "", upload_dir)
        base_url = ctx.get(schema.PACKAGING_BASE_URL)
        result.append(
            ConfinedFileUpload(
                root=upload_dir,
                name="upload_package",
                workersrc=f"../{prefix}.tar.gz",
                masterdest=util.Interpolate(_literal(upload_dir) + "/%(kw:a)s", a=archive),
                url=util.Interpolate(_literal(base_url.rstrip("/")) + "/%(kw:a)s", a=archive)
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


def release_preparation(ctx: StepContext) -> list[BuildStep]:
    """Nothing: the ancestor's ``post-dl-steps = packaging`` (see the catalogue's reason)."""
    return []


STEP_SETS += ((catalogue.RELEASE_PACKAGING, release_preparation),)
