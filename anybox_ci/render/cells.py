"""Virtual cells: one real builder per buildout, one Buildbot *virtual builder* per cell.

A master registers every builder and scheduler in its database at start, a commit each,
so thousands of cells make starts and reconfigs slow. With ``virtual_builders`` (see the
configurator) a buildout gets one real builder, and each of its cells is a virtual builder:
Buildbot gives a build the builder named by its ``virtual_builder_name`` property, so each
cell keeps its own row, history and status in the web UI.

What the cell-per-builder layout got from Buildbot for free is here instead:

- :class:`CellTable`, a service holding each real builder's cells (properties, workers);
- :class:`FanoutMixin`, for schedulers: a buildset naming a real builder becomes one
  buildset per cell, carrying the cell's properties (Buildbot never collapses requests whose
  scheduler properties differ); a name of a cell, or a ``virtual_builder_name`` or
  :data:`CELLS_PROP` property, narrows it to those cells;
- :class:`CellTrigger`, a Trigger step that triggers once per cell, so that it waits for
  each cell's buildset;
- :class:`CellWorkers`, the builder's ``canStartBuild``: a cell runs only on its workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildbot.plugins import schedulers, steps
from buildbot.process.build import Build
from buildbot.process.properties import Properties
from buildbot.util import service
from twisted.internet import defer

CELL_PROP = Build.VIRTUAL_BUILDERNAME_PROP
#: a forced build's cells (a list of names): the force form's cell choice
CELLS_PROP = "anybox_ci_cells"
TABLE_NAME = "anybox-ci-cells"


def real_builder_name(buildout: str) -> str:
    """The real builder of a buildout's virtual cells (no cell name has a space)."""
    return f"{buildout} cells"


@dataclass(frozen=True)
class VirtualCell:
    name: str
    #: what the cell's builds carry: its properties and Buildbot's ``virtual_builder_*``
    properties: tuple[tuple[str, Any], ...]
    workers: frozenset[str]

    def props(self) -> dict[str, Any]:
        return {key: _fresh(value) for key, value in self.properties}


def _fresh(value: Any) -> Any:
    # Buildbot appends "_virtual_" to the tags list it is given: give it a copy
    return list(value) if isinstance(value, list | tuple) else value


def virtual_cell(
    name: str,
    buildout: str,
    properties: Mapping[str, Any],
    workers: Iterable[str],
    tags: Sequence[str],
    description: str | None,
) -> VirtualCell:
    props = dict(properties)
    props[CELL_PROP] = name
    props[Build.VIRTUAL_BUILDER_PROJECT_PROP] = buildout
    props[Build.VIRTUAL_BUILDERTAGS_PROP] = tuple(tags)
    if description:
        props[Build.VIRTUAL_BUILDERDESCRIPTION_PROP] = description
    frozen = tuple(sorted((k, _frozen(v)) for k, v in props.items()))
    return VirtualCell(name, frozen, frozenset(workers))


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


class CellTable(service.BuildbotService):
    """Each real builder's virtual cells, for the schedulers and builders of this master."""

    name = TABLE_NAME

    def checkConfig(self, cells: Mapping[str, Sequence[VirtualCell]] | None = None) -> None:
        pass

    def reconfigService(self, cells: Mapping[str, Sequence[VirtualCell]] | None = None) -> Any:
        self.by_builder = {b: tuple(c) for b, c in (cells or {}).items()}
        self.by_cell = {c.name: (b, c) for b, cs in self.by_builder.items() for c in cs}
        return defer.succeed(None)

    def expand(
        self, names: Sequence[str], properties: Properties | None
    ) -> list[tuple[list[str], VirtualCell | None]]:
        """The buildsets a request on ``names`` becomes: ``(builders, cell)`` each.

        Real builders without cells stay together in one buildset (``cell`` None)."""
        wanted = _wanted(properties)
        plain: list[str] = []
        out: list[tuple[list[str], VirtualCell | None]] = []
        for name in names:
            if name in self.by_cell:
                builder, cell = self.by_cell[name]
                out.append(([builder], cell))
            elif name in self.by_builder:
                cells = self.by_builder[name]
                chosen = [c for c in cells if wanted is None or c.name in wanted]
                out += [([name], c) for c in chosen]
            else:
                plain.append(name)
        return [(plain, None)] + out if plain else out

    def names_virtual(self, names: Sequence[str]) -> bool:
        return any(n in self.by_builder or n in self.by_cell for n in names)

    def allows(self, builder: str, cell: Any, worker: str) -> bool:
        found = self.by_cell.get(cell) if isinstance(cell, str) else None
        return found is not None and found[0] == builder and worker in found[1].workers


def _wanted(properties: Properties | None) -> set[str] | None:
    """The cells a request narrows itself to, or None: all of them."""
    if properties is None:
        return None
    one = properties.getProperty(CELL_PROP)
    if isinstance(one, str):
        return {one}
    some = properties.getProperty(CELLS_PROP)
    if isinstance(some, list | tuple):  # the force form's choice: none means none
        return {s for s in some if isinstance(s, str)}
    return None


def cell_table(master: Any) -> CellTable | None:
    table = master.service_manager.namedServices.get(TABLE_NAME)
    return table if isinstance(table, CellTable) and hasattr(table, "by_cell") else None


class FanoutMixin:
    """A scheduler whose buildsets on a buildout's real builder become one per cell."""

    master: Any

    @defer.inlineCallbacks
    def addBuildsetForSourceStamps(
        self,
        waited_for: bool = False,
        builderNames: Any = None,
        properties: Any = None,
        **kwargs: Any,
    ) -> Any:
        table = cell_table(self.master)
        names = builderNames or getattr(self, "builderNames", None) or []
        names = list(names)
        if table is None or not table.names_virtual(names):
            result = yield super().addBuildsetForSourceStamps(  # type: ignore[misc]
                waited_for, builderNames=builderNames, properties=properties, **kwargs
            )
            return result
        first: Any = None
        requests: dict[Any, Any] = {}
        for builders, cell in table.expand(names, properties):
            props = Properties()
            if properties is not None:
                props.updateFromProperties(properties)
            if cell is not None:
                # Buildbot collapses requests whose "Scheduler" properties are equal
                props.update(cell.props(), "Scheduler")
            bsid, brids = yield super().addBuildsetForSourceStamps(  # type: ignore[misc]
                waited_for, builderNames=builders, properties=props, **kwargs
            )
            first = bsid if first is None else first
            requests.update(brids)
        return first, requests


class AnyBranchScheduler(FanoutMixin, schedulers.AnyBranchScheduler):
    pass


class Nightly(FanoutMixin, schedulers.Nightly):
    pass


class Triggerable(FanoutMixin, schedulers.Triggerable):
    """Triggered once per cell by :class:`CellTrigger`, so each call is one buildset."""


class CellTrigger(steps.Trigger):
    """A Trigger that triggers each scheduler once per virtual cell of its builders, so
    that it waits for (and links) every cell's build."""

    def getSchedulersAndProperties(self) -> list[dict[str, Any]]:
        plain = super().getSchedulersAndProperties()
        table = cell_table(self.master)
        if table is None:
            return plain
        out: list[dict[str, Any]] = []
        for entry in plain:
            sched = self.getSchedulerByName(entry["sched_name"])
            names = list(getattr(sched, "builderNames", None) or [])
            cells = [c for _, c in table.expand(names, None) if c is not None]
            if not cells:
                out.append(entry)
                continue
            for cell in cells:
                props = dict(entry["props_to_set"] or {})
                props[CELL_PROP] = cell.name
                out.append({**entry, "props_to_set": props})
        return out


class CellWorkers:
    """``canStartBuild`` of a real builder: a cell's build runs only on the cell's workers.

    Equal for every builder, so that a reconfig keeps the builder configs (``render.memo``)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CellWorkers)

    def __hash__(self) -> int:
        return hash(CellWorkers)

    def __call__(self, builder: Any, wfb: Any, request: Any) -> bool:
        table = cell_table(builder.master)
        cell = request.properties.getProperty(CELL_PROP)
        return table is not None and table.allows(builder.name, cell, wfb.worker.workername)
