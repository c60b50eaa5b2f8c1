"""What the change senders and the master's ``anybox`` change hook agree on.

A change travels as the form of Buildbot's base hook plus two properties: its identity
(so a replay is recognised) and its VCS (so its revision can be checked). Senders drop a
change whose branch the hook would refuse, so one bad branch never blocks the spool.
This module needs only the standard library and ``core``, so the www layer may import it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from anybox_ci.core.vcs import change_id, check_vcs_branch

CHANGE_ID_PROPERTY = "anybox_ci_change_id"
VCS_PROPERTY = "anybox_ci_vcs"
HOOK_PATH = "/change_hook/anybox"


@dataclass(frozen=True)
class Change:
    """One new revision on one branch, in the shape Buildbot's change hooks expect."""

    repository: str
    branch: str
    revision: str
    author: str
    comments: str
    files: tuple[str, ...]
    when: float
    vcs: str
    project: str = ""
    codebase: str = ""

    @property
    def change_id(self) -> str:
        return change_id(self.vcs, self.repository, self.branch, self.revision)


def change_form(cid: str, change: Change) -> dict[str, str]:
    """The form fields of Buildbot's base hook, plus our identity properties."""
    return {
        "repository": change.repository,
        "branch": change.branch,
        "revision": change.revision,
        "author": change.author,
        "comments": change.comments,
        "project": change.project,
        "codebase": change.codebase,
        "when_timestamp": repr(float(change.when)),
        "files": json.dumps(list(change.files)),
        "properties": json.dumps({CHANGE_ID_PROPERTY: cid, VCS_PROPERTY: change.vcs}),
    }


def shown(value: object) -> str:
    """A possibly hostile value, quoted on one ASCII line and cut at 100 characters."""
    text = str(value)
    return ascii(text[:100]) + ("..." if len(text) > 100 else "")


def acceptable(changes: Iterable[Change]) -> tuple[list[Change], list[str]]:
    """(changes the hook accepts, one warning per branch skipped for its name).

    ``changes`` come from one repository: the warnings name the branch, not the repository.

    The branch rule is :func:`anybox_ci.core.vcs.check_vcs_branch`, the one the manifest,
    auto-watch and the change hook apply.
    """
    kept: list[Change] = []
    skipped: dict[str, str] = {}
    for change in changes:
        why = check_vcs_branch(change.vcs, change.branch)
        if why is None:
            kept.append(change)
        else:
            skipped.setdefault(change.branch, why)
    warnings = [
        f"skipped branch {shown(branch)}: invalid branch name: {why}"
        for branch, why in skipped.items()
    ]
    return kept, warnings
