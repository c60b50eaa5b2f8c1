"""What the stack tables hold, as frozen objects (no database code here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

#: the channels a stack can be promoted to; *unstable* is each member's newest candidate
TESTING = "testing"
STABLE = "stable"
UNSTABLE = "unstable"
CHANNELS = (TESTING, STABLE)
#: the key of a stack's members in its JSON form
MEMBERS_KEY = "members"
BUILDOUT_KEY = "buildout"


@dataclass(frozen=True)
class Pin:
    """One codebase of a build, at one exact revision."""

    codebase: str
    repository: str
    branch: str
    revision: str
    vcs: str = "git"

    def as_dict(self) -> dict[str, str]:
        return {
            "codebase": self.codebase,
            "repository": self.repository,
            "branch": self.branch,
            "revision": self.revision,
            "vcs": self.vcs,
        }


def pins_to_json(pins: tuple[Pin, ...]) -> str:
    return json.dumps([p.as_dict() for p in sorted(pins, key=lambda p: p.codebase)])


def pins_from_json(text: str) -> tuple[Pin, ...]:
    return tuple(
        Pin(
            str(d["codebase"]),
            str(d["repository"]),
            str(d["branch"]),
            str(d["revision"]),
            str(d.get("vcs", "git")),
        )
        for d in json.loads(text or "[]")
    )


def fingerprint(pins: tuple[Pin, ...], artefact_sha256: str) -> str:
    """What makes two candidates of a buildout the same: revisions and artefact."""
    return hashlib.sha256((pins_to_json(pins) + "\n" + artefact_sha256).encode()).hexdigest()


@dataclass(frozen=True)
class Candidate:
    """A green build's exact inputs and outputs: the newest one per buildout is *unstable*."""

    id: int
    buildout: str
    pins: tuple[Pin, ...]
    release_version: str
    artefact: str
    artefact_sha256: str
    build_url: str
    recorded_at: float


@dataclass(frozen=True)
class Member:
    """One member of a stack: a copy of its candidate, kept even if candidates are pruned."""

    buildout: str
    candidate_id: int
    pins: tuple[Pin, ...]
    release_version: str
    artefact: str
    artefact_sha256: str
    build_url: str

    def as_dict(self) -> dict[str, object]:
        return {
            BUILDOUT_KEY: self.buildout,
            "candidate": self.candidate_id,
            "release_version": self.release_version,
            "artefact": self.artefact,
            "artefact_sha256": self.artefact_sha256,
            "build_url": self.build_url,
            "revisions": [p.as_dict() for p in self.pins],
        }


@dataclass(frozen=True)
class Stack:
    """Stack ``number`` of a domain: immutable once frozen."""

    domain: str
    number: int
    frozen_by: str
    frozen_at: float
    members: tuple[Member, ...]

    def member(self, buildout: str) -> Member | None:
        return next((m for m in self.members if m.buildout == buildout), None)


@dataclass(frozen=True)
class ChannelMove:
    """One line of the channel log: who put which stack in which channel, and when."""

    domain: str
    channel: str
    number: int
    previous: int | None
    author: str
    note: str
    at: float
