"""Buildbot building blocks shared by every step set.

- :class:`CellEnv` renders a cell's environment at build time from the worker that
  runs it, because ports and paths differ from one worker to the next;
- :class:`UtilStep` runs a worker-side ``build_utils`` script and shows its
  ``anybox-ci summary:`` line as the step summary;
- :func:`priority_next_worker` gives a build to the highest-priority free worker.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import util
from buildbot.process import buildstep, logobserver
from buildbot.process.results import FAILURE, SUCCESS
from twisted.internet import defer
from zope.interface import implementer

from ..build_utils.summary import SUMMARY_PREFIX
from ..core.capabilities import CapabilityRegistry
from ..core.versions import Version, VersionFilter

#: worker-side scripts print ``name=value`` lines; these names become these properties
EXPORTED_PROPERTIES = {"got_revision": "got_revision", "buildout": "buildout_bin"}

#: one buildout at a time per worker writes into the shared egg and download caches
BUILDOUT_CACHE_LOCK = util.WorkerLock("anybox-ci buildout caches")

WORKER_CAPS_PROP = "anybox_capabilities"
CELL_VERSIONS_PROP = "anybox_cell_versions"
CELL_REQUIRES_PROP = "anybox_cell_requires"


def _find_offer(
    offers: Sequence[Mapping[str, Any]], name: str, version: str | None, flt: str | None
) -> Mapping[str, Any] | None:
    for offer in offers:
        if offer.get("name") != name:
            continue
        text = offer.get("version") or ""
        if version is not None:
            if text and Version.parse(text) == Version.parse(version):
                return offer
        elif flt is not None:
            parsed = VersionFilter.parse(flt)
            if parsed.is_any or (text and parsed.match(text)):
                return offer
    return None


@implementer(IRenderable)
class CellEnv:
    """The environment of one build: capability variables of the worker's matching offers."""

    def __init__(self, registry: CapabilityRegistry, extra: Mapping[str, Any] | None = None):
        self.registry = registry
        self.extra = dict(extra or {})

    def selected_offers(self, props: Any) -> list[Mapping[str, Any]]:
        offers = props.getProperty(WORKER_CAPS_PROP) or []
        chosen = []
        for name, version in props.getProperty(CELL_VERSIONS_PROP) or []:
            found = _find_offer(offers, name, version, None)
            if found is not None:
                chosen.append(found)
        for name, flt in props.getProperty(CELL_REQUIRES_PROP) or []:
            found = _find_offer(offers, name, None, flt)
            if found is not None and found not in chosen:
                chosen.append(found)
        return chosen

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        env: dict[str, Any] = {}
        prepend: dict[str, list[str]] = {}
        for offer in self.selected_offers(props):
            spec = self.registry.get(offer["name"])
            options = offer.get("options") or {}
            env.update(self.registry.env_for(offer["name"], options))
            for var, key in spec.prepend_env.items():
                if options.get(key):
                    prepend.setdefault(var, []).append(options[key])
            for var, key in spec.secret_env.items():
                if options.get(key):
                    env[var] = yield props.render(util.Secret(options[key]))
        for name, version in props.getProperty(CELL_VERSIONS_PROP) or []:
            env[self.registry.get(name).version_prop.upper()] = version
        for var, paths in prepend.items():
            env[var] = [*paths, "${" + var + "}"]
        for var, value in self.extra.items():
            env[var] = yield props.render(value)
        return env


class _SummaryObserver(logobserver.LogLineObserver):
    def __init__(self) -> None:
        super().__init__()
        self.summary: str | None = None
        self.exported: dict[str, str] = {}

    def outLineReceived(self, line: str) -> None:
        if line.startswith(SUMMARY_PREFIX):
            self.summary = line[len(SUMMARY_PREFIX) :].strip()
            return
        key, sep, value = line.partition("=")
        if sep and key in EXPORTED_PROPERTIES:
            self.exported[EXPORTED_PROPERTIES[key]] = value.strip()


class UtilStep(buildstep.ShellMixin, buildstep.BuildStep):
    """A shell step (argv only) whose summary and exported properties come from its output."""

    def __init__(self, **kwargs: Any):
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)
        self.observer = _SummaryObserver()
        self.addLogObserver("stdio", self.observer)

    @defer.inlineCallbacks
    def run(self) -> Any:
        cmd = yield self.makeRemoteShellCommand()
        yield self.runCommand(cmd)
        for key, value in self.observer.exported.items():
            self.setProperty(key, value, self.name)
        return FAILURE if cmd.didFail() else SUCCESS

    def getResultSummary(self) -> dict[str, str]:
        if self.observer.summary:
            return {"step": self.observer.summary}
        return super().getResultSummary()


def priority_next_worker(priorities: Mapping[str, float]) -> Any:
    """A ``nextWorker`` function: the highest ``priority`` among free workers wins."""

    def next_worker(builder: Any, workers: Sequence[Any], request: Any) -> Any:
        if not workers:
            return None
        best = max(priorities.get(w.worker.workername, 0.0) for w in workers)
        top = [w for w in workers if priorities.get(w.worker.workername, 0.0) == best]
        return random.choice(top)

    return next_worker
