"""Master-side pieces of stacks: the candidate recorder, freeze, promote, install steps.

- :class:`StackRecorder` is a service: each finished green build of a member buildout
  becomes that buildout's newest *unstable* candidate. Its revisions come from the build's
  sourcestamps (the buildout's own codebase falls back on ``got_revision`` when a forced
  build had none, checked by the ``core.vcs`` revision rule); its artefact is the one the
  build's ``packaging`` steps uploaded and hashed on the master (the build properties
  ``archive_name`` and ``archive_sha256``). Several masters may all see the same build:
  the store keeps one row (no master needs the file itself to record it).
- :class:`FreezeStack` and :class:`PromoteStack` run on the master inside the acceptance
  (and promote) builds; the store makes both atomic.
- :class:`InstallStack` adds, at run time, the steps that put a stack's artefacts (or, for
  a member without one, its pinned sources) on an install-test target: each archive goes
  from the master with Buildbot's own transfer, confined to its upload folder, and
  ``build_utils/fetch.py archive --sha256`` checks it against the stack before extracting.

Database calls block: they run in a thread.
"""

from __future__ import annotations

import json
import os
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
from .buildsteps import STACK_PROP, UtilStep
from .cells import CellTrigger
from .steps_release import SHA256_RE, ReleaseDownload, archive_name
from .stepset_registry import util_argv

#: properties of the builds an acceptance run triggers (and of the acceptance build)
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


class StackRecorder(service.BuildbotService):
    """Records green builds of member buildouts as their newest *unstable* candidates.

    ``members``: buildout -> {"builders": [...], "codebases": {codebase: [vcs, url, branch]},
    "own": the buildout's own codebase, "upload_dir": its ``packaging`` folder or ""}."""

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
        try:
            artefact, sha = self.artefact(member, values)
        except ValueError as exc:
            log.msg(f"anybox-ci: stacks: [{name}] build {build['buildid']} not recorded: {exc}")
            return None
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

    @staticmethod
    def artefact(member: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[str, str]:
        """The release archive the build uploaded (its path from the master's folder) and
        its SHA-256, as the build's packaging steps set them on the master; ("", "") for a
        member that uploads none. A malformed value raises ValueError: nothing is recorded."""
        folder = member.get("upload_dir") or ""
        given_name, given_sha = values.get("archive_name"), values.get("archive_sha256")
        if not folder or (given_name is None and given_sha is None):
            return "", ""
        name = archive_name(given_name)  # a plain file name: it stays inside the folder
        if name is None:
            raise ValueError(f"archive_name {str(given_name)[:100]!r} is not a file name")
        if not isinstance(given_sha, str) or not SHA256_RE.match(given_sha):
            raise ValueError(f"archive_sha256 {str(given_sha)[:100]!r} is not a SHA-256")
        return posixpath.join(folder, name), given_sha


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
    return CellTrigger(
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


class StackArchiveDownload(ReleaseDownload):
    """A member's archive, from its upload folder on the master to the target: the archive
    download of ``archive.from`` cells, for a file name the stack gives instead of the
    build's ``archive_name`` property (still a plain file name inside ``root``)."""

    def __init__(self, root: str, archive: str, **kwargs: Any):
        super().__init__(root, **kwargs)
        self.mastersrc = archive


def member_archive_steps(root: str, member: Mapping[str, Any]) -> list[Any]:
    """Download a member's archive, check its SHA-256 recorded in the stack and extract it
    into the member's folder (``fetch.py archive``: nothing extracted on a mismatch)."""
    name = member[BUILDOUT_KEY]
    local = f"{name}.tar.gz"
    return [
        StackArchiveDownload(
            root,
            posixpath.basename(member["artefact"]),
            name=step_name(f"download_{name}"),
            workerdest=local,
            haltOnFailure=True,
        ),
        UtilStep(
            name=step_name(f"fetch_{name}"),
            command=util_argv(
                "fetch",
                "archive",
                f"--url={local}",
                f"--dest={name}",
                f"--sha256={member['artefact_sha256']}",
            ),
            exports=(),
            haltOnFailure=True,
        ),
    ]


def member_checkout_steps(member: Mapping[str, Any]) -> list[Any]:
    """A member without an archive: its codebases cloned at their pinned revisions (one
    codebase: the member's folder; several: one folder each inside it)."""
    name = member[BUILDOUT_KEY]
    pins = member["revisions"]
    added: list[Any] = []
    for index, pin in enumerate(pins):
        folder = name if len(pins) == 1 else f"{name}/{pin['codebase']}"
        added += [
            steps.ShellCommand(
                name=step_name(f"clone_{name}_{index}"),
                command=["git", "clone", "-q", "--", pin["repository"], folder],
                haltOnFailure=True,
            ),
            steps.ShellCommand(
                name=step_name(f"checkout_{name}_{index}"),
                command=["git", "checkout", "-q", "--detach", pin["revision"], "--"],
                workdir=f"build/{folder}",
                haltOnFailure=True,
            ),
        ]
    return added


class InstallStack(_MasterStep):
    """On an install-test target: the steps fetching each member of the stack, added now
    that the stack is known. The stack is read from the master's database by its number
    (the build's property), never from a property's JSON: its archives and hashes are the
    recorded ones. An archive must match its hash; a member without one is checked out at
    its pinned revisions."""

    def __init__(self, domain: str, **kwargs: Any):
        kwargs.setdefault("name", "install_stack")
        super().__init__(**kwargs)
        self.domain = domain

    @defer.inlineCallbacks
    def run(self) -> Any:
        number = self.getProperty(STACK_PROP)
        if not isinstance(number, int) or isinstance(number, bool):
            result = yield self.refuse("no stack to install: start this builder from acceptance")
            return result
        store = store_of(self.master)
        stack = yield threads.deferToThread(store.stack, self.domain, number)
        if stack is None:
            result = yield self.refuse(f"no stack {number} in domain {self.domain!r}")
            return result
        data = stack_dict(stack)
        added: list[Any] = [
            steps.StringDownload(
                json.dumps(data, indent=2) + "\n", workerdest="stack.json", name="stack_json"
            )
        ]
        for member in data[MEMBERS_KEY]:
            if member["artefact"]:
                # the upload folder as packaging named it: relative ones are the master's
                folder = os.path.expanduser(posixpath.dirname(member["artefact"]))
                root = os.path.join(self.master.basedir, folder)
                added += member_archive_steps(root, member)
            else:
                added += member_checkout_steps(member)
        yield self.build.addStepsAfterCurrentStep(added)
        self.summary = f"installing stack {number}: {len(stack.members)} member(s)"
        return SUCCESS
