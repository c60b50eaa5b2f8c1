"""Master-side pieces of stacks: the candidate recorder, freeze, promote, install steps.

- :class:`StackRecorder` is a service: each finished green build of a member buildout
  becomes that buildout's newest *unstable* candidate. Its revisions come from the build's
  sourcestamps (the buildout's own codebase falls back on ``got_revision`` when a forced
  build had none, checked by the ``core.vcs`` revision rule); its artefact hash is computed
  here, from the file the build uploaded to the master. Several masters may all see the
  same build: the store keeps one row.
- :class:`FreezeStack` and :class:`PromoteStack` run on the master inside the acceptance
  (and promote) builds; the store makes both atomic.
- :class:`InstallStack` adds, at run time, the steps that put a stack's artefacts (or, for
  a member without one, its pinned sources) on an install-test target.

Database calls block: they run in a thread.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import steps, util
from buildbot.process import buildstep
from buildbot.process.results import FAILURE, SUCCESS
from buildbot.util import service
from twisted.internet import defer, threads
from twisted.python import log
from zope.interface import implementer

from ..core.vcs import check_revision
from ..stacks.export import stack_dict
from ..stacks.model import BUILDOUT_KEY, MEMBERS_KEY, STABLE, Pin
from ..stacks.store import StackError, StackStore, db_url_of, store_for
from .steps_generic import ArchiveName

#: properties of the builds an acceptance run triggers (and of the acceptance build)
STACK_PROP = "anybox_ci_stack"
STACK_DOMAIN_PROP = "anybox_ci_stack_domain"
STACK_JSON_PROP = "anybox_ci_stack_json"
#: the force-form fields of the promote builder
PROMOTE_STACK_FIELD = "stack_number"
PROMOTE_CHANNEL_FIELD = "channel"

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def step_name(text: str) -> str:
    """A step name Buildbot's data API accepts (an identifier), from a buildout's name."""
    return _NOT_IDENTIFIER.sub("_", text)[:50]


def store_of(master: Any) -> StackStore:
    """The stack store of the master's own database."""
    return store_for(db_url_of(master.config.db), Path(master.basedir))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Props(dict[str, Any]):
    def getProperty(self, name: str, default: Any = None) -> Any:  # noqa: N802 - Buildbot's
        return self.get(name, default)


class StackRecorder(service.BuildbotService):
    """Records green builds of member buildouts as their newest *unstable* candidates.

    ``members``: buildout -> {"builders": [...], "codebases": {codebase: [vcs, url, branch]},
    "own": the buildout's own codebase, "artefact": [upload dir, prefix] or []}."""

    name = "anybox-ci-stack-recorder"

    def checkConfig(self, members: Mapping[str, Any]) -> None:  # noqa: N802 - Buildbot's
        pass

    @defer.inlineCallbacks
    def reconfigService(self, members: Mapping[str, Any]) -> Any:  # noqa: N802
        self.members = {k: dict(v) for k, v in members.items()}
        self.by_builder = {b: name for name, v in members.items() for b in v["builders"]}
        yield super().reconfigService()

    @defer.inlineCallbacks
    def startService(self) -> Any:  # noqa: N802
        yield super().startService()
        store = store_of(self.master)
        yield threads.deferToThread(store.create_tables)
        self._consumer = yield self.master.mq.startConsuming(
            self._finished, ("builds", None, "finished")
        )

    @defer.inlineCallbacks
    def stopService(self) -> Any:  # noqa: N802
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.stopConsuming()
            self._consumer = None
        yield super().stopService()

    @defer.inlineCallbacks
    def _finished(self, key: Any, build: Mapping[str, Any]) -> Any:
        try:
            yield self.record(build)
        except Exception as exc:  # a recorder must not break the master
            log.msg(f"anybox-ci: stacks: cannot record build {build.get('buildid')}: {exc!r}")

    @defer.inlineCallbacks
    def record(self, build: Mapping[str, Any]) -> Any:
        if build.get("results") != SUCCESS:
            return None
        builder = yield self.master.data.get(("builders", build["builderid"]))
        name = self.by_builder.get(builder["name"]) if builder else None
        if name is None:
            return None
        props = yield self.master.data.get(("builds", build["buildid"], "properties"))
        values = {k: v[0] for k, v in (props or {}).items()}
        if values.get(STACK_PROP) is not None:
            return None  # an acceptance run of a stack: it tests old candidates
        member = self.members[name]
        request = yield self.master.data.get(("buildrequests", build["buildrequestid"]))
        buildset = yield self.master.data.get(("buildsets", request["buildsetid"]))
        pins = self.pins(member, buildset.get("sourcestamps") or [], values.get("got_revision"))
        artefact, sha = yield threads.deferToThread(self.artefact, member, values)
        url = f"{self.master.config.buildbotURL}#/builders/{build['builderid']}/builds/"
        url += str(build["number"])
        store = store_of(self.master)
        candidate = yield threads.deferToThread(
            store.record_candidate,
            name,
            pins,
            str(values.get("release_version") or ""),
            artefact,
            sha,
            url,
        )
        log.msg(f"anybox-ci: stacks: [{name}] unstable candidate {candidate.id} from {url}")
        return candidate

    @staticmethod
    def pins(member: Mapping[str, Any], stamps: Sequence[Mapping[str, Any]], got: Any) -> list[Pin]:
        """One pin per codebase of the buildout with a known, well-formed revision."""
        by_codebase = {s.get("codebase") or "": s for s in stamps}
        found = []
        for codebase, (vcs, url, branch) in sorted(member["codebases"].items()):
            revision = str((by_codebase.get(codebase) or {}).get("revision") or "")
            if not revision and codebase == member["own"]:
                revision = str(got.get(codebase, "") if isinstance(got, dict) else got or "")
            if not revision or check_revision(vcs, revision) is not None:
                continue
            found.append(Pin(codebase, url, branch, revision, vcs))
        return found

    def artefact(self, member: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[str, str]:
        """The release archive this build uploaded to the master, and its SHA-256."""
        if not member.get("artefact"):
            return "", ""
        folder, prefix = member["artefact"]
        name = ArchiveName(prefix, member["own"]).getRenderingFor(_Props(values))
        relative = posixpath.join(folder, name)
        path = Path(self.master.basedir) / relative
        if not path.is_file():
            return "", ""
        return relative, _sha256_of(path)


class _MasterStep(buildstep.BuildStep):
    """A step that runs on the master, with a one-line summary."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.summary = ""

    def getResultSummary(self) -> dict[str, str]:  # noqa: N802 - Buildbot's
        return {"step": self.summary} if self.summary else super().getResultSummary()

    def who(self) -> str:
        owner = self.getProperty("owner") or ""
        by = f"{owner}" if owner else str(self.getProperty("scheduler") or "scheduler")
        return f"{by} ({self.build.builder.name} #{self.build.number})"

    @defer.inlineCallbacks
    def refuse(self, message: str) -> Any:
        self.summary = message[:200]
        yield self.addCompleteLog("refused", message + "\n")
        return FAILURE


class FreezeStack(_MasterStep):
    """Freeze the domain's *unstable* candidates into a new stack, moved to *testing*."""

    def __init__(self, domain: str, members: Sequence[str], **kwargs: Any):
        kwargs.setdefault("name", "freeze")
        super().__init__(**kwargs)
        self.domain = domain
        self.members = list(members)

    @defer.inlineCallbacks
    def run(self) -> Any:
        store = store_of(self.master)
        try:
            stack = yield threads.deferToThread(store.freeze, self.domain, self.members, self.who())
        except StackError as exc:
            result = yield self.refuse(str(exc))
            return result
        self.setProperty(STACK_PROP, stack.number, "freeze")
        self.setProperty(STACK_DOMAIN_PROP, self.domain, "freeze")
        self.setProperty(STACK_JSON_PROP, json.dumps(stack_dict(stack)), "freeze")
        text = "\n".join(
            f"{m.buildout} {m.release_version} "
            + " ".join(f"{p.codebase}@{p.revision[:12]}" for p in m.pins)
            for m in stack.members
        )
        yield self.addCompleteLog("stack", text + "\n")
        self.summary = f"stack {stack.number} frozen, in testing"
        return SUCCESS


class PromoteStack(_MasterStep):
    """Promote the build's stack to ``channel`` (acceptance: *stable*); the promote
    builder takes both from its force form."""

    def __init__(self, domain: str, channel: str = STABLE, **kwargs: Any):
        kwargs.setdefault("name", "promote")
        super().__init__(**kwargs)
        self.domain = domain
        self.channel = channel

    @defer.inlineCallbacks
    def run(self) -> Any:
        number = self.getProperty(PROMOTE_STACK_FIELD) or self.getProperty(STACK_PROP)
        channel = str(self.getProperty(PROMOTE_CHANNEL_FIELD) or self.channel)
        try:
            number = int(number)
        except (TypeError, ValueError):
            result = yield self.refuse(f"no stack number to promote: {str(number)[:50]!r}")
            return result
        note = str(self.getProperty("reason") or "")[:200]
        store = store_of(self.master)
        try:
            move = yield threads.deferToThread(
                store.promote, self.domain, number, channel, self.who(), note
            )
        except StackError as exc:
            result = yield self.refuse(str(exc))
            return result
        before = f" (was {move.previous})" if move.previous is not None else ""
        self.summary = f"stack {number} promoted to {channel}{before}"
        return SUCCESS


@implementer(IRenderable)
class StackStamps:
    """The sourcestamps of a stack's pins (of some members, or all), from the build's
    stack property: what a Trigger hands to the builds it starts."""

    def __init__(self, members: Sequence[str] | None = None):
        self.members = None if members is None else set(members)

    def getRenderingFor(self, props: Any) -> list[dict[str, str]]:  # noqa: N802
        data = json.loads(props.getProperty(STACK_JSON_PROP) or "{}")
        stamps: dict[str, dict[str, str]] = {}
        for member in data.get(MEMBERS_KEY, []):
            if self.members is not None and member[BUILDOUT_KEY] not in self.members:
                continue
            for pin in member["revisions"]:
                stamps.setdefault(
                    pin["codebase"],
                    {
                        "codebase": pin["codebase"],
                        "repository": pin["repository"],
                        "branch": pin["branch"],
                        "revision": pin["revision"],
                        "project": "",
                    },
                )
        return [stamps[k] for k in sorted(stamps)]


def stack_trigger(name: str, scheduler: str, domain: str, members: Sequence[str] | None) -> Any:
    """A Trigger starting ``scheduler``'s builders on the stack's pinned revisions."""
    return steps.Trigger(
        name=name,
        schedulerNames=[scheduler],
        sourceStamps=StackStamps(members),
        waitForFinish=True,
        haltOnFailure=True,
        set_properties={
            STACK_PROP: util.Property(STACK_PROP),
            STACK_DOMAIN_PROP: domain,
            STACK_JSON_PROP: util.Property(STACK_JSON_PROP),
        },
    )


class InstallStack(_MasterStep):
    """On an install-test target: the steps fetching each member of the stack, added now
    that the stack is known. An artefact comes from the master and must match the hash
    recorded in the stack; a member without one is checked out at its pinned revisions."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("name", "install_stack")
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        data = json.loads(self.getProperty(STACK_JSON_PROP) or "{}")
        if not data.get(MEMBERS_KEY):
            result = yield self.refuse("no stack to install: start this builder from acceptance")
            return result
        added: list[Any] = [
            steps.StringDownload(
                json.dumps(data, indent=2) + "\n", workerdest="stack.json", name="stack_json"
            )
        ]
        for member in data[MEMBERS_KEY]:
            name = member[BUILDOUT_KEY]
            if member.get("artefact"):
                archive = f"{name}.tar.gz"
                added += [
                    steps.FileDownload(
                        name=step_name(f"download_{name}"),
                        mastersrc=str(Path(self.master.basedir) / member["artefact"]),
                        workerdest=archive,
                        haltOnFailure=True,
                    ),
                    steps.StringDownload(
                        f"{member['artefact_sha256']}  {archive}\n",
                        workerdest=f"{archive}.sha256",
                        name=step_name(f"expected_hash_{name}"),
                    ),
                    steps.ShellCommand(
                        name=step_name(f"check_hash_{name}"),
                        command=["sha256sum", "--check", "--strict", "--", f"{archive}.sha256"],
                        haltOnFailure=True,
                    ),
                    steps.ShellCommand(
                        name=step_name(f"unpack_{name}"),
                        command=["mkdir", "-p", "--", name],
                        haltOnFailure=True,
                    ),
                    steps.ShellCommand(
                        name=step_name(f"extract_{name}"),
                        command=["tar", "-xzf", archive, "-C", name],
                        haltOnFailure=True,
                    ),
                ]
            else:
                pins = member["revisions"]
                for pin in pins:
                    # one codebase: the member's folder; several: one folder each inside it
                    folder = name if len(pins) == 1 else f"{name}/{pin['codebase']}"
                    added.append(
                        steps.ShellCommand(
                            name=step_name(f"clone_{name}_{len(added)}"),
                            command=[
                                "git",
                                "clone",
                                "-q",
                                "--",
                                pin["repository"],
                                folder,
                            ],
                            haltOnFailure=True,
                        )
                    )
                    added.append(
                        steps.ShellCommand(
                            name=step_name(f"checkout_{name}_{len(added)}"),
                            command=["git", "checkout", "-q", "--detach", pin["revision"], "--"],
                            workdir=f"build/{folder}",
                            haltOnFailure=True,
                        )
                    )
        yield self.build.addStepsAfterCurrentStep(added)
        self.summary = f"installing stack {data.get('number')}: {len(data[MEMBERS_KEY])} member(s)"
        return SUCCESS
