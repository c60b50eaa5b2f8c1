"""Buildbot building blocks shared by every step set.

- :class:`CellEnv` renders a cell's environment at build time from the worker that
  runs it, because ports and paths differ from one worker to the next;
- :class:`PgPassFile` is the content of the cell's private password file: PostgreSQL
  passwords reach libpq through ``PGPASSFILE``, never through the environment, which the
  worker writes to its ``twistd.log`` and to every step's log header;
- :class:`UtilStep` runs a worker-side ``build_utils`` script and shows its
  ``anybox-ci summary:`` line as the step summary;
- :func:`priority_next_worker` gives a build to the highest-priority free worker.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Mapping, Sequence
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
#: what an exported value must look like: build output is untrusted (a test may print
#: ``got_revision=/../../x``), so a value that is not a plain token is never a property
_EXPORT_RULES = {
    "got_revision": re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}\Z"),
    "buildout_bin": re.compile(r"/[^\x00-\x1f\x7f]{1,4095}\Z"),
}

#: variables a worker's own environment may hold that no step may see (or log): the
#: update-mirrors hook password (``changes.delivery.SECRET_ENV``)
WORKER_SECRET_ENV = ("ANYBOX_CI_HOOK_SECRET",)
#: environment variables whose secret goes into the cell's password file instead
PGPASS_VARS = {"PGPASSWORD"}
#: the cell's password file, in the builder's folder on the worker
PGPASS_FILE = ".anybox-ci-pgpass"

#: one buildout at a time per worker writes into the shared egg and download caches
BUILDOUT_CACHE_LOCK = util.WorkerLock("anybox-ci buildout caches")

WORKER_CAPS_PROP = "anybox_capabilities"
#: the stack number of a build that a domain's acceptance run started (see ``steps_stacks``)
STACK_PROP = "anybox_ci_stack"
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

    def pgpass_offers(self, props: Any) -> list[tuple[Mapping[str, Any], str]]:
        """(offer, secret name) of each selected offer whose password goes to the file."""
        found = []
        for offer in self.selected_offers(props):
            options = offer.get("options") or {}
            for var, key in self.registry.get(offer["name"]).secret_env.items():
                if var in PGPASS_VARS and options.get(key):
                    found.append((offer, options[key]))
        return found

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        env: dict[str, Any] = {var: None for var in WORKER_SECRET_ENV}
        prepend: dict[str, list[str]] = {}
        for offer in self.selected_offers(props):
            spec = self.registry.get(offer["name"])
            options = offer.get("options") or {}
            env.update(self.registry.env_for(offer["name"], options))
            for var, key in spec.prepend_env.items():
                if options.get(key):
                    prepend.setdefault(var, []).append(options[key])
            for var, key in spec.secret_env.items():
                if options.get(key) and var in PGPASS_VARS:
                    builddir = props.getProperty("builddir") or "."
                    env["PGPASSFILE"] = f"{builddir}/{PGPASS_FILE}"
                    env[var] = None  # nor one inherited from the worker's environment
                elif options.get(key):
                    env[var] = yield props.render(util.Secret(options[key]))
        for name, version in props.getProperty(CELL_VERSIONS_PROP) or []:
            env[self.registry.get(name).version_prop.upper()] = version
        for var, paths in prepend.items():
            env[var] = [*paths, "${" + var + "}"]
        for var, value in self.extra.items():
            env[var] = yield props.render(value)
        return env


def pgpass_line(port: str, password: str) -> str:
    """One ``.pgpass`` line for any host, database and user on ``port`` (``*``: any)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace(":", "\\:")

    if "\n" in password or "\r" in password:
        raise ValueError("a PostgreSQL password cannot hold a line break")
    return f"*:{escape(port) if port else '*'}:*:*:{escape(password)}\n"


@implementer(IRenderable)
class PgPassFile:
    """The content of the cell's ``PGPASSFILE``: a line per selected offer with a password.

    Rendered on the master from Buildbot secrets and sent to the worker as a file (mode
    600), so the password is in no command line, environment or log."""

    def __init__(self, env: CellEnv):
        self.env = env

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        lines = []
        for offer, secret in self.env.pgpass_offers(props):
            password = yield props.render(util.Secret(secret))
            port = str((offer.get("options") or {}).get("port") or "")
            lines.append(pgpass_line(port, password))
        return "".join(lines)


def uses_pgpass(registry: CapabilityRegistry, offers: Sequence[Any]) -> bool:
    """Whether one of these offers (``core.model.Offer``) has a password for the file."""
    for offer in offers:
        for var, key in registry.get(offer.name).secret_env.items():
            if var in PGPASS_VARS and offer.options.get(key):
                return True
    return False


class _SummaryObserver(logobserver.LogLineObserver):
    def __init__(self, exports: Collection[str]) -> None:
        super().__init__()
        self.summary: str | None = None
        self.exports = exports
        self.exported: dict[str, str] = {}

    def outLineReceived(self, line: str) -> None:
        if line.startswith(SUMMARY_PREFIX):
            self.summary = line[len(SUMMARY_PREFIX) :].strip()
            return
        key, sep, value = line.partition("=")
        name = EXPORTED_PROPERTIES.get(key) if sep else None
        if name and name in self.exports:
            value = value.strip()
            rule = _EXPORT_RULES.get(name)
            if rule is None or rule.match(value):
                self.exported[name] = value


class UtilStep(buildstep.ShellMixin, buildstep.BuildStep):
    """A shell step (argv only) whose summary and exported properties come from its output.

    ``exports`` names the properties of :data:`EXPORTED_PROPERTIES` this step may set
    (default: all; the steps running a manifest's commands pass none, so a test printing
    ``got_revision=...`` changes nothing)."""

    def __init__(self, exports: Collection[str] | None = None, **kwargs: Any):
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)
        chosen = EXPORTED_PROPERTIES.values() if exports is None else exports
        self.observer = _SummaryObserver(frozenset(chosen))
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


class PriorityNextWorker:
    """A ``nextWorker`` function: the highest ``priority`` among free workers wins.

    Equal when the priorities are, so that a reconfig can keep a builder config made
    with an equal one (see ``render.memo``)."""

    def __init__(self, priorities: Mapping[str, float]):
        self.priorities = dict(priorities)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriorityNextWorker) and other.priorities == self.priorities

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.priorities.items())))

    def __call__(self, builder: Any, workers: Sequence[Any], request: Any) -> Any:
        if not workers:
            return None
        priorities = self.priorities
        best = max(priorities.get(w.worker.workername, 0.0) for w in workers)
        top = [w for w in workers if priorities.get(w.worker.workername, 0.0) == best]
        return random.choice(top)


def priority_next_worker(priorities: Mapping[str, float]) -> PriorityNextWorker:
    """A ``nextWorker`` function: the highest ``priority`` among free workers wins."""
    return PriorityNextWorker(priorities)
