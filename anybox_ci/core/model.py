"""Typed, frozen objects read from manifests and workers files.

Only data lives here; reading the files is :mod:`.manifest` and :mod:`.workers`. An
option value is read through its schema constant, typed:
``buildout.get(schema.DB_STEPS)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from .schema import DOMAIN_SECTION_PREFIX, Option
from .vcs import VCS_NAMES
from .versions import Version, VersionFilter

T = TypeVar("T")


@dataclass(frozen=True)
class Requirement:
    capability: str
    filter: VersionFilter

    def __str__(self) -> str:
        text = str(self.filter)
        return f"{self.capability} {text}" if text else self.capability


@dataclass(frozen=True)
class Watch:
    vcs: str
    url: str
    branch: str = ""

    def __str__(self) -> str:
        return " ".join(p for p in (self.vcs, self.url, self.branch) if p)


@dataclass(frozen=True)
class BuildoutSource:
    """Where a buildout comes from; ``path`` is master-side for ``standalone``."""

    type: str
    file: str
    url: str = ""
    branch: str = ""
    subdir: str = ""
    path: Path | None = None

    @property
    def watch(self) -> Watch | None:
        if self.type in VCS_NAMES:
            return Watch(self.type, self.url, self.branch)
        return None

    def __str__(self) -> str:
        parts = [self.type, self.url, self.branch, self.file]
        if self.subdir:
            parts.append(f"subdir={self.subdir}")
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Buildout:
    name: str
    manifest: str
    line: int
    source: BuildoutSource
    #: every manifest option by name, parsed, defaults included (read with :meth:`get`)
    options: Mapping[str, Any]
    build_for: tuple[Requirement, ...]
    build_requires: tuple[Requirement, ...]
    watches: tuple[Watch, ...]
    #: capabilities of ``build-for`` lines that say ``not-used``: no version axis, and the
    #: version property says ``not-used``
    not_used: tuple[str, ...] = ()

    def get(self, option: Option[T]) -> T:
        """The value of a manifest option, typed as the schema declares it."""
        return cast(T, self.options[option.name])

    @property
    def all_watches(self) -> tuple[Watch, ...]:
        """Watch lines plus the buildout's own repository, without duplicates."""
        own = self.source.watch
        result = list(self.watches)
        if own is not None and own not in result:
            result.insert(0, own)
        return tuple(result)


@dataclass(frozen=True)
class Offer:
    """One capability line of a worker."""

    name: str
    version: Version | None
    options: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.name] + ([str(self.version)] if self.version else [])
        parts += [f"{k}={v}" for k, v in sorted(self.options.items())]
        return " ".join(parts)


@dataclass(frozen=True)
class Password:
    """A worker password: a Buildbot secret's name, or a literal kept out of repr()."""

    secret: str = ""
    literal: str = field(default="", repr=False)


@dataclass(frozen=True)
class WorkerDef:
    name: str
    path: str
    line: int
    password: Password
    offers: tuple[Offer, ...]
    max_builds: int | None
    notify_on_missing: tuple[str, ...]
    priority: float
    build_only_if_requires: tuple[str, ...]
    db_prefix: str
    properties: Mapping[str, str]

    def offered(self, capability: str) -> tuple[Offer, ...]:
        return tuple(o for o in self.offers if o.name == capability)


@dataclass(frozen=True)
class WatchSection:
    """A manifest section without ``buildout``: its watch lines are a change source only.

    The ancestor's "project not installed by buildout": its repositories are polled or
    accepted by the change hook, and the changes reach every scheduler watching them."""

    name: str
    manifest: str
    line: int
    watches: tuple[Watch, ...]
    poll: bool = False


@dataclass(frozen=True)
class Domain:
    """A ``[domain:NAME]`` section: buildouts whose candidates are frozen into stacks.

    Green builds of each member record its newest *unstable* candidate; the acceptance
    builder freezes one candidate per member into an immutable stack and promotes it
    through the channels (see docs/stacks.md)."""

    name: str
    manifest: str
    line: int
    #: every domain option by name, parsed, defaults included (read with :meth:`get`)
    options: Mapping[str, Any]
    install_targets: tuple[Requirement, ...] = ()

    def get(self, option: Option[T]) -> T:
        return cast(T, self.options[option.name])

    @property
    def section(self) -> str:
        """The section's name as written: ``domain:NAME``."""
        return DOMAIN_SECTION_PREFIX + self.name


@dataclass(frozen=True)
class Config:
    buildouts: tuple[Buildout, ...]
    workers: tuple[WorkerDef, ...]
    watch_sections: tuple[WatchSection, ...] = ()
    #: the manifest files read (as diagnostics name them) and every section they define:
    #: an error at one of those sections is that buildout's, see ``loader.leave_out_broken``
    manifest_paths: tuple[str, ...] = ()
    section_names: frozenset[str] = frozenset()
    #: sections left out without an error of their own, because the section they inherit
    #: from cannot be read: why, as ``FILE:LINE: [section] inherit: ...``
    inherit_broken: Mapping[str, str] = field(default_factory=dict)
    #: ``[domain:NAME]`` sections, whose members are buildouts of ``buildouts``
    domains: tuple[Domain, ...] = ()
