"""Which cells a tag or a capability filter selects, and the names of the force forms.

Shared by the admins' "force everything matching" form (``render.changes``), its
authorization rule (``www.authz``) and the matrix page's tag filter (``www.matrix_page``),
so that a tag means the same thing everywhere: a builder's tags are its buildout's
``build-category`` words plus one ``ABBREV+VERSION`` per capability version (``pg15``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .capabilities import CapabilityRegistry
from .versions import Version, VersionFilter, parse_requirement

#: the admins-only force form over every builder, which takes a tag or a capability filter
FORCE_MATCHING_SCHEDULER = "force_matching"
#: what a selector may be at most (it is typed in a form)
MAX_SELECTOR = 200
#: the selector that takes every cell
EVERYTHING = "*"

_IDENT_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def force_scheduler_name(buildout: str) -> str:
    """The name of a buildout's own force form: a Buildbot identifier (no ``.`` or ``+``).

    Names that had to be changed get a short hash, so that ``a.b`` and ``a_b`` differ; the
    ``force-`` prefix never makes :data:`FORCE_MATCHING_SCHEDULER`."""
    safe = _IDENT_UNSAFE.sub("_", buildout)
    if safe != buildout:
        safe += "-" + hashlib.sha1(buildout.encode()).hexdigest()[:8]
    return f"force-{safe}"


def cell_tags(
    categories: Iterable[str],
    versions: Iterable[tuple[str, Version]],
    registry: CapabilityRegistry,
) -> tuple[str, ...]:
    """A cell's builder tags: the buildout's categories, then ``pg15``-like version tags."""
    tags = list(categories)
    tags += [f"{registry.get(cap).abbrev}{v}" for cap, v in versions]
    return tuple(dict.fromkeys(tags))


@dataclass(frozen=True)
class Target:
    """One cell as a selector sees it."""

    name: str
    buildout: str
    tags: tuple[str, ...]
    versions: tuple[tuple[str, Version], ...]


@dataclass(frozen=True)
class Selector:
    """A parsed selector: :data:`EVERYTHING`, one tag, or ``CAPABILITY [FILTER]``."""

    text: str
    tag: str = ""
    capability: str = ""
    filter: VersionFilter | None = None

    def matches(self, target: Target) -> bool:
        if self.text == EVERYTHING:
            return True
        if self.tag:
            return self.tag in target.tags
        version = dict(target.versions).get(self.capability)
        return version is not None and (self.filter is None or self.filter.match(version))


def parse_selector(text: str, targets: Sequence[Target]) -> Selector:
    """Read what an admin typed; raises ValueError (one line) for anything that is neither
    ``*``, a known tag, nor a filter on a capability some cell has a version of."""
    value = text.strip()
    if not value:
        raise ValueError("empty: give a tag (pg15), a capability filter (postgresql >= 15) or *")
    if len(value) > MAX_SELECTOR or "\n" in value or "\r" in value:
        raise ValueError(f"longer than {MAX_SELECTOR} characters or several lines")
    if value == EVERYTHING:
        return Selector(value)
    if any(value in t.tags for t in targets):
        return Selector(value, tag=value)
    try:
        name, version_filter = parse_requirement(value)
    except ValueError as exc:
        raise ValueError(f"not a known tag nor a capability filter: {exc}") from None
    known = sorted({cap for t in targets for cap, _ in t.versions})
    if name not in known:
        shown = ", ".join(known) or "none"
        raise ValueError(
            f"{name[:50]!r} is not a known tag nor a capability with versions (known: {shown})"
        )
    return Selector(value, capability=name, filter=version_filter)


def select(selector: Selector, targets: Iterable[Target]) -> dict[str, list[str]]:
    """The selected cells, grouped by buildout (both in the targets' order)."""
    chosen: dict[str, list[str]] = {}
    for target in targets:
        if selector.matches(target):
            chosen.setdefault(target.buildout, []).append(target.name)
    return chosen
