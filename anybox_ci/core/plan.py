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
from .versions import NOT_USED, Version

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
class Broken:
    """A buildout left out of the running configuration: ``reason`` is its first problem,
    ``FILE:LINE: [section] option: message``."""

    buildout: str
    reason: str


@dataclass(frozen=True)
class Matrix:
    cells: tuple[Cell, ...]
    unmatched: tuple[Unmatched, ...]
    #: buildouts left out because of an error (a master started with a broken section)
    broken: tuple[Broken, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The ``anybox-ci matrix --json`` contract; every list is sorted.

        ``broken`` is only there when a buildout is broken, so that a valid configuration
        gives exactly the contract's two keys."""
        found: dict[str, Any] = {
            "builders": [
                {
                    "name": c.name,
                    "buildout": c.buildout,
                    "workers": sorted(c.workers),
                    "properties": dict(sorted(c.properties.items())),
                }
                for c in self.cells
            ],
            # exactly the contract's keys: a cell's name leads its reason
            "unmatched": [
                {"buildout": u.buildout, "reason": f"{u.cell}: {u.reason}" if u.cell else u.reason}
                for u in self.unmatched
            ],
        }
        if self.broken:
            found["broken"] = [
                {"buildout": b.buildout, "reason": b.reason}
                for b in sorted(self.broken, key=lambda b: (b.buildout, b.reason))
            ]
        return found


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
        # as the ancestor: every one of them must be required (build-for lines count too)
        wanted = {r.capability for r in (*buildout.build_requires, *buildout.build_for)}
        if not wanted.issuperset(worker.build_only_if_requires):
            only = " and ".join(worker.build_only_if_requires)
            return f"{worker.name} only builds what requires {only}"
    return None


def _spelling(version: Version) -> tuple[int, str]:
    return len(str(version)), str(version)


def _summarise(reasons: Sequence[str]) -> str:
    shown = "; ".join(reasons[:_MAX_REASONS])
    if len(reasons) > _MAX_REASONS:
        shown += f"; and {len(reasons) - _MAX_REASONS} more"
    return shown


def _ordered(workers: Sequence[WorkerDef]) -> tuple[str, ...]:
    return tuple(w.name for w in sorted(workers, key=lambda w: (-w.priority, w.name)))


@dataclass(frozen=True)
class _Combo:
    """One cell of a requirement shape, before it gets a buildout's name."""

    pairs: tuple[tuple[str, Version], ...]
    suffix: str
    #: candidate workers in order; empty when no single worker offers the combo
    runners: tuple[str, ...]
    wanted: str
    version_props: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Shape:
    """What planning depends on: a buildout's ``build-requires`` and ``build-for`` lines.

    Buildouts sharing these lines (typically through ``[DEFAULT]``) share one shape, so
    the matching of workers is done once per shape, not once per buildout.
    """

    #: the reason of a buildout-level unmatched entry, or "" when there are cells
    unmatched: str
    eligible: tuple[str, ...]
    combos: tuple[_Combo, ...]


#: the text of the requirement lines: equal texts give equal shapes, messages included
_ShapeKey = tuple[tuple[str, ...], tuple[str, ...]]


def _shape_key(buildout: Buildout) -> _ShapeKey:
    return (
        tuple(str(r) for r in buildout.build_requires),
        tuple(str(r) for r in buildout.build_for),
    )


def _plan_shape(
    buildout: Buildout, workers: Sequence[WorkerDef], registry: CapabilityRegistry
) -> _Shape:
    build_for = buildout.build_for
    eligible: list[WorkerDef] = []
    reasons: list[str] = []
    for worker in workers:
        why = _rejection(worker, buildout)
        if why is None:
            eligible.append(worker)
        else:
            reasons.append(why)
    if not eligible:
        reason = (
            "no worker" if not workers else "no eligible worker: " + _summarise(sorted(reasons))
        )
        return _Shape(reason, (), ())
    if not build_for:
        return _Shape("", _ordered(eligible), ())

    axes: list[list[Version]] = []
    #: per build-for line: worker name -> the versions it offers that match
    offered_by: list[dict[str, set[Version]]] = []
    for req in build_for:
        # Equal versions may be spelled differently ("15" and "15.0"): keep the shortest
        # spelling, so that names do not depend on the order of the workers.
        versions: dict[Version, Version] = {}
        per_worker: dict[str, set[Version]] = {}
        for w in eligible:
            matching = [v for v in _offers_matching(w, req) if v is not None]
            per_worker[w.name] = set(matching)
            for v in matching:
                if v not in versions or _spelling(v) < _spelling(versions[v]):
                    versions[v] = v
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
            return _Shape(f"no eligible worker offers {req}{detail}", (), ())
        axes.append(sorted(versions.values()))
        offered_by.append(per_worker)

    combos: list[_Combo] = []
    for combo in itertools.product(*axes):
        pairs = tuple((req.capability, v) for req, v in zip(build_for, combo, strict=True))
        runners = [
            w
            for w in eligible
            if all(v in per_worker[w.name] for v, per_worker in zip(combo, offered_by, strict=True))
        ]
        combos.append(
            _Combo(
                pairs=pairs,
                suffix="".join(f"-{registry.get(cap).abbrev}{v}" for cap, v in pairs),
                runners=_ordered(runners),
                wanted=" and ".join(f"{cap} {v}" for cap, v in pairs),
                version_props=tuple((registry.get(cap).version_prop, str(v)) for cap, v in pairs),
            )
        )
    return _Shape("", _ordered(eligible), tuple(combos))


def plan_buildout(
    buildout: Buildout,
    workers: Sequence[WorkerDef],
    registry: CapabilityRegistry,
    shapes: dict[_ShapeKey, _Shape] | None = None,
) -> tuple[list[Cell], list[Unmatched]]:
    """The cells of one buildout; ``shapes`` caches the worker matching across buildouts."""
    shape: _Shape | None
    if shapes is None:
        shape = _plan_shape(buildout, workers, registry)
    else:
        key = _shape_key(buildout)
        shape = shapes.get(key)
        if shape is None:
            shape = shapes[key] = _plan_shape(buildout, workers, registry)
    if shape.unmatched:
        return [], [Unmatched(buildout.name, "", shape.unmatched)]

    base_props: dict[str, Any] = {
        "buildout": buildout.name,
        "build_requires": sorted(str(r) for r in buildout.build_requires),
    }
    # ``build-for = postgresql not-used``: no version axis, and the property says so
    base_props.update((registry.get(cap).version_prop, NOT_USED) for cap in buildout.not_used)
    if not shape.combos:
        return [
            Cell(buildout.name, buildout.name, (), shape.eligible, MappingProxyType(base_props))
        ], []

    cells: list[Cell] = []
    unmatched: list[Unmatched] = []
    for combo in shape.combos:
        name = buildout.name + combo.suffix
        if not combo.runners:
            unmatched.append(
                Unmatched(buildout.name, name, f"no single worker offers {combo.wanted}")
            )
            continue
        props = dict(base_props)
        props.update(combo.version_props)
        cells.append(Cell(name, buildout.name, combo.pairs, combo.runners, MappingProxyType(props)))
    return cells, unmatched


def plan(
    buildouts: Sequence[Buildout],
    workers: Sequence[WorkerDef],
    registry: CapabilityRegistry | None = None,
) -> Matrix:
    registry = registry or CapabilityRegistry()
    cells: list[Cell] = []
    unmatched: list[Unmatched] = []
    shapes: dict[_ShapeKey, _Shape] = {}
    for buildout in buildouts:
        c, u = plan_buildout(buildout, workers, registry, shapes)
        cells += c
        unmatched += u
    cells.sort(key=lambda c: c.name)
    unmatched.sort(key=lambda u: (u.buildout, u.cell))
    return Matrix(tuple(cells), tuple(unmatched))
