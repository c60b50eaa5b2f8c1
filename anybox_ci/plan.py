"""The matrix: a pure function from buildouts and workers to cells.

A cell is one builder: a buildout, one version per ``build-for`` capability, and the
workers able to run it. Whatever cannot run anywhere is reported in ``unmatched`` with
a reason, never dropped silently.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .capabilities import CapabilityRegistry
from .model import Buildout, Requirement, WorkerDef
from .versions import Version

_MAX_REASONS = 3


@dataclass(frozen=True)
class Cell:
    name: str
    buildout: str
    #: (capability, version) per build-for line, in line order
    versions: tuple[tuple[str, Version], ...]
    #: candidate workers, highest priority first, then by name
    workers: tuple[str, ...]
    properties: Mapping[str, Any]

    def version_of(self, capability: str) -> Version | None:
        return dict(self.versions).get(capability)


@dataclass(frozen=True)
class Unmatched:
    buildout: str
    cell: str
    reason: str


@dataclass(frozen=True)
class Matrix:
    cells: tuple[Cell, ...]
    unmatched: tuple[Unmatched, ...]

    def as_json(self) -> dict[str, Any]:
        """The ``anybox-ci matrix --json`` contract; every list is sorted."""
        return {
            "builders": [
                {
                    "name": c.name,
                    "buildout": c.buildout,
                    "workers": sorted(c.workers),
                    "properties": dict(sorted(c.properties.items())),
                }
                for c in self.cells
            ],
            "unmatched": [
                {"buildout": u.buildout, "reason": u.reason} | ({"cell": u.cell} if u.cell else {})
                for u in self.unmatched
            ],
        }


def _offers_matching(worker: WorkerDef, req: Requirement) -> list[Version | None]:
    found: list[Version | None] = []
    for offer in worker.offered(req.capability):
        if offer.version is None:
            if req.filter.is_any:
                found.append(None)
        elif req.filter.match(offer.version):
            found.append(offer.version)
    return found


def _rejection(worker: WorkerDef, buildout: Buildout) -> str | None:
    """Why ``worker`` cannot build ``buildout`` at all, or None."""
    for req in buildout.build_requires:
        if not _offers_matching(worker, req):
            return f"{worker.name} lacks {req}"
    if worker.build_only_if_requires:
        wanted = {r.capability for r in (*buildout.build_requires, *buildout.build_for)}
        if not wanted.intersection(worker.build_only_if_requires):
            only = ", ".join(worker.build_only_if_requires)
            return f"{worker.name} only builds what requires {only}"
    return None


def _summarise(reasons: Sequence[str]) -> str:
    shown = "; ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f"; and {len(reasons) - _MAX_REASONS} more"
    return shown


def _ordered(workers: Sequence[WorkerDef]) -> tuple[str, ...]:
    return tuple(w.name for w in sorted(workers, key=lambda w: (-w.priority, w.name)))


def plan_buildout(
    buildout: Buildout, workers: Sequence[WorkerDef], registry: CapabilityRegistry
) -> tuple[list[Cell], list[Unmatched]]:
    eligible: list[WorkerDef] = []
    reasons: list[str] = []
    for worker in workers:
        why = _rejection(worker, buildout)
        if why is None:
            eligible.append(worker)
        else:
            reasons.append(why)
    if not eligible:
        reason = "no worker" if not workers else "no eligible worker: " + _summarise(reasons)
        return [], [Unmatched(buildout.name, "", reason)]

    base_props: dict[str, Any] = {
        "buildout": buildout.name,
        "build_requires": [str(r) for r in buildout.build_requires],
    }
    if not buildout.build_for:
        return [
            Cell(buildout.name, buildout.name, (), _ordered(eligible), MappingProxyType(base_props))
        ], []

    axes: list[list[Version]] = []
    for req in buildout.build_for:
        versions = {v for w in eligible for v in _offers_matching(w, req) if v is not None}
        if not versions:
            offered = sorted(
                {
                    str(o.version)
                    for w in eligible
                    for o in w.offered(req.capability)
                    if o.version is not None
                }
            )
            detail = f" (offered: {', '.join(offered)})" if offered else ""
            return [], [Unmatched(buildout.name, "", f"no eligible worker offers {req}{detail}")]
        axes.append(sorted(versions))

    cells: list[Cell] = []
    unmatched: list[Unmatched] = []
    for combo in itertools.product(*axes):
        pairs = tuple((req.capability, v) for req, v in zip(buildout.build_for, combo, strict=True))
        name = buildout.name + "".join(f"-{registry.get(cap).abbrev}{v}" for cap, v in pairs)
        runners = [
            w
            for w in eligible
            if all(any(o.version == v for o in w.offered(cap)) for cap, v in pairs)
        ]
        if not runners:
            wanted = " and ".join(f"{cap} {v}" for cap, v in pairs)
            unmatched.append(Unmatched(buildout.name, name, f"no single worker offers {wanted}"))
            continue
        props = dict(base_props)
        for cap, v in pairs:
            props[registry.get(cap).version_prop] = str(v)
        cells.append(Cell(name, buildout.name, pairs, _ordered(runners), MappingProxyType(props)))
    return cells, unmatched


def plan(
    buildouts: Sequence[Buildout],
    workers: Sequence[WorkerDef],
    registry: CapabilityRegistry | None = None,
) -> Matrix:
    registry = registry or CapabilityRegistry()
    cells: list[Cell] = []
    unmatched: list[Unmatched] = []
    for buildout in buildouts:
        c, u = plan_buildout(buildout, workers, registry)
        cells += c
        unmatched += u
    cells.sort(key=lambda c: c.name)
    unmatched.sort(key=lambda u: (u.buildout, u.cell))
    return Matrix(tuple(cells), tuple(unmatched))
