"""The glue between Buildbot's events, its data API and :mod:`.aggregate`.

The aggregate reporters react to the same build request and build events as the cell reporters.
On each event they ask the data API for the build requests of the event's buildset (and their
builds), merge them into the per-revision cell results they keep in memory (so that a cell forced
or rebuilt later for the same revision counts too), and post the aggregate when it changes.
They subclass the forge's cell reporter (see :mod:`.forges`) and hand it a synthetic build, so
the repository detection (``project`` as ``owner/name`` or the repository URL), the
authentication and the state vocabulary stay Buildbot's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from buildbot import config
from buildbot.data import resultspec
from buildbot.reporters.generators.build import BuildStartEndStatusGenerator
from buildbot.reporters.generators.buildrequest import BuildRequestGenerator
from buildbot.reporters.message import MessageFormatterRenderable
from twisted.internet import defer
from twisted.python import log

from .aggregate import (
    MAX_REVISIONS,
    RETRY,
    BuildoutCells,
    CellState,
    RevisionKey,
    aggregate_context,
    revision_key,
    state_of_build,
)

__all__ = ["BuildoutAggregateMixin", "status_generators"]

if TYPE_CHECKING:
    from buildbot.util.service import BuildbotService

    _MixinBase: Any = BuildbotService
else:
    _MixinBase = object


def status_generators(builders: Sequence[str]) -> list[Any]:
    """Report generators for the build requests and builds of ``builders``: pending, running,
    done."""
    names = sorted(set(builders))
    return [
        BuildRequestGenerator(builders=names, formatter=MessageFormatterRenderable("pending")),
        BuildStartEndStatusGenerator(
            builders=names,
            start_formatter=MessageFormatterRenderable("running"),
            end_formatter=MessageFormatterRenderable("done"),
        ),
    ]


class BuildoutAggregateMixin(_MixinBase):
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
            kwargs.setdefault("generators", status_generators(builders))
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
        kwargs.setdefault("generators", status_generators(builders))
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
                    state = state_of_build(brid, latest)
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
        self.cells.update(revision, name, state_of_build(brid, build))
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
