"""Release step sets: the continuous version of a build, and the upgrade test.

- :func:`version_steps` runs ``build_utils/version.py`` in the buildout's checkout: the
  build gets ``release_version`` (the nearest version tag plus the commits since it, or
  ``0.0.N``), ``release_tag`` and ``release_distance``. Build output is untrusted (the tag
  names come from the repository), so each value must match a strict rule before it
  becomes a property, and :class:`VersionStep` sets no other property;
- :func:`upgrade_test` (``post-buildout-steps = upgrade-test``) checks out the last release
  beside the build (``upgrade-from/``), runs its buildout, installs ``odoo-addons`` with it
  into the test database (unless a db step already filled it, e.g. a restored dump), then
  updates them with the code under test and runs their tests. A failing migration script is
  named with its module (:class:`UpgradeStep`).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import steps, util
from buildbot.process import logobserver
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS
from twisted.internet import defer
from zope.interface import implementer

from ..core import schema
from ..core import stepset_catalogue as catalogue
from ..core.model import Buildout
from .buildsteps import BUILDOUT_CACHE_LOCK, WORKER_SECRET_ENV, UtilStep
from .cells import CellTrigger, Triggerable
from .stepset_registry import TESTING_DB, EnvWith, StepContext, StepSet, util_argv

#: the buildout types whose checkout has a history to count commits in
VERSIONED_TYPES = {"git": "git", "gittag": "git", "hg": "hg", "hgtag": "hg"}
#: where Buildbot and build_utils check the buildout out, in the builder's folder
CHECKOUT = "build"
#: where the upgrade test checks out the release it upgrades from
UPGRADE_DIR = "upgrade-from"

#: what each property printed by version.py must look like to be kept
RELEASE_RULES = {
    "release_version": re.compile(r"\d[0-9A-Za-z.+_-]{0,63}\Z"),
    "release_tag": re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._/+@-]{0,199})?\Z"),
    "release_distance": re.compile(r"\d{1,9}\Z"),
}


def release_value(name: str, value: str) -> str | None:
    """``value`` when it may become the property ``name``, else None."""
    rule = RELEASE_RULES.get(name)
    if rule is None or not rule.match(value):
        return None
    if name == "release_tag" and (".." in value or value.endswith((".lock", "/"))):
        return None
    return value


class _ReleaseObserver(logobserver.LogLineObserver):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def outLineReceived(self, line: str) -> None:
        key, sep, value = line.partition("=")
        if sep and key in RELEASE_RULES:
            checked = release_value(key, value.strip())
            if checked is not None:
                self.values[key] = checked
            else:
                self.values.pop(key, None)  # a bad value never leaves an older good one


class VersionStep(UtilStep):
    """Runs ``version.py``; sets the ``release_*`` properties it printed, if well-formed."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("exports", ())
        super().__init__(**kwargs)
        self.release = _ReleaseObserver()
        self.addLogObserver("stdio", self.release)

    @defer.inlineCallbacks
    def run(self) -> Any:
        result = yield super().run()
        values = self.release.values
        if result == SUCCESS and "release_version" not in values:
            yield self.addCompleteLog("refused", "version.py printed no valid release_version\n")
            return FAILURE
        for key, value in values.items():
            self.setProperty(key, int(value) if key == "release_distance" else value, self.name)
        return result


def version_steps(ctx: StepContext) -> list[BuildStep]:
    """``release_version`` of a git or hg buildout (none for other types)."""
    vcs = VERSIONED_TYPES.get(ctx.buildout.source.type)
    if vcs is None:
        return []
    return [
        VersionStep(
            name="release_version",
            command=ctx.util_argv(
                "version",
                "--vcs",
                vcs,
                f"--pattern={ctx.get(schema.RELEASE_TAG_PATTERN)}",
                "--",
                CHECKOUT,
            ),
            workdir=".",
            env=ctx.env,
            # the version names artefacts; without it the tests still run (build: warnings)
            haltOnFailure=False,
            flunkOnFailure=False,
            warnOnFailure=True,
            timeout=ctx.get(schema.TEST_TIMEOUT),
        )
    ]


# ---------------------------------------------------------------- upgrade test

#: Odoo (8 to 18) logs ``module NAME: Running migration [VERSION] STAGE`` before each script
MIGRATION_RE = re.compile(r"\bmodule (?P<module>[\w.]+): Running migration\b")
#: Odoo's failing module during an update: ``... odoo.modules.loading: ... module NAME``
LOADING_RE = re.compile(r"\bLoading module (?P<module>\w+) \(\d+/\d+\)")


class _ModuleObserver(logobserver.LogLineObserver):
    """The module Odoo was migrating (or loading) last, as the log says."""

    def __init__(self) -> None:
        super().__init__()
        self.migrating: str | None = None
        self.loading: str | None = None

    def outLineReceived(self, line: str) -> None:
        if match := MIGRATION_RE.search(line):
            self.migrating = match["module"]
        elif match := LOADING_RE.search(line):
            self.loading = match["module"]
            self.migrating = None  # its migrations ran: a later failure is not theirs


class UpgradeStep(UtilStep):
    """The update with the code under test: on failure the summary names the module whose
    migration was running (or that was loading) when Odoo stopped."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.modules = _ModuleObserver()
        self.addLogObserver("stdio", self.modules)

    @defer.inlineCallbacks
    def run(self) -> Any:
        result = yield super().run()
        self.failed = result != SUCCESS
        return result

    def getResultSummary(self) -> dict[str, str]:
        summary = super().getResultSummary()
        if not getattr(self, "failed", False):
            return summary
        text = summary.get("step", "failed")
        if self.modules.migrating:
            text = f"migration of {self.modules.migrating} failed: {text}"
        elif self.modules.loading:
            text = f"update failed in module {self.modules.loading}: {text}"
        return {**summary, "step": text[:250]}


def _fetch_release(ctx: StepContext, vcs: str) -> BuildStep:
    chosen = ctx.get(schema.UPGRADE_TEST_FROM)
    revision: Any = chosen or util.Property("release_tag", default="")
    return _ReleaseFetch(
        name="upgrade_fetch_release",
        command=ctx.util_argv(
            "fetch",
            vcs,
            "--url",
            util.Interpolate("%(prop:builddir)s/" + CHECKOUT),
            "--dest",
            UPGRADE_DIR,
            util.Interpolate("--revision=%(kw:rev)s", rev=revision),
        ),
        workdir=".",
        env=ctx.env,
        exports=(),
        haltOnFailure=True,
        timeout=ctx.get(schema.BUILDOUT_TIMEOUT),
    )


class _ReleaseFetch(UtilStep):
    """The fetch of the release; without a version tag there is nothing to upgrade from."""

    @defer.inlineCallbacks
    def run(self) -> Any:
        command = self.command if isinstance(self.command, list) else []
        last = str(command[-1]) if command else ""
        if last == "--revision=":
            yield self.addCompleteLog(
                "no release",
                "No tag of the checkout matches release.tag-pattern, and upgrade-test.from is "
                "not set: there is no release to upgrade from.\n",
            )
            self.descriptionDone = ["no release to upgrade from (no version tag)"]
            return FAILURE
        result = yield super().run()
        return result


def _odoo_argv(ctx: StepContext, log: str, command: list[Any]) -> list[Any]:
    return ctx.util_argv("odoo_log", "run", "--log", log, "--", *command)


def upgrade_test(ctx: StepContext) -> list[BuildStep]:
    """Install the last release, update it with the code under test, run the tests."""
    addons = ",".join(ctx.get(schema.ODOO_ADDONS))
    # a db step that fills the database (a restored dump) gives the data to upgrade
    filled = any(name != catalogue.SIMPLE_CREATE.name for name in _db_step_names(ctx))
    result = [] if filled else _install_release(ctx, addons)
    scripts = ctx.get(schema.TEST_COMMAND)
    test: list[Any] = list(scripts[0]) if scripts else [f"bin/test_{ctx.part}"]
    test += ["-u", addons, "-d", TESTING_DB]
    tags = ctx.get(schema.ODOO_TEST_TAGS)
    if tags:
        test.append(f"--test-tags={tags}")
    if ctx.get(schema.ODOO_USE_PORT):
        test.append("--http-port=0")
    result.append(
        UpgradeStep(
            name="upgrade_test",
            command=_odoo_argv(ctx, "upgrade.log", test),
            workdir=ctx.workdir,
            env=ctx.env,
            haltOnFailure=True,
            timeout=ctx.get(schema.TEST_TIMEOUT),
            exports=(),
            logfiles={"upgrade_log": "upgrade.log"},
        )
    )
    return result


def _install_release(ctx: StepContext, addons: str) -> list[BuildStep]:
    """The release checked out beside the build, built, installed into the test database."""
    vcs = VERSIONED_TYPES.get(ctx.buildout.source.type)
    if vcs is None:
        raise ValueError(
            "step set 'upgrade-test' needs a git or hg buildout (the release is a tag of its "
            f"repository), not {ctx.buildout.source.type!r}, or a db step that fills the "
            "database (db-steps = restore)"
        )
    subdir = ctx.buildout.source.subdir
    old_dir = posixpath.join(UPGRADE_DIR, subdir) if subdir else UPGRADE_DIR
    given = ctx.get(schema.START_COMMAND)
    start: list[str] = list(given) if given else [f"bin/start_{ctx.part}"]
    install: list[Any] = [*start, "-i", addons, "-d", TESTING_DB, "--stop-after-init"]
    if not ctx.get(schema.INSTALL_DEMO_DATA):
        install.append("--without-demo=all")
    if ctx.get(schema.ODOO_USE_PORT):
        install.append("--http-port=0")
    return [
        _fetch_release(ctx, vcs),
        ctx.shell(
            "upgrade_buildout_release",
            list(ctx.buildout_argv),
            workdir=old_dir,
            env=EnvWith(
                ctx.env, (("PIP_EXISTS_ACTION", ctx.get(schema.BUILDOUT_PIP_EXISTS_ACTION)),)
            ),
            timeout=ctx.get(schema.BUILDOUT_TIMEOUT),
            locks=[BUILDOUT_CACHE_LOCK.access("exclusive")],
        ),
        ctx.shell(
            "upgrade_install_release",
            _odoo_argv(ctx, "release-install.log", install),
            workdir=old_dir,
            logfiles={"release_install_log": "release-install.log"},
        ),
    ]


def _db_step_names(ctx: StepContext) -> list[str]:
    """The db step sets of the buildout, by their current names."""
    names = catalogue.BUILTIN.names(schema.DB_STEPS)
    return [names[n].name if n in names else n for n in ctx.get(schema.DB_STEPS)]


STEP_SETS: tuple[tuple[catalogue.StepSetSpec, StepSet], ...] = (
    (catalogue.UPGRADE_TEST, upgrade_test),
)


# ---------------------------------------------------------------- release archives, as shipped

#: the archive taken from the master, in the builder's folder of an ``archive.from`` cell
RELEASE_FILE = "anybox-ci-release.tar.gz"
#: an archive name the master may read: a plain file name, never a path
ARCHIVE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.tar\.gz\Z")
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
#: pip never reaches an index while an ``archive.from`` cell runs its buildout
OFFLINE_PIP: tuple[tuple[str, str | None], ...] = (
    ("PIP_NO_INDEX", "1"),
    ("PIP_CONFIG_FILE", os.devnull),
    ("PIP_FIND_LINKS", None),
    ("PIP_INDEX_URL", None),
    ("PIP_EXTRA_INDEX_URL", None),
    # develop eggs build with the bootstrap's setuptools, not one fetched for isolation
    ("PIP_NO_BUILD_ISOLATION", "0"),
)


def release_scheduler(source: str) -> str:
    """The Triggerable scheduler of the ``archive`` buildouts fed by ``source``."""
    return f"release:{source}"


def archive_name(value: Any) -> str | None:
    """``value`` when it is an archive's plain file name, else None."""
    text = value if isinstance(value, str) else ""
    return text if ARCHIVE_NAME_RE.match(text) and ".." not in text else None


class _SchedulerExists:
    """``doStepIf``: the release has an upload and some ``archive`` buildout to feed."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, step: BuildStep) -> bool:
        known = step.master.scheduler_manager.namedServices
        return self.name in known and bool(step.getProperty("archive_sha256"))


def hidden_when_skipped(results: Any, step: Any) -> bool:
    """``hideStepIf``: a step that had nothing to do stays out of the way."""
    return bool(results == SKIPPED)


def release_trigger(source: str) -> BuildStep:
    """Last step of ``packaging``: start the cells of every ``archive.from = source``
    buildout with the archive's name and SHA-256 (skipped when none exists)."""
    name = release_scheduler(source)
    return CellTrigger(
        name="trigger_archive_tests",
        schedulerNames=[name],
        waitForFinish=False,
        alwaysUseLatest=True,  # the archive is the source: its hash says which
        set_properties={
            "archive_name": util.Property("archive_name"),
            "archive_sha256": util.Property("archive_sha256"),
            "archive_url": util.Property("archive_url", default=""),
            "release_version": util.Property("release_version", default=""),
        },
        doStepIf=_SchedulerExists(name),
        hideStepIf=hidden_when_skipped,
    )


def release_schedulers(
    buildouts: Sequence[Buildout], scheduled: Mapping[str, Sequence[str]]
) -> list[Any]:
    """One Triggerable per buildout named by some ``archive.from``, over the builders of the
    buildouts it feeds (``scheduled``: each buildout's builders, cells or real builder)."""
    fed: dict[str, list[str]] = {}
    for buildout in buildouts:
        source = buildout.get(schema.ARCHIVE_FROM)
        if source and scheduled.get(buildout.name):
            fed.setdefault(source, []).extend(scheduled[buildout.name])
    return [
        Triggerable(name=release_scheduler(source), builderNames=sorted(names))
        for source, names in sorted(fed.items())
    ]


class ReleaseDownload(steps.FileDownload):
    """The archive a release build uploaded, from the master to the worker: only a plain
    file name (``archive_name``) inside the release's upload folder is ever read."""

    def __init__(self, root: str, **kwargs: Any):
        super().__init__(mastersrc=util.Property("archive_name", default=""), **kwargs)
        self.root = root

    @defer.inlineCallbacks
    def run(self) -> Any:
        given: Any = self.mastersrc  # type: ignore[has-type]
        name = archive_name(given)
        path = os.path.join(self.root, name) if name else ""
        real_root = os.path.realpath(os.path.expanduser(self.root))
        real = os.path.realpath(os.path.expanduser(path)) if path else ""
        if not name or os.path.dirname(real) != real_root:
            yield self.addCompleteLog("refused", f"archive_name {str(given)[:200]!r}\n")
            self.descriptionDone = ["refused: not an archive of the release folder"]
            return FAILURE
        self.mastersrc = path
        result = yield super().run()
        return result


@implementer(IRenderable)
class ReleaseFetch:
    """``fetch archive`` of an ``archive.from`` cell: the archive taken from the master and
    its ``--sha256`` when the build was triggered by a release, else the manifest's URL."""

    def __init__(self, url: Any, dest: str):
        self.url, self.dest = url, dest

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        triggered = archive_name(props.getProperty("archive_name"))
        url = RELEASE_FILE if triggered else (yield props.render(self.url))
        argv = util_argv("fetch", "archive", "--url", url, "--dest", self.dest)
        rendered = list((yield props.render(argv)))
        sha256 = props.getProperty("archive_sha256")
        if triggered or sha256:
            # a missing or malformed hash is refused by fetch.py, never skipped
            rendered.append(f"--sha256={str(sha256 or '')[:100]}")
        return rendered


def release_fetch_steps(buildout: Buildout, root: str, dest: str, guard: Any) -> list[BuildStep]:
    """An ``archive.from`` cell's fetch: the exact archive of the release that triggered it,
    checked against its SHA-256 before anything is extracted."""
    return [
        ReleaseDownload(
            root,
            name="download_release",
            workerdest=RELEASE_FILE,
            workdir=".",
            doStepIf=lambda step: bool(archive_name(step.getProperty("archive_name"))),
            hideStepIf=hidden_when_skipped,
            haltOnFailure=True,
        ),
        UtilStep(
            name="fetch_buildout",
            command=ReleaseFetch(util.Interpolate(buildout.source.url), dest),
            workdir=".",
            env={var: None for var in WORKER_SECRET_ENV},
            exports=("got_revision",),
            doStepIf=guard,
            haltOnFailure=True,
        ),
    ]


@implementer(IRenderable)
class OfflineEnv:
    """A cell's environment plus :data:`OFFLINE_PIP` (None removes a variable)."""

    def __init__(self, base: Any, extra: tuple[tuple[str, str | None], ...] = ()):
        self.base, self.extra = base, extra

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        env = dict((yield props.render(self.base)) or {})
        env.update(OFFLINE_PIP)
        env.update(self.extra)
        return env
