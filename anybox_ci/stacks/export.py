"""Read-only views of stacks, shared by ``anybox-ci stack``, the REST resource and the page.

``export`` gives what deployment tools need: the pinned revisions in buildout form (a
``[versions]`` section of release versions, a ``[sources]`` section of exact revisions,
mr.developer style, and the release archives with their SHA-256) and as JSON.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from .model import MEMBERS_KEY, Member, Stack

#: the section of a buildout export listing the members' release archives
ARTEFACTS_SECTION = "anybox-ci-artefacts"


def when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def short(revision: str) -> str:
    return revision[:12]


def channels_of(number: int, channels: dict[str, int]) -> list[str]:
    return sorted(name for name, n in channels.items() if n == number)


def stack_dict(stack: Stack, channels: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "domain": stack.domain,
        "number": stack.number,
        "frozen_by": stack.frozen_by,
        "frozen_at": when(stack.frozen_at),
        "channels": channels_of(stack.number, channels or {}),
        MEMBERS_KEY: [m.as_dict() for m in stack.members],
    }


def list_lines(stacks: list[Stack], channels: dict[str, dict[str, int]]) -> list[str]:
    """``anybox-ci stack list``: one line per stack, newest first."""
    out = []
    for s in stacks:
        tags = ",".join(channels_of(s.number, channels.get(s.domain, {}))) or "-"
        members = " ".join(f"{m.buildout}={m.release_version or '?'}" for m in s.members)
        out.append(
            f"{s.domain:<12} {s.number:>4}  {tags:<15} {when(s.frozen_at)}  "
            f"{s.frozen_by:<24} {members}"
        )
    return out


def show_lines(stack: Stack, channels: dict[str, int]) -> list[str]:
    tags = ", ".join(channels_of(stack.number, channels)) or "none"
    out = [
        f"stack {stack.domain} {stack.number} (channels: {tags})",
        f"frozen by {stack.frozen_by} at {when(stack.frozen_at)}",
    ]
    for m in stack.members:
        out.append(f"  {m.buildout} {m.release_version or '?'}")
        for p in m.pins:
            out.append(f"    {p.codebase}: {p.repository} {p.branch} {p.revision}")
        if m.artefact:
            out.append(f"    artefact: {m.artefact} sha256={m.artefact_sha256}")
    return out


@dataclass(frozen=True)
class Change:
    """How one member differs between two stacks."""

    buildout: str
    before: Member | None
    after: Member | None

    def lines(self) -> list[str]:
        if self.before is None and self.after is not None:
            return [f"+ {self.buildout} {self.after.release_version}"]
        if self.after is None and self.before is not None:
            return [f"- {self.buildout} {self.before.release_version}"]
        assert self.before is not None and self.after is not None
        out = [
            f"~ {self.buildout} {self.before.release_version or '?'} -> "
            f"{self.after.release_version or '?'}"
        ]
        old = {p.codebase: p for p in self.before.pins}
        new = {p.codebase: p for p in self.after.pins}
        for codebase in sorted(set(old) | set(new)):
            a, b = old.get(codebase), new.get(codebase)
            if a is None or b is None or a.revision != b.revision:
                out.append(
                    f"    {codebase}: {short(a.revision) if a else '(none)'} -> "
                    f"{short(b.revision) if b else '(none)'}"
                )
        if self.before.artefact_sha256 != self.after.artefact_sha256:
            out.append(
                f"    artefact: {self.before.artefact_sha256[:12] or '(none)'} -> "
                f"{self.after.artefact_sha256[:12] or '(none)'}"
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "buildout": self.buildout,
            "before": self.before.as_dict() if self.before else None,
            "after": self.after.as_dict() if self.after else None,
        }


def diff(before: Stack, after: Stack) -> list[Change]:
    """The members that differ (revisions, version or artefact), by name."""
    names = sorted({m.buildout for m in before.members} | {m.buildout for m in after.members})
    changes = []
    for name in names:
        a, b = before.member(name), after.member(name)
        same = (
            a is not None
            and b is not None
            and a.pins == b.pins
            and a.release_version == b.release_version
            and a.artefact_sha256 == b.artefact_sha256
        )
        if not same:
            changes.append(Change(name, a, b))
    return changes


def diff_lines(before: Stack, after: Stack) -> list[str]:
    head = f"stack {after.domain} {before.number} -> {after.number}"
    changes = diff(before, after)
    if not changes:
        return [head, "  (no change)"]
    return [head] + [line for c in changes for line in c.lines()]


def buildout_export(stack: Stack) -> str:
    """The stack as buildout configuration: release versions and exact revisions, and the
    release archives (their path on the master and SHA-256) of the members that have one."""
    out = [
        f"# stack {stack.domain} {stack.number}, frozen by {stack.frozen_by} "
        f"at {when(stack.frozen_at)}",
        "[versions]",
    ]
    out += [f"{m.buildout} = {m.release_version}" for m in stack.members if m.release_version]
    out += ["", "[sources]"]
    for m in stack.members:
        for p in m.pins:
            branch = f" branch={p.branch}" if p.branch else ""
            out.append(f"{p.codebase} = {p.vcs} {p.repository}{branch} rev={p.revision}")
    archives = [m for m in stack.members if m.artefact]
    if archives:
        # not read by buildout: what a deployment checks before it installs an archive
        out += ["", f"[{ARTEFACTS_SECTION}]"]
        out += [f"{m.buildout} = {m.artefact} sha256={m.artefact_sha256}" for m in archives]
    return "\n".join(out) + "\n"
