"""Build factories: the pipeline of every cell of a buildout.

fetch the buildout -> test database name -> bootstrap -> bin/buildout with the
cell's database settings -> db-steps -> post-buildout-steps -> cleanups.

One factory serves all the cells of a buildout: what differs between cells (versions,
ports, paths) comes from builder and worker properties at build time.
"""

from __future__ import annotations

import configparser
import posixpath
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import steps, util
from buildbot.process.buildstep import BuildStep, BuildStepFailed
from buildbot.process.factory import BuildFactory
from twisted.internet import defer
from zope.interface import implementer

from ..core import schema
from ..core.model import Buildout, BuildoutSource
from ..core.vcs import check_ref, check_vcs_branch, codebase_name, redact_url, url_error
from .buildsteps import (
    BUILDOUT_CACHE_LOCK,
    PGPASS_FILE,
    WORKER_SECRET_ENV,
    CellEnv,
    PgPassFile,
    UtilStep,
)
from .cells import CELL_PROP
from .steps_db import cleanup_steps
from .steps_generic import package_folder
from .steps_release import OfflineEnv, release_fetch_steps, version_steps
from .stepset_registry import TESTING_DB, EnvWith, StepContext, StepSets, util_argv
from .utils_bundle import BUNDLE_NAME

CHECKOUT = "build"
#: the largest discovery file a build may upload to the master (repository content)
DISCOVERY_MAX_SIZE = 1 << 20
CACHE = "%(prop:builddir)s/../anybox-ci-cache"


def standalone_files(path: Path) -> list[Path]:
    """The buildout file and the local files it ``extends``, recursively.

    Remembered per path while no file of the chain changes (mtime, size, inode): a
    thousand sections often share bases, a reconfig reads them all again, and editing
    a base (a new ``extends``) must be seen."""
    path.stat()  # a missing file is an error, as before
    found = _STANDALONE.get(path)
    if found is not None and found[1] == _identities(found[0]):
        return list(found[0])
    files = _standalone_files(path.resolve())
    if len(_STANDALONE) > 100_000:
        _STANDALONE.clear()
    _STANDALONE[path] = (files, _identities(files))
    return list(files)


def _identities(files: tuple[Path, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    result: list[tuple[int, int, int] | None] = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            result.append(None)
            continue
        result.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(result)


#: buildout file -> (it and the files it extends, their identities then)
_STANDALONE: dict[Path, tuple[tuple[Path, ...], tuple[tuple[int, int, int] | None, ...]]] = {}


def _standalone_files(path: Path) -> tuple[Path, ...]:
    seen: list[Path] = []
    todo = [path.resolve()]
    while todo:
        current = todo.pop(0)
        if current in seen or not current.is_file():
            continue
        seen.append(current)
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read(current, encoding="utf-8")
            extends = parser.get("buildout", "extends", fallback="")
        except configparser.Error:
            continue
        for item in extends.split():
            if "://" not in item:
                todo.append((current.parent / item).resolve())
    return tuple(seen)


#: the environment of Buildbot's own source steps: none of the worker's secrets
SOURCE_ENV: dict[str, Any] = {var: None for var in WORKER_SECRET_ENV}


def ref_problem(vcs: str, branch: Any, revision: Any) -> str | None:
    """Why a build must not hand this branch or revision to ``vcs``, or None.

    They come from the build's sourcestamps: a change (checked by the change hook) or the
    force form (checked by its fields); this is the last check before a command."""
    if branch and branch != "HEAD" and (why := check_vcs_branch(vcs, str(branch))):
        return f"branch {str(branch)[:100]!r} refused: {why}"
    if revision and (why := check_ref(vcs, str(revision))):
        return f"revision {str(revision)[:100]!r} refused: {why}"
    return None


class SourceGuard:
    """``doStepIf`` of a buildout's fetch step: every sourcestamp of the build must pass the
    ``core.vcs`` rules, or the step fails (and halts the build) before any command runs.

    Sourcestamps reach commands through Buildbot's source steps (``git fetch URL BRANCH``)
    and through the pins of discovered sources on the buildout command line, so a forced
    branch ``--upload-pack=CMD`` must stop here. The fetch step stays Buildbot's own."""

    def __init__(self, vcs_by_codebase: Mapping[str, str]):
        self.vcs_by_codebase = dict(vcs_by_codebase)

    def problems(self, build: Any) -> list[str]:
        found = []
        for stamp in build.getAllSourceStamps():
            vcs = self.vcs_by_codebase.get(stamp.codebase, "git")
            why = ref_problem(vcs, stamp.branch, stamp.revision)
            if why:
                found.append(f"codebase {stamp.codebase!r}: {why}")
        return found

    @defer.inlineCallbacks
    def __call__(self, step: BuildStep) -> Any:
        problems = self.problems(step.build)
        if problems:
            yield step.addCompleteLog("refused", "\n".join(problems) + "\n")
            step.descriptionDone = ["refused: unsafe branch or revision"]
            raise BuildStepFailed()
        return True


def _release_folder(source: Buildout) -> str:
    """The upload folder of the release that an ``archive.from`` buildout tests (the
    loader checked that ``source`` makes releases: see ``core.release_links``)."""
    folder = package_folder(source)
    assert folder is not None
    return folder


def _fetch_steps(
    buildout: Buildout,
    ctx_util: Any,
    fetch_url: Callable[[str], str],
    release_source: Buildout | None = None,
) -> tuple[list[BuildStep], str]:
    """Steps putting the buildout in the checkout; returns them and the buildout folder.

    ``fetch_url`` maps the manifest's URL to the one workers fetch (a mirror); the
    codebase, and so the changes that trigger builds, keep the manifest's URL;
    ``release_source`` is the section an ``archive.from`` buildout tests the releases of."""
    src: BuildoutSource = buildout.source
    url = fetch_url(src.url)
    if src.url and (why := url_error(url)):
        raise ValueError(f"fetch URL {redact_url(url)[:100]!r} (after URL rewrites): {why}")
    workdir = posixpath.join(CHECKOUT, src.subdir) if src.subdir else CHECKOUT
    guard = SourceGuard({codebase_name(w.url, w.branch): w.vcs for w in buildout.all_watches})
    if src.type == "standalone":
        assert src.path is not None
        root = src.path.parent
        result: list[BuildStep] = []
        for i, path in enumerate(standalone_files(src.path)):
            try:
                rel = path.relative_to(root).as_posix()
            except ValueError:
                rel = path.name
            result.append(
                steps.FileDownload(
                    name=f"download_buildout_{i}" if i else "download_buildout",
                    mastersrc=str(path),
                    workerdest=rel,
                    workdir=CHECKOUT,
                    haltOnFailure=True,
                    **({} if i else {"doStepIf": guard}),
                )
            )
        return result, CHECKOUT
    codebase = codebase_name(src.url, src.branch) if src.branch else ""
    if src.type == "git":
        return [
            steps.Git(
                name="fetch_buildout",
                env=SOURCE_ENV,
                doStepIf=guard,
                repourl=url,
                branch=src.branch,
                codebase=codebase,
                mode="incremental",
                workdir=CHECKOUT,
                shallow=buildout.get(schema.GIT_SHALLOW),
                tags=True,  # release_version counts from the last version tag
                haltOnFailure=True,
            )
        ], workdir
    if src.type == "hg":
        return [
            steps.Mercurial(
                name="fetch_buildout",
                env=SOURCE_ENV,
                doStepIf=guard,
                repourl=url,
                defaultBranch=src.branch,
                branchType="inrepo",
                codebase=codebase,
                mode="incremental",
                workdir=CHECKOUT,
                haltOnFailure=True,
            )
        ], workdir
    if src.type in ("gittag", "hgtag"):
        # a release: the tag given as the ``buildout-tag`` property, not a watched codebase
        argv = ctx_util(
            "fetch",
            "git" if src.type == "gittag" else "hg",
            "--url",
            url,
            "--dest",
            CHECKOUT,
            "--revision",
            util.Property("buildout-tag"),
        )
    elif src.type == "bzr":
        argv = ctx_util(
            "fetch",
            "bzr",
            "--url",
            url,
            "--dest",
            CHECKOUT,
        )
        # the revision of the change that triggered the build; a forced build takes the tip
        argv = WithRevision(
            argv, util.Interpolate(f"%(src:{codebase_name(src.url, '')}:revision)s")
        )
    elif release_source is not None:  # archive.from: the exact archive of a release
        return release_fetch_steps(
            buildout, _release_folder(release_source), CHECKOUT, guard
        ), workdir
    else:  # archive
        argv = ctx_util("fetch", "archive", "--url", util.Interpolate(src.url), "--dest", CHECKOUT)
    fetch = UtilStep(
        name="fetch_buildout",
        command=argv,
        workdir=".",
        env=SOURCE_ENV,
        exports=("got_revision",),
        doStepIf=guard,
        haltOnFailure=True,
    )
    return [fetch], workdir


@implementer(IRenderable)
class WithRevision:
    """An argv, plus ``--revision R`` only when the build has a revision R for it."""

    def __init__(self, argv: list[Any], revision: Any):
        self.argv = argv
        self.revision = revision

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        argv = list((yield props.render(self.argv)))
        revision = yield props.render(self.revision)
        return argv + (["--revision", revision] if revision else [])


def _buildout_argv(buildout: Buildout, config_file: str) -> list[Any]:
    part = buildout.get(schema.BUILDOUT_PART)
    argv: list[Any] = [util.Property("buildout_bin"), "-c", config_file]
    if not buildout.get(schema.ARCHIVE_FROM):
        # a release archive brings its own eggs: the worker's cache is not used
        argv += [
            util.Interpolate("buildout:download-cache=" + CACHE + "/downloads"),
            util.Interpolate("buildout:eggs-directory=" + CACHE + "/eggs"),
        ]
    if buildout.get(schema.DB_STEPS):
        argv += [
            util.Interpolate(f"{part}:options.db_host=%(prop:anybox_pg_host:-False)s"),
            util.Interpolate(f"{part}:options.db_port=%(prop:anybox_pg_port:-5432)s"),
            util.Interpolate(f"{part}:options.db_user=%(prop:anybox_pg_user:-False)s"),
            util.Interpolate(f"{part}:options.db_name=%(prop:testing_db)s"),
        ]
    argv += list(buildout.get(schema.BUILDOUT_OPTIONS))
    return argv


def make_factory(
    buildout: Buildout,
    step_sets: StepSets,
    env: CellEnv,
    utils_bundle: Path,
    watch_target: Path | None = None,
    pins: Mapping[str, Any] | None = None,
    fetch_url: Callable[[str], str] = str,
    pgpass: bool = False,
    release_source: Buildout | None = None,
) -> BuildFactory:
    """The pipeline; ``watch_target`` (auto-watch) is where discovered sources are kept,
    ``pins`` the recipe/mr.developer coordinates of those sources by codebase; ``pgpass``:
    some worker offers a PostgreSQL password, so cells may need their password file;
    ``release_source``: the section named by ``archive.from`` (None when there is none)."""
    from .autowatch import BuildoutCommand, UpdateWatches

    factory = BuildFactory()
    if not buildout.get(schema.ARCHIVE_FROM):
        release_source = None
    fetch, workdir = _fetch_steps(buildout, util_argv, fetch_url, release_source)
    config_file = buildout.source.file
    argv: Any = _buildout_argv(buildout, config_file)
    ctx = StepContext(buildout, env, workdir, config_file, tuple(argv))

    factory.addStep(send_utils(str(utils_bundle)))
    for step in fetch:
        factory.addStep(step)
    factory.addSteps(version_steps(ctx))
    for name in buildout.get(schema.POST_DL_STEPS):
        factory.addSteps(step_sets.get(schema.POST_DL_STEPS, name)(ctx))
    factory.addSteps(_property_steps(env))
    if pgpass:
        factory.addStep(_pgpass_step(env))
    factory.addStep(
        _bootstrap(
            env,
            buildout.get(schema.PYTHON),
            buildout.get(schema.BOOTSTRAP_VERSION),
            buildout.get(schema.BUILDOUT_TIMEOUT),
        )
    )
    factory.addStep(
        ctx.shell(
            "buildout",
            BuildoutCommand(argv, pins) if pins else argv,
            env=(OfflineEnv if release_source else EnvWith)(
                env, (("PIP_EXISTS_ACTION", buildout.get(schema.BUILDOUT_PIP_EXISTS_ACTION)),)
            ),
            timeout=buildout.get(schema.BUILDOUT_TIMEOUT),
            locks=[BUILDOUT_CACHE_LOCK.access("exclusive")],
        )
    )
    if watch_target is not None:
        dump = "%(prop:builddir)s/anybox-ci-watch.json"
        factory.addStep(
            ctx.shell(
                "discover_sources",
                ctx.util_argv(
                    "watch",
                    "--buildout-dir",
                    ".",
                    "--config",
                    config_file,
                    "--output",
                    util.Interpolate(dump),
                ),
                haltOnFailure=False,
                flunkOnFailure=False,
                warnOnFailure=True,
            )
        )
        uploaded = str(watch_target) + ".new"
        factory.addStep(
            steps.FileUpload(
                name="upload_sources",
                workersrc=util.Interpolate(dump),
                masterdest=uploaded,
                maxsize=DISCOVERY_MAX_SIZE,
                workdir=".",
                haltOnFailure=False,
                flunkOnFailure=False,
                warnOnFailure=True,
            )
        )
        factory.addStep(UpdateWatches(uploaded, str(watch_target)))
    for kind in (schema.DB_STEPS, schema.POST_BUILDOUT_STEPS):
        for name in buildout.get(kind):
            factory.addSteps(step_sets.get(kind, name)(ctx))
    factory.addSteps(cleanup_steps(ctx))
    if pgpass:
        factory.addStep(_pgpass_removal(env))
    return factory


# Steps that do not depend on the buildout are built once and shared by every factory:
# a factory keeps only the step's constructor arguments, and a thousand sections would
# otherwise spend most of a reconfig building identical steps.


@lru_cache(maxsize=64)
def send_utils(bundle: str) -> BuildStep:
    """The step that ships the ``build_utils`` bundle to the build's folder."""
    return steps.FileDownload(
        name="send_build_utils",
        mastersrc=bundle,
        workerdest=BUNDLE_NAME,
        workdir=".",
        mode=0o644,
        haltOnFailure=True,
    )


@lru_cache(maxsize=64)
def _property_steps(env: CellEnv) -> list[BuildStep]:
    return [
        steps.SetProperty(
            name="testing_db",
            property="testing_db",
            # the cell's name: its virtual builder's when it has one (render.cells)
            value=util.Interpolate(
                "%(prop:db_prefix:-anybox)s-%(kw:cell)s",
                cell=util.Property(CELL_PROP, default=util.Property("buildername")),
            ),
            hideStepIf=True,
        ),
        steps.SetProperties(
            name="cell_settings", properties=_cell_properties(env), hideStepIf=True
        ),
    ]


class _HasPgPass:
    """``doStepIf``: the cell has a PostgreSQL password (so a password file)."""

    def __init__(self, env: CellEnv):
        self.env = env

    def __call__(self, step: BuildStep) -> bool:
        return bool(self.env.pgpass_offers(step.build))


@lru_cache(maxsize=64)
def _pgpass_step(env: CellEnv) -> BuildStep:
    """The cell's PostgreSQL passwords, in a file only the worker's user can read."""
    return steps.StringDownload(
        PgPassFile(env),
        workerdest=PGPASS_FILE,
        workdir=".",
        mode=0o600,
        name="pgpass",
        doStepIf=_HasPgPass(env),
        hideStepIf=True,
        haltOnFailure=True,
    )


@lru_cache(maxsize=64)
def _pgpass_removal(env: CellEnv) -> BuildStep:
    return UtilStep(
        name="remove_pgpass",
        command=["rm", "-f", "--", PGPASS_FILE],
        workdir=".",
        env=SOURCE_ENV,
        exports=(),
        doStepIf=_HasPgPass(env),
        hideStepIf=True,
        alwaysRun=True,
        haltOnFailure=False,
        flunkOnFailure=False,
        warnOnFailure=True,
    )


@lru_cache(maxsize=1024)
def _bootstrap(env: CellEnv, python: str, spec: str, timeout: int) -> BuildStep:
    return UtilStep(
        name="bootstrap",
        command=util_argv(
            "bootstrap",
            "--venv",
            util.Interpolate(CACHE + "/venv-%(prop:py_version:-default)s"),
            "--python",
            util.Interpolate("%(prop:anybox_python:-" + python + ")s"),
            "--buildout-version",
            spec,
        ),
        workdir=".",
        env=env,
        exports=("buildout_bin",),
        haltOnFailure=True,
        timeout=timeout,
    )


def _cell_properties(env: CellEnv) -> Any:
    """Expose the worker's chosen offers as properties: ``anybox_pg_*``, ``anybox_python``."""

    @util.renderer
    def render(props: Any) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for offer in env.selected_offers(props):
            options = offer.get("options") or {}
            if offer["name"] == "postgresql":
                for key in ("host", "port", "user"):
                    if options.get(key):
                        result.setdefault(f"anybox_pg_{key}", options[key])
            elif offer["name"] == "python" and (options.get("cmd") or offer.get("version")):
                result["anybox_python"] = options.get("cmd") or f"python{offer['version']}"
        return result

    return render


__all__ = ["BUILDOUT_CACHE_LOCK", "TESTING_DB", "make_factory"]
