"""What the change senders and the master's ``anybox`` change hook agree on.

A change travels as the form of Buildbot's base hook plus two properties: its identity
(so a replay is recognised) and its VCS (so its revision can be checked). Senders drop a
change whose branch the hook would refuse, so one bad branch never blocks the spool.
This module needs only the standard library and ``core``, so the www layer may import it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from anybox_ci.core.vcs import change_id, check_vcs_branch

CHANGE_ID_PROPERTY = "anybox_ci_change_id"
VCS_PROPERTY = "anybox_ci_vcs"
HOOK_PATH = "/change_hook/anybox"

# What one change may carry. Senders cut what is longer (:func:`change_form`); the hook refuses
# it, so that nobody can fill the master's database (and every ``/api/v2/changes`` answer).
MAX_AUTHOR = 1_000  # characters
MAX_COMMENTS = 65_536  # characters
MAX_FILES = 1_000  # paths per change
MAX_FILE_PATH = 1_024  # characters per path
MAX_FILES_JSON = 262_144  # characters of the ``files`` field (JSON, ASCII)
MAX_PROPERTIES_JSON = 4_096  # characters of the ``properties`` field
MAX_REPOSITORY = 4_096  # characters
MAX_SHORT_FIELD = 256  # project, codebase, when_timestamp (branch and revision have their rules)
#: the newest change time the master takes: it stores times in a 32-bit column
MAX_WHEN = 2**31 - 1
#: the largest body the ``anybox`` change hook reads (every field at its limit fits)
MAX_HOOK_BODY = 2 * 1024 * 1024

#: control characters: never in a one-line field nor a file path; NUL nowhere
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    # never sent (see change_form); kept so that spool files written before still load
    project: str = ""
    codebase: str = ""

    @property
    def change_id(self) -> str:
        return change_id(self.vcs, self.repository, self.branch, self.revision)


def change_form(cid: str, change: Change) -> dict[str, str]:
    """The form fields of Buildbot's base hook, plus our identity properties.

    What a commit may hold beyond the hook's limits is cut here (a very long message, a huge
    file list, a NUL byte, a time outside what the master stores), so that a genuine change
    is never refused for it. No project nor codebase is sent: the master gives each watched
    repository and branch its codebase, and refuses a change that names another.
    """
    fields = {
        "repository": change.repository,
        "branch": change.branch,
        "revision": change.revision,
        "author": bounded_author(change.author),
        "comments": bounded_comments(change.comments),
        "files": bounded_files(change.files),
        "properties": json.dumps({CHANGE_ID_PROPERTY: cid, VCS_PROPERTY: change.vcs}),
    }
    if math.isfinite(change.when) and 0 <= change.when <= MAX_WHEN:
        fields["when_timestamp"] = repr(float(change.when))
    return fields  # without a time, the master takes the time it receives the change


def bounded_author(author: str) -> str:
    """The author on one line, within :data:`MAX_AUTHOR`; never empty."""
    return " ".join(CONTROL.sub(" ", author).split())[:MAX_AUTHOR] or "unknown"


def bounded_comments(comments: str) -> str:
    """The commit message without NUL bytes, cut at :data:`MAX_COMMENTS` characters."""
    text = comments.replace("\x00", "\ufffd")
    marker = "\n[message cut]"
    if len(text) > MAX_COMMENTS:
        text = text[: MAX_COMMENTS - len(marker)] + marker
    return text


def bounded_files(files: Iterable[str]) -> str:
    """The ``files`` field: at most :data:`MAX_FILES` paths, :data:`MAX_FILES_JSON` in all.

    Paths with a control character or longer than :data:`MAX_FILE_PATH` are left out.
    """
    kept: list[str] = []
    size = 2  # "[]"
    for path in files:
        if len(kept) >= MAX_FILES:
            break
        if not path or len(path) > MAX_FILE_PATH or CONTROL.search(path):
            continue
        encoded = len(json.dumps(path)) + 2  # and ", "
        if size + encoded > MAX_FILES_JSON:
            break
        kept.append(path)
        size += encoded
    return json.dumps(kept)


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
