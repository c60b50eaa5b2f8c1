"""The matrix page's rows and columns, made once per (re)configuration from the plan.

Rows are buildouts, columns are capability versions (``postgresql 15``; a buildout without
``build-for`` has one cell, in the "any version" column). A slot of a row is either a cell
(a builder name) or the reason why there is none: the plan's unmatched reason, or the
buildout's ``build-for`` not taking that version. Nothing here talks to Buildbot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ..core import schema
from ..core.capabilities import CapabilityRegistry
from ..core.model import Buildout
from ..core.plan import Cell, Matrix
from ..core.selection import cell_tags
from ..core.versions import Version

#: the column of the cells that have no version axis
ANY_COLUMN = ""


@dataclass(frozen=True)
class Column:
    #: the cells' name suffix (``-pg15``), "" for cells without versions
    key: str
    label: str
    versions: tuple[tuple[str, Version], ...] = ()


@dataclass(frozen=True)
class Slot:
    """One cell of the table: a builder (``cell``), or why there is none (``reason``)."""

    cell: str = ""
    reason: str = ""
    #: the workers that may build the cell
    workers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    buildout: str
    #: the tags of the buildout's builders (categories and version tags)
    tags: tuple[str, ...]
    slots: Mapping[str, Slot]
    #: why the buildout has no cell at all (no worker, broken section), or ""
    reason: str = ""
    broken: bool = False

    @property
    def cells(self) -> list[str]:
        return [s.cell for s in self.slots.values() if s.cell]


@dataclass(frozen=True)
class MatrixModel:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    #: every tag a row has, sorted: the tag filter's choices
    tags: tuple[str, ...] = ()
    by_name: Mapping[str, Row] = field(default_factory=dict)

    @property
    def cell_count(self) -> int:
        return sum(len(r.cells) for r in self.rows)


def _label(versions: Sequence[tuple[str, Version]]) -> str:
    return " · ".join(f"{cap} {v}" for cap, v in versions) or "any version"


def build_model(
    matrix: Matrix,
    buildouts: Iterable[Buildout] = (),
    registry: CapabilityRegistry | None = None,
) -> MatrixModel:
    """Rows (sorted by buildout name) and columns (sorted by versions) of the plan."""
    registry = registry or CapabilityRegistry()
    known = {b.name: b for b in buildouts}
    columns: dict[str, Column] = {}
    slots: dict[str, dict[str, Slot]] = {}
    tags: dict[str, dict[str, None]] = {}
    reasons: dict[str, str] = {}
    broken: set[str] = set()

    def row_tags(name: str) -> dict[str, None]:
        found = tags.get(name)
        if found is None:
            buildout = known.get(name)
            categories = buildout.get(schema.BUILD_CATEGORY) if buildout else ()
            found = tags[name] = dict.fromkeys(categories)
        return found

    cell: Cell
    for cell in matrix.cells:
        key = cell.name[len(cell.buildout) :]
        columns.setdefault(key, Column(key, _label(cell.versions), cell.versions))
        slots.setdefault(cell.buildout, {})[key] = Slot(cell=cell.name, workers=cell.workers)
        row_tags(cell.buildout).update(dict.fromkeys(cell_tags((), cell.versions, registry)))
    for unmatched in matrix.unmatched:
        row_tags(unmatched.buildout)
        if not unmatched.cell:
            reasons[unmatched.buildout] = unmatched.reason
            continue
        key = unmatched.cell[len(unmatched.buildout) :]
        columns.setdefault(key, Column(key, key.lstrip("-")))
        slots.setdefault(unmatched.buildout, {})[key] = Slot(reason=unmatched.reason)
    for b in matrix.broken:
        row_tags(b.buildout)
        reasons[b.buildout] = b.reason
        broken.add(b.buildout)

    ordered = tuple(
        sorted(
            columns.values(),
            key=lambda c: (c.key != ANY_COLUMN, not c.versions, c.versions, c.key),
        )
    )
    rows: list[Row] = []
    for name in sorted(set(slots) | set(reasons)):
        own = slots.get(name, {})
        full: dict[str, Slot] = {}
        if name not in reasons:
            for column in ordered:
                full[column.key] = own.get(column.key) or Slot(
                    reason=_not_built_for(known.get(name), column)
                )
        rows.append(
            Row(
                buildout=name,
                tags=tuple(row_tags(name)),
                slots=MappingProxyType(full),
                reason=reasons.get(name, ""),
                broken=name in broken,
            )
        )
    all_tags = tuple(sorted({t for r in rows for t in r.tags}))
    return MatrixModel(
        ordered, tuple(rows), all_tags, MappingProxyType({r.buildout: r for r in rows})
    )


def _not_built_for(buildout: Buildout | None, column: Column) -> str:
    """Why a buildout has no cell in a column that other buildouts have."""
    if buildout is None:
        return "not planned"
    if not buildout.build_for:
        return "no build-for: one cell, in the 'any version' column"
    if column.key == ANY_COLUMN:
        return "built per version"
    lines = "; ".join(str(r) for r in buildout.build_for)
    return f"not selected by build-for = {lines}"
