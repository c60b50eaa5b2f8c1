"""Commit statuses per buildout on GitHub, GitLab or Gitea.

:func:`status_reporters` gives, for one buildout, the ``c['services']`` entries that post:

1. one status per cell (context: the builder name), with Buildbot's own
   ``GitHubStatusPush`` / ``GitLabStatusPush``, or :class:`GiteaStatusPush` (Buildbot has no Gitea
   reporter in core; Gitea's status API is GitHub's, under ``/api/v1``);
2. one aggregate status per buildout and revision under the stable context
   ``anybox-ci/<buildout>``, meant for branch protection: pending while a cell of the buildout
   is pending or running for that revision, failure (GitLab: ``failed``; GitHub and Gitea:
   ``error`` for exceptions and cancellations) when all are done and one did not pass,
   success when all passed.

The aggregate reporters react to the same build request and build events as the cell reporters.
On each event they ask the data API for the build requests of the event's buildset (and their
builds), merge them into the per-revision cell results they keep in memory (so that a cell forced
or rebuilt later for the same revision counts too), and post the aggregate when it changes.
They subclass the forge's cell reporter and hand it a synthetic build, so the repository
detection (``project`` as ``owner/name`` or the repository URL), the authentication and the state
vocabulary stay Buildbot's.

The token must be a Buildbot secret (``util.Secret('name')`` or
``util.Interpolate('%(secret:name)s')``): it is rendered only for the HTTP header, never stored
in build properties or written to logs.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from buildbot import config
from buildbot.data import resultspec
from buildbot.interfaces import IRenderable
from buildbot.process.properties import Interpolate
from buildbot.process.results import (
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
    worst_status,
)
from buildbot.reporters.generators.build import BuildStartEndStatusGenerator
from buildbot.reporters.generators.buildrequest import BuildRequestGenerator
from buildbot.reporters.github import GitHubStatusPush
from buildbot.reporters.gitlab import GitLabStatusPush
from buildbot.reporters.message import MessageFormatterRenderable
from buildbot.util.service import BuildbotService
from twisted.internet import defer
from twisted.python import log

__all__ = [
    "AGGREGATE_CONTEXT_PREFIX",
    "FORGES",
    "BuildoutCells",
    "CellState",
    "GitHubBuildoutStatusPush",
    "GitLabBuildoutStatusPush",
    "GiteaBuildoutStatusPush",
    "GiteaStatusPush",
    "aggregate_context",
    "status_reporters",
]

FORGES = ("github", "gitlab", "gitea")
AGGREGATE_CONTEXT_PREFIX = "anybox-ci/"
#: Results that let a cell count as passed.
PASSED = frozenset({SUCCESS, WARNINGS, SKIPPED})
#: Revisions remembered per aggregate reporter; the oldest are forgotten first.
MAX_REVISIONS = 512
#: Forges cut descriptions (GitHub: 140 characters).
MAX_DESCRIPTION = 140

RevisionKey = tuple[tuple[str, str, str], ...]


def aggregate_context(buildout: str) -> str:
    """The stable status name of a buildout's aggregate: ``anybox-ci/<buildout>``."""
    return AGGREGATE_CONTEXT_PREFIX + buildout


# -- Gitea ------------------------------------------------------------------------------------


class GiteaStatusPush(GitHubStatusPush):
    """Commit statuses on Gitea (and Forgejo).

    Gitea serves GitHub's commit status API (``POST /repos/{owner}/{repo}/statuses/{sha}``,
    states ``pending``, ``success``, ``error``, ``failure``, ``Authorization: token ...``) under
    ``/api/v1``, so this is Buildbot's GitHub reporter pointed there. ``baseURL`` is the Gitea
    root URL (``https://gitea.example.com``) and is required.
    """

    name: str | None = "GiteaStatusPush"

    def checkConfig(
        self, token: Any, context: Any = None, baseURL: str | None = None, *args: Any, **kwargs: Any
    ) -> None:
        if not baseURL:
            config.error(f"{type(self).__name__}: baseURL (the Gitea root URL) is required")
        super().checkConfig(token, context, baseURL, *args, **kwargs)

    def reconfigService(
        self, token: Any, context: Any = None, baseURL: str | None = None, *args: Any, **kwargs: Any
    ) -> defer.Deferred[None]:
        return super().reconfigService(
            token, context, _gitea_api_url(baseURL or ""), *args, **kwargs
        )


def _gitea_api_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


# -- per-revision cell results ------------------------------------------------------------------


@dataclass(frozen=True)
class CellState:
    """What is known of one cell (builder) for one revision: its latest build request."""

    buildrequestid: int
    started: bool = False
    complete: bool = False
    results: int | None = None

    def merge(self, other: CellState) -> CellState:
        """A newer build request replaces the state (a rebuild makes the cell pending again);
        for the same request, knowledge only grows (events may arrive after a fresher query)."""
        if other.buildrequestid != self.buildrequestid:
            return other if other.buildrequestid > self.buildrequestid else self
        if self.complete:
            return self
        if other.complete:
            return other
        return replace(self, started=self.started or other.started)


@dataclass(frozen=True)
class Aggregate:
    complete: bool
    results: int | None
    started: bool
    description: str


class BuildoutCells:
    """The cell results of one buildout, per revision (a key of its sourcestamps)."""

    def __init__(self, builders: Iterable[str], max_revisions: int = MAX_REVISIONS) -> None:
        self.builders = frozenset(builders)
        self.max_revisions = max_revisions
        self._revisions: OrderedDict[RevisionKey, dict[str, CellState]] = OrderedDict()

    def update(self, revision: RevisionKey, builder: str, state: CellState) -> None:
        if builder not in self.builders:
            return
        cells = self._revisions.setdefault(revision, {})
        self._revisions.move_to_end(revision)
        old = cells.get(builder)
        cells[builder] = state if old is None else old.merge(state)
        while len(self._revisions) > self.max_revisions:
            self._revisions.popitem(last=False)

    def cells(self, revision: RevisionKey) -> dict[str, CellState]:
        return dict(self._revisions.get(revision, {}))

    def aggregate(self, revision: RevisionKey) -> Aggregate | None:
        cells = self._revisions.get(revision)
        if not cells:
            return None
        total = len(cells)
        done = {name: c for name, c in cells.items() if c.complete}
        not_passed = sorted(name for name, c in done.items() if c.results not in PASSED)
        if len(done) < total:
            text = f"{len(done)}/{total} cells done"
            if not_passed:
                text += ", not passed: " + ", ".join(not_passed)
            started = any(c.started for c in cells.values())
            return Aggregate(False, None, started, _cut(text))
        results = functools.reduce(worst_status, (c.results for c in done.values()))
        if not_passed:
            text = f"{len(not_passed)}/{total} cells not passed: " + ", ".join(
                f"{name} ({_result_name(cells[name].results)})" for name in not_passed
            )
        else:
            text = f"all {total} cells passed"
        return Aggregate(True, results, True, _cut(text))


def _result_name(results: int | None) -> str:
    if results is None or not 0 <= results < len(Results):
        return "unknown"
    return Results[results]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def revision_key(sourcestamps: Sequence[dict[str, Any]]) -> RevisionKey:
    """The revision a buildset is about: its sourcestamps that have a revision."""
    return tuple(
        sorted(
            (ss.get("codebase") or "", ss.get("repository") or "", ss["revision"])
            for ss in sourcestamps
            if ss.get("revision")
        )
    )


def _state_of_build(buildrequestid: int, build: dict[str, Any]) -> CellState:
    results = build.get("results")
    complete = bool(build.get("complete")) and results != RETRY  # a retry is queued again
    return CellState(
        buildrequestid=buildrequestid,
        started=bool(build.get("started_at")) or complete,
        complete=complete,
        results=results if complete else None,
    )


# -- aggregate reporters --------------------------------------------------------------------------

if TYPE_CHECKING:
    _MixinBase: Any = BuildbotService
else:
    _MixinBase = object


class _BuildoutAggregateMixin(_MixinBase):
    """Turns a forge's cell status reporter into the buildout's aggregate reporter.

    Extra constructor arguments: ``buildout`` and ``builders`` (the buildout's cells).
    """

    #: Whether the forge tells "running" from "pending" (only GitLab does).
    reports_running = False

    buildout: str
    _cells: BuildoutCells | None = None
    _posted: dict[RevisionKey, tuple[bool, int | None, bool]]
    _builder_names: dict[int, str]
    _lock: defer.DeferredLock | None = None

    def checkConfig(
        self,
        token: Any,
        context: Any = None,
        baseURL: str | None = None,
        *args: Any,
        buildout: str | None = None,
        builders: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not buildout or not builders:
            config.error(f"{type(self).__name__}: needs a buildout and its builders")
        else:
            kwargs.setdefault("generators", _generators(builders))
        super().checkConfig(
            token, context or aggregate_context(buildout or ""), baseURL, *args, **kwargs
        )

    def reconfigService(
        self,
        token: Any,
        context: Any = None,
        baseURL: str | None = None,
        *args: Any,
        buildout: str | None = None,
        builders: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> defer.Deferred[None]:
        assert buildout and builders, "checked by checkConfig"
        self.buildout = buildout
        if self._cells is None or self._cells.builders != frozenset(builders):
            self._cells = BuildoutCells(builders)
            self._posted = {}
            self._builder_names = {}
        if self._lock is None:
            self._lock = defer.DeferredLock()
        kwargs.setdefault("generators", _generators(builders))
        return super().reconfigService(
            token, context or aggregate_context(buildout), baseURL, *args, **kwargs
        )

    @property
    def cells(self) -> BuildoutCells:
        """The per-revision cell results (set up by ``reconfigService``)."""
        assert self._cells is not None, "set by reconfigService"
        return self._cells

    def sendMessage(self, reports: list[dict[str, Any]]) -> defer.Deferred[None]:
        # One event at a time: the aggregate must be computed and posted in event order.
        assert self._lock is not None, "set by reconfigService"
        return self._lock.run(self._aggregate_and_post, reports[0])

    @defer.inlineCallbacks
    def _builder_name(self, builderid: int) -> Any:
        name = self._builder_names.get(builderid)
        if name is None:
            builder = yield self.master.data.get(("builders", builderid))
            name = builder["name"] if builder else ""
            self._builder_names[builderid] = name
        return name

    @defer.inlineCallbacks
    def _refresh_buildset(self, revision: RevisionKey, bsid: int) -> Any:
        """Merge what the data API knows of the buildset's requests on the buildout's cells."""
        requests = yield self.master.data.get(
            ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bsid])]
        )
        for br in requests:
            name = yield self._builder_name(br["builderid"])
            if name not in self.cells.builders:
                continue
            brid = br["buildrequestid"]
            if br["complete"] and br["results"] != RETRY:
                state = CellState(brid, started=True, complete=True, results=br["results"])
            else:
                builds = yield self.master.data.get(("buildrequests", brid, "builds"))
                if builds:
                    latest = max(builds, key=lambda b: b["buildid"])
                    state = _state_of_build(brid, latest)
                else:
                    state = CellState(brid)
            self.cells.update(revision, name, state)

    @defer.inlineCallbacks
    def _aggregate_and_post(self, report: dict[str, Any]) -> Any:
        build = report["builds"][0]
        buildset = build.get("buildset") or {}
        revision = revision_key(buildset.get("sourcestamps") or [])
        if not revision:
            return None  # nothing to attach a status to
        name = build["builder"]["name"]
        brid = build["buildrequest"]["buildrequestid"]
        self.cells.update(revision, name, _state_of_build(brid, build))
        try:
            yield self._refresh_buildset(revision, buildset["bsid"])
        except Exception as e:  # the event itself is still worth reporting
            log.err(e, f"anybox_ci: reading buildset {buildset.get('bsid')} for statuses")

        summary = self.cells.aggregate(revision)
        if summary is None:
            return None
        key = (
            summary.complete,
            summary.results,
            summary.started and self.reports_running and not summary.complete,
        )
        if self._posted.get(revision) == key:
            return None
        self._posted[revision] = key
        while len(self._posted) > MAX_REVISIONS:
            del self._posted[next(iter(self._posted))]

        synthetic = dict(build)
        synthetic["complete"] = summary.complete
        synthetic["results"] = summary.results
        synthetic["started_at"] = build.get("started_at") if summary.started else None
        if summary.started and not synthetic["started_at"]:
            synthetic["started_at"] = True  # GitLab only tests it for truth
        aggregate_report = dict(report)
        aggregate_report["builds"] = [synthetic]
        aggregate_report["body"] = f"{self.buildout}: {summary.description}"
        aggregate_report["results"] = summary.results
        yield super().sendMessage([aggregate_report])
        return None


class GitHubBuildoutStatusPush(_BuildoutAggregateMixin, GitHubStatusPush):
    """The aggregate status of a buildout on GitHub."""

    name: str | None = "GitHubBuildoutStatusPush"


class GiteaBuildoutStatusPush(_BuildoutAggregateMixin, GiteaStatusPush):
    """The aggregate status of a buildout on Gitea."""

    name: str | None = "GiteaBuildoutStatusPush"


class GitLabBuildoutStatusPush(_BuildoutAggregateMixin, GitLabStatusPush):
    """The aggregate status of a buildout on GitLab (which shows ``running`` too)."""

    name: str | None = "GitLabBuildoutStatusPush"
    reports_running = True


# -- the factory ----------------------------------------------------------------------------------


def _generators(builders: Sequence[str]) -> list[Any]:
    names = sorted(set(builders))
    return [
        BuildRequestGenerator(builders=names, formatter=MessageFormatterRenderable("pending")),
        BuildStartEndStatusGenerator(
            builders=names,
            start_formatter=MessageFormatterRenderable("running"),
            end_formatter=MessageFormatterRenderable("done"),
        ),
    ]


_CELL_CLASSES: dict[str, type[Any]] = {
    "github": GitHubStatusPush,
    "gitlab": GitLabStatusPush,
    "gitea": GiteaStatusPush,
}
_AGGREGATE_CLASSES: dict[str, type[Any]] = {
    "github": GitHubBuildoutStatusPush,
    "gitlab": GitLabBuildoutStatusPush,
    "gitea": GiteaBuildoutStatusPush,
}


def status_reporters(
    forge: str,
    base_url: str,
    token: IRenderable,
    builders: Sequence[str],
    buildout: str,
    *,
    verbose: bool = False,
) -> list[Any]:
    """The ``c['services']`` reporters posting one buildout's commit statuses.

    - ``forge``: ``github``, ``gitlab`` or ``gitea``.
    - ``base_url``: the API root: ``https://api.github.com`` (GitHub Enterprise:
      ``https://HOST/api/v3``), ``https://gitlab.com``, or the Gitea root URL.
    - ``token``: a Buildbot secret, ``util.Secret('name')`` or
      ``util.Interpolate('%(secret:name)s')``; a plain string is refused, so that tokens never
      sit in master.cfg.
    - ``builders``: the buildout's cells. ``buildout``: its name (the aggregate context suffix).

    The target repository comes from each build's sourcestamps, as in Buildbot: ``project``
    written ``owner/name``, or else the repository URL.
    """
    if forge not in FORGES:
        raise ValueError(f"unknown forge {forge!r}: expected one of {', '.join(FORGES)}")
    if not IRenderable.providedBy(token):
        raise ValueError(
            "the forge token must be a Buildbot secret: util.Secret('NAME') or "
            "util.Interpolate('%(secret:NAME)s'), not a string"
        )
    if not builders:
        raise ValueError(f"buildout {buildout!r}: no builders to report on")
    names = sorted(set(builders))
    cell = _CELL_CLASSES[forge](
        token,
        context=Interpolate("%(prop:buildername)s"),
        baseURL=base_url,
        verbose=verbose,
        generators=_generators(names),
        name=f"anybox-ci-status-{forge}-{buildout}-cells",
    )
    aggregate = _AGGREGATE_CLASSES[forge](
        token,
        buildout=buildout,
        builders=names,
        baseURL=base_url,
        verbose=verbose,
        name=f"anybox-ci-status-{forge}-{buildout}",
    )
    return [cell, aggregate]
