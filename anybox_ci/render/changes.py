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

from ..core import schema
from ..core.model import Buildout, Watch
from ..core.vcs import codebase_name


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
            schedulers.AnyBranchScheduler(
                name=f"changes:{buildout.name}",
                builderNames=builder_names,
                change_filter=change_filter,
                treeStableTimer=timer,
                codebases=codebases(watches),
            )
        )
    for hour, minute in buildout.get(schema.NIGHTLY):
        result.append(
            schedulers.Nightly(
                name=f"nightly:{buildout.name}:{hour:02d}{minute:02d}",
                builderNames=builder_names,
                hour=hour,
                minute=minute,
                codebases=codebases(watches) or {"": {}},
            )
        )
    return result


def force_scheduler(builder_names: list[str], watches: Sequence[Watch]) -> Any:
    """One ForceScheduler over every builder; each watched line's branch and revision."""
    params = [
        util.CodebaseParameter(
            codebase=watch_codebase(w),
            label=f"{w.url} {w.branch}".strip(),
            branch=util.StringParameter(name="branch", default=w.branch),
            revision=util.StringParameter(name="revision", default=""),
            repository=util.FixedParameter(name="repository", default=w.url),
            project=util.FixedParameter(name="project", default=""),
        )
        for w in watches
    ]
    return schedulers.ForceScheduler(
        name="force",
        builderNames=builder_names,
        codebases=params or [""],
        properties=[
            util.StringParameter(name="buildout-tag", label="Tag (gittag/hgtag)", default="")
        ],
    )


def pollers(watches: Sequence[Watch], interval: int, hgbin: str = "hg") -> list[Any]:
    """One poller per watched git/hg repository, polling all its watched branches."""
    branches: dict[tuple[str, str], list[str]] = {}
    for w in watches:
        if w.vcs in ("git", "hg") and w.branch:
            branches.setdefault((w.vcs, w.url), []).append(w.branch)
    result: list[Any] = []
    for (vcs, url), names in sorted(branches.items()):
        poller, extra = (
            (changes.GitPoller, {}) if vcs == "git" else (changes.HgPoller, {"hgbin": hgbin})
        )
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
