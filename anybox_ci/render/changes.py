"""Schedulers and change sources: which change starts which builders.

Every watched (repository, branch) is its own codebase, so a build records and fetches
one exact revision per watched line, and a change to one repository never moves the
checkout of another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildbot.plugins import changes, schedulers, util
from buildbot.schedulers.forcesched import CollectedValidationError, ValidationError
from twisted.internet import defer
from twisted.python import log

from ..core import schema
from ..core.capabilities import CapabilityRegistry
from ..core.model import Buildout, Watch
from ..core.plan import Cell
from ..core.selection import (
    FORCE_MATCHING_SCHEDULER,
    Target,
    cell_tags,
    force_scheduler_name,
    parse_selector,
    select,
)
from ..core.vcs import (
    check_branch,
    check_ref,
    check_url,
    check_vcs_branch,
    codebase_name,
    redact_url,
)
from .cells import CELLS_PROP, AnyBranchScheduler, FanoutMixin, Nightly


@dataclass(frozen=True)
class WatchFilter:
    """A ChangeFilter ``filter_fn``: the change's (repository, branch) is watched."""

    pairs: frozenset[tuple[str, str]]
    any_branch: frozenset[str]

    def __call__(self, change: Any) -> bool:
        repo = change.repository
        return (repo, change.branch or "") in self.pairs or repo in self.any_branch


def watch_codebase(watch: Watch) -> str:
    return codebase_name(watch.url, watch.branch)


class CodebaseGenerator:
    """``c['codebaseGenerator']``: a change's codebase from its repository and branch."""

    def __init__(self, watches: Iterable[Watch], fallback: Any = None):
        self.table = {(w.url, w.branch): watch_codebase(w) for w in watches}
        self.fallback = fallback

    def __call__(self, chdict: Mapping[str, Any]) -> str:
        key = (chdict.get("repository") or "", chdict.get("branch") or "")
        found = self.table.get(key) or self.table.get((key[0], ""))
        if found:
            return found
        return self.fallback(chdict) if self.fallback else ""


def codebases(watches: Sequence[Watch]) -> dict[str, dict[str, str]]:
    return {watch_codebase(w): {"repository": w.url, "branch": w.branch} for w in watches}


def buildout_schedulers(buildout: Buildout, builder_names: list[str]) -> list[Any]:
    watches = buildout.all_watches
    result: list[Any] = []
    if watches:
        timer = buildout.get(schema.TREE_STABLE_TIMER) or None
        change_filter = util.ChangeFilter(
            filter_fn=WatchFilter(
                frozenset((w.url, w.branch) for w in watches if w.branch),
                frozenset(w.url for w in watches if not w.branch),
            )
        )
        result.append(
            AnyBranchScheduler(
                name=f"changes:{buildout.name}",
                builderNames=builder_names,
                change_filter=change_filter,
                treeStableTimer=timer,
                codebases=codebases(watches),
            )
        )
    for hour, minute in buildout.get(schema.NIGHTLY):
        result.append(
            Nightly(
                name=f"nightly:{buildout.name}:{hour:02d}{minute:02d}",
                builderNames=builder_names,
                hour=hour,
                minute=minute,
                codebases=codebases(watches) or {"": {}},
            )
        )
    return result


class CheckedParameter(util.StringParameter):
    """A force-form text field whose value must pass one of the ``core.vcs`` rules.

    ``rule`` returns why a value is refused, or None; an empty value means "the default"
    and is always accepted. A refused value is a ``ValidationError``: the force request
    fails before any build exists, so it never reaches a command."""

    def __init__(self, name: str, rule: Any, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.rule = rule

    def parse_from_arg(self, s: Any) -> Any:
        value = super().parse_from_arg(s)
        if value and not isinstance(value, str):
            raise ValidationError(f"{self.label}: expected text")
        if value and (why := self.rule(value)):
            raise ValidationError(f"{self.label}: {str(value)[:100]!r} refused: {why}")
        return value


class HiddenFixedParameter(util.FixedParameter):
    """A fixed field that shows ``shown`` (say, a URL with its password masked) in the
    force form and the REST API, but gives the build ``value``."""

    def __init__(self, name: str, value: str, shown: str, **kwargs: Any):
        super().__init__(name=name, default=shown, **kwargs)
        self.value = value

    def parse_from_args(self, l: Any) -> Any:  # noqa: E741 - Buildbot's signature
        return self.value


def _vcs_rule(vcs: str, check: Any) -> Any:
    return lambda value: check(vcs, value)


def _codebase_params(watches: Sequence[Watch]) -> list[Any]:
    """The force form's fields of each watched line: branch and revision checked by the
    ``core.vcs`` rules, the repository fixed and shown with its password masked."""
    params = [
        util.CodebaseParameter(
            codebase=watch_codebase(w),
            label=redact_url(f"{w.url} {w.branch}".strip()),
            branch=CheckedParameter(
                name="branch", rule=_vcs_rule(w.vcs, check_vcs_branch), default=w.branch
            ),
            revision=CheckedParameter(
                name="revision", rule=_vcs_rule(w.vcs, check_ref), default=""
            ),
            repository=HiddenFixedParameter(
                name="repository", value=w.url, shown=redact_url(w.url)
            ),
            project=util.FixedParameter(name="project", default=""),
        )
        for w in watches
    ]
    return params or [_no_sources()]


def _no_sources() -> Any:
    """No watched repository: nothing a person may choose about sources."""
    return util.CodebaseParameter(
        codebase="",
        branch=util.FixedParameter(name="branch", default=""),
        revision=util.FixedParameter(name="revision", default=""),
        repository=util.FixedParameter(name="repository", default=""),
        project=util.FixedParameter(name="project", default=""),
    )


def _tag_parameter() -> Any:
    return CheckedParameter(
        name="buildout-tag", rule=check_branch, label="Tag (gittag/hgtag)", default=""
    )


class BuildoutForceScheduler(FanoutMixin, schedulers.ForceScheduler):
    """A ForceScheduler that forces its own builders only (and each virtual cell in a
    buildset of its own: ``render.cells``).

    Buildbot's takes any ``builderid`` it is given (a form of one buildout would start
    another buildout's builder with the wrong sources); this one refuses it."""

    @defer.inlineCallbacks
    def computeBuilderNames(self, builderNames: Any = None, builderid: Any = None) -> Any:
        names = yield super().computeBuilderNames(builderNames, builderid)
        return [n for n in names or [] if n in self.builderNames]

    @defer.inlineCallbacks
    def force(
        self, owner: Any, builderNames: Any = None, builderid: Any = None, **kwargs: Any
    ) -> Any:
        names = yield self.computeBuilderNames(builderNames, builderid)
        if not names:
            # a form error (JSON-RPC 400), not Buildbot's KeyError and its traceback
            raise CollectedValidationError({"builderid": "not a builder of this force form"})
        result = yield super().force(owner, builderNames=names, **kwargs)
        return result


def force_scheduler(
    builder_names: list[str],
    watches: Sequence[Watch],
    name: str = "force",
    label: str | None = None,
    cells: Sequence[str] = (),
) -> Any:
    """One ForceScheduler over ``builder_names``, with each watched line's branch and
    revision (a forced branch ``--upload-pack=CMD`` is refused, never handed to git).

    ``cells``: the virtual cells of ``builder_names``, offered as a choice (all when none is
    chosen)."""
    properties = [_tag_parameter()]
    if cells:
        properties.append(
            util.ChoiceStringParameter(
                name=CELLS_PROP,
                label="Cells",
                choices=list(cells),
                default=list(cells),
                multiple=True,
                strict=True,
                debug=False,  # a refused choice is the form's answer, not a traceback
            )
        )
    return BuildoutForceScheduler(
        name=name,
        label=label,
        buttonName="force",
        builderNames=builder_names,
        codebases=_codebase_params(watches),
        properties=properties,
    )


class MatchingForceScheduler(BuildoutForceScheduler):
    """The admins' form that forces every cell a tag or capability filter selects.

    It ignores the builder whose page it was opened from: the ``match`` field chooses the
    builders, and each selected buildout gets a buildset of its own with its own watched
    repositories at their configured branches (``targets`` and ``sources`` say which).
    ``www.authz`` lets only admins use it."""

    def checkConfig(
        self,
        builderNames: Any,
        targets: Sequence[Target] = (),
        sources: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().checkConfig(builderNames=builderNames, **kwargs)

    @defer.inlineCallbacks
    def reconfigService(
        self,
        builderNames: Any,
        targets: Sequence[Target] = (),
        sources: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
        **kwargs: Any,
    ) -> Any:
        self.targets = tuple(targets)
        self.sources = dict(sources or {})
        self.buildout_of = {t.name: t.buildout for t in self.targets}
        yield super().reconfigService(builderNames=builderNames, **kwargs)

    @defer.inlineCallbacks
    def computeBuilderNames(self, builderNames: Any = None, builderid: Any = None) -> Any:
        # the selected cells, which are builders unless they are virtual (render.cells)
        if builderNames is not None:
            return [n for n in builderNames if n in self.buildout_of]
        names = yield super().computeBuilderNames(builderNames, builderid)
        return names

    def selection(self, value: Any) -> dict[str, list[str]]:
        """The selected builders per buildout; raises ValidationError on a bad value."""
        text = value[0] if isinstance(value, list) and value else value
        if not isinstance(text, str):
            raise ValidationError("expected text")
        try:
            chosen = select(parse_selector(text, self.targets), self.targets)
        except ValueError as exc:
            raise ValidationError(f"{text[:100]!r} refused: {exc}") from None
        if not chosen:
            raise ValidationError(f"{text[:100]!r} selects no builder")
        return chosen

    @defer.inlineCallbacks
    def force(
        self, owner: Any, builderNames: Any = None, builderid: Any = None, **kwargs: Any
    ) -> Any:
        try:
            chosen = self.selection(kwargs.get("match", ""))
        except ValidationError as exc:
            raise CollectedValidationError({"match": str(exc)}) from None
        first: Any = None
        requests: dict[Any, Any] = {}
        for names in chosen.values():
            bsid, brids = yield super().force(owner, builderNames=names, **kwargs)
            first = bsid if first is None else first
            requests.update(brids)
        return first, requests

    @defer.inlineCallbacks
    def addBuildsetForSourceStampsWithDefaults(
        self,
        reason: str,
        sourcestamps: Any = None,
        builderNames: Any = None,
        **kwargs: Any,
    ) -> Any:
        # the selected buildout's own repositories at their configured branches (the
        # builders of one call are all of one buildout: see force)
        buildout = self.buildout_of.get((builderNames or [""])[0], "")
        stamps = [
            {
                "codebase": codebase,
                "repository": source["repository"],
                "branch": source["branch"],
                "revision": None,
                "project": "",
            }
            for codebase, source in self.sources.get(buildout, {}).items()
        ]
        result = yield self.addBuildsetForSourceStamps(
            reason=reason, sourcestamps=stamps, builderNames=builderNames, **kwargs
        )
        return result


def force_schedulers(
    buildouts: Iterable[Buildout],
    cells: Iterable[Cell],
    registry: CapabilityRegistry,
    scheduled: Mapping[str, Sequence[str]] | None = None,
) -> list[Any]:
    """One force form per buildout over its cells, with its own watched repositories only,
    and the admins' :class:`MatchingForceScheduler` over every cell.

    ``scheduled``: each buildout's builders, when they are not its cells (virtual cells)."""
    by_buildout: dict[str, list[Cell]] = {}
    for cell in cells:
        by_buildout.setdefault(cell.buildout, []).append(cell)
    result: list[Any] = []
    targets: list[Target] = []
    real: list[str] = []
    sources: dict[str, dict[str, dict[str, str]]] = {}
    for buildout in buildouts:
        own = by_buildout.get(buildout.name)
        if not own:
            continue
        names = [c.name for c in own]
        builders = list((scheduled or {}).get(buildout.name) or names)
        watches = buildout.all_watches
        result.append(
            force_scheduler(
                builders,
                watches,
                name=force_scheduler_name(buildout.name),
                label=f"Force {buildout.name}",
                cells=() if builders == names else names,
            )
        )
        real += builders
        categories = buildout.get(schema.BUILD_CATEGORY)
        targets += [
            Target(c.name, buildout.name, cell_tags(categories, c.versions, registry), c.versions)
            for c in own
        ]
        sources[buildout.name] = codebases(watches) or {"": {"repository": "", "branch": ""}}
    if targets:
        result.append(
            MatchingForceScheduler(
                name=FORCE_MATCHING_SCHEDULER,
                label="Force everything matching (admins)",
                buttonName="force matching",
                builderNames=real,
                codebases=[_no_sources()],
                properties=[
                    util.StringParameter(
                        name="match",
                        label="Tag (pg15), capability filter (postgresql >= 15) or *",
                        required=True,
                        debug=False,  # a refused choice is the form's answer, not a traceback
                        size=40,
                    )
                ],
                targets=targets,
                sources=sources,
                reason=util.StringParameter(
                    name="reason", label="Reason", default="forced by tag or filter", size=30
                ),
            )
        )
    return result


def pollable(watch: Watch) -> str | None:
    """Why a poller must not be made for ``watch``, or None (defence in depth: the loaders
    already refuse such watches, but a poller runs on the master)."""
    if why := check_url(watch.url):
        return f"invalid URL: {why}"
    if why := check_vcs_branch(watch.vcs, watch.branch):
        return f"invalid branch name: {why}"
    return None


def pollers(watches: Sequence[Watch], interval: int, hgbin: str = "hg") -> list[Any]:
    """One poller per watched git/hg repository, polling all its watched branches.

    A watch whose URL or branch fails the ``core.vcs`` rules gets no poller (and a line in
    the master's log); a URL with a password is shown masked in the poller's name."""
    branches: dict[tuple[str, str], list[str]] = {}
    for w in watches:
        if w.vcs in ("git", "hg") and w.branch:
            if why := pollable(w):
                log.msg(f"anybox-ci: warning: no poller for {redact_url(w.url)[:100]!r}: {why}")
                continue
            branches.setdefault((w.vcs, w.url), []).append(w.branch)
    result: list[Any] = []
    for (vcs, url), names in sorted(branches.items()):
        shown = redact_url(url)
        extra: dict[str, Any] = {}
        if vcs == "git":
            poller: Any = changes.GitPoller
            if shown != url:
                extra["name"] = shown
        else:
            poller = changes.HgPoller
            extra["hgbin"] = hgbin
            if shown != url:
                extra["name"] = "_".join([shown, *sorted(set(names))])
        result.append(
            poller(
                repourl=url,
                branches=sorted(set(names)),
                pollInterval=interval,
                workdir=f"pollers/{vcs}-{codebase_name(url, '')}",
                pollAtLaunch=True,
                # jitter, so that many pollers do not hit the forge at the same second
                pollRandomDelayMax=min(interval // 10, 30),
                **extra,
            )
        )
    return result
