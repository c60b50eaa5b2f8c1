"""Generic step sets: commands, test runners, static analysis, docs, functional tests,
release archives. They suit any buildout, Odoo or not.

A release archive (``packaging``) is self-contained: ``build_utils/package.py`` ships the
eggs and develop sources the buildout used and a configuration that builds them with no
package index, so that ``archive`` buildouts (``archive.from``) test it as shipped.

Uploads write on the master, so where they write is never left to build output: the
archive's name is made of the buildout's name (or ``packaging.prefix``) and a version that
must be a plain token (otherwise ``build<N>``), and every upload step checks, once its
destination is rendered, that the resolved path is inside the folder the manifest named.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import steps, util
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import FAILURE, SUCCESS
from twisted.internet import defer, threads
from zope.interface import implementer

from ..core import schema
from ..core import stepset_catalogue as catalogue
from ..core.kinds import Argv
from ..core.model import Buildout
from ..core.vcs import codebase_name
from .buildsteps import BUILDOUT_CACHE_LOCK, STACK_PROP
from .steps_release import hidden_when_skipped, release_trigger
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


#: the release archive on the worker, in the builder's folder, before its upload
PACKAGE_FILE = "anybox-ci-package.tar.gz"
#: a ``buildout-options`` line that package.py freezes into the archive's configuration
ASSIGNMENT_RE = re.compile(r"[A-Za-z0-9._-]+:[A-Za-z0-9._-]+=")


def package_folder(buildout: Buildout) -> str | None:
    """The master folder receiving the buildout's release archives, or None."""
    upload_dir = buildout.get(schema.PACKAGING_UPLOAD_DIR)
    if not upload_dir:
        return None
    return posixpath.join(buildout.get(schema.PACKAGING_ROOT_DIR) or "", upload_dir)


def package_prefix(buildout: Buildout) -> str:
    """``packaging.prefix`` (default: the section's name), checked to be a file name."""
    prefix = buildout.get(schema.PACKAGING_PREFIX) or buildout.name
    if not PREFIX_RE.match(prefix) or ".." in prefix:
        raise ValueError(
            f"packaging.prefix {prefix[:100]!r}: expected a file name "
            "(letters, digits, '.', '_', '+', '-')"
        )
    return prefix


@implementer(IRenderable)
class _Stem:
    """An archive's name without ``.tar.gz``: the top folder inside it."""

    def __init__(self, archive: ArchiveName):
        self.archive = archive

    def getRenderingFor(self, props: Any) -> str:
        return self.archive.getRenderingFor(props).removesuffix(".tar.gz")


class ArchiveChecksum(BuildStep):
    """On the master, after the upload: the SHA-256 of the archive as the master holds it,
    written beside it (``NAME.sha256``, as ``sha256sum`` prints it) and set as the
    properties ``archive_name``, ``archive_sha256`` (and ``archive_url``) that the
    triggered builds receive."""

    renderables = ["path", "url"]

    def __init__(self, root: str, path: Any, url: Any = None, **kwargs: Any):
        kwargs.setdefault("name", "archive_sha256")
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.root, self.path, self.url = root, path, url

    @defer.inlineCallbacks
    def run(self) -> Any:
        path = str(self.path)
        why = outside(self.root, path)
        if why:
            yield self.addCompleteLog("refused", why + "\n")
            self.descriptionDone = ["refused: archive outside its folder"]
            return FAILURE
        digest = yield threads.deferToThread(_sha256_beside, path)
        name = os.path.basename(path)
        self.setProperty("archive_name", name, self.name)
        self.setProperty("archive_sha256", digest, self.name)
        if self.url:
            self.setProperty("archive_url", str(self.url), self.name)
        yield self.addCompleteLog("sha256", f"{digest}  {name}\n")
        self.descriptionDone = [f"{name} sha256 {digest[:12]}"]
        return SUCCESS


def _sha256_beside(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    tmp = path + ".sha256.part"
    with open(tmp, "w", encoding="ascii") as out:
        out.write(f"{hexdigest}  {os.path.basename(path)}\n")
    os.replace(tmp, path + ".sha256")
    return hexdigest


def packaging(ctx: StepContext) -> list[BuildStep]:
    """Freeze the built buildout into a self-contained archive (its eggs, its develop
    sources, ``anybox-ci-release.cfg``), upload it to ``packaging.upload-dir`` with its
    SHA-256, and trigger the ``archive`` buildouts whose ``archive.from`` names this one."""
    prefix = package_prefix(ctx.buildout)
    source = ctx.buildout.source
    codebase = codebase_name(source.url, source.branch) if source.branch else ""
    archive = ArchiveName(prefix, codebase)
    frozen = [o for o in ctx.get(schema.BUILDOUT_OPTIONS) if ASSIGNMENT_RE.match(o)]
    result: list[BuildStep] = [
        ctx.shell(
            "packaging",
            ctx.util_argv(
                "package",
                "--buildout-dir",
                ".",
                f"--config={ctx.config_file}",
                util.Interpolate("--name=%(kw:stem)s", stem=_Stem(archive)),
                util.Interpolate("--output=%(prop:builddir)s/" + PACKAGE_FILE),
                *[f"--option={o}" for o in frozen],
            ),
            timeout=ctx.get(schema.BUILDOUT_TIMEOUT),
        ),
    ]
    upload_dir = package_folder(ctx.buildout)
    if upload_dir:
        base_url = ctx.get(schema.PACKAGING_BASE_URL)
        url = (
            util.Interpolate(_literal(base_url.rstrip("/")) + "/%(kw:a)s", a=archive)
            if base_url
            else None
        )
        dest = util.Interpolate(_literal(upload_dir) + "/%(kw:a)s", a=archive)
        # a stack's acceptance rebuilds a member to test it, not to release it: the archive
        # the stack recorded (and its hash) stays the one on the master, and without a new
        # hash the trigger is skipped too
        released = {"doStepIf": _not_acceptance, "hideStepIf": hidden_when_skipped}
        result += [
            ConfinedFileUpload(
                root=upload_dir,
                name="upload_package",
                workersrc=PACKAGE_FILE,
                masterdest=dest,
                url=url,
                workdir=".",
                haltOnFailure=True,
                **released,
            ),
            ArchiveChecksum(upload_dir, dest, url, **released),
            release_trigger(ctx.buildout.name),
        ]
    return result


def _not_acceptance(step: BuildStep) -> bool:
    return step.build.getProperty(STACK_PROP) is None


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
