"""The last build of each cell, from the master's database, in a fixed number of queries.

The matrix page and the badges ask for a page's worth of cells at once: one query maps
builder names to ids (real and virtual builders alike: a virtual builder gets its row when
it first builds), one query reads the newest build of each of the wanted builders through
the ``(builderid, number)`` index. Never one query per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

#: Buildbot's result codes, by name (``None`` while a build runs)
RESULT_NAMES = {
    0: "success",
    1: "warnings",
    2: "failure",
    3: "skipped",
    4: "exception",
    5: "retry",
    6: "cancelled",
}


@dataclass(frozen=True)
class LastBuild:
    builderid: int
    buildid: int
    number: int
    results: int | None
    started_at: int
    complete_at: int | None

    @property
    def result_name(self) -> str:
        if self.complete_at is None or self.results is None:
            return "running"
        return RESULT_NAMES.get(self.results, "unknown")


class BuildSource(Protocol):
    """Where the page reads builders and builds from (the master's database)."""

    def builder_ids(self) -> dict[str, int]: ...

    def last_builds(self, builderids: Collection[int] | None) -> dict[int, LastBuild]: ...


class DatabaseBuilds:
    """A :class:`BuildSource` on the master's database connection pool.

    ``run(function, *args)`` runs a function returning a Deferred in the reactor and waits
    for its result (the page runs in a WSGI thread)."""

    def __init__(self, master: Any, run: Callable[..., Any]):
        self.master = master
        self.run = run

    def _do(self, query: Callable[[Any], Any]) -> Any:
        return self.run(self.master.db.pool.do, query)

    def builder_ids(self) -> dict[str, int]:
        table = self.master.db.model.builders

        def query(conn: Any) -> dict[str, int]:
            rows = conn.execute(sa.select(table.c.name, table.c.id))
            return {str(name): int(i) for name, i in rows}

        found: dict[str, int] = self._do(query)
        return found

    def last_builds(self, builderids: Collection[int] | None) -> dict[int, LastBuild]:
        """The newest build of each builder of ``builderids`` (None: of every builder)."""
        if builderids is not None and not builderids:
            return {}
        builds = self.master.db.model.builds
        wanted = None if builderids is None else sorted(set(builderids))

        def query(conn: Any) -> dict[int, LastBuild]:
            newest = sa.select(
                builds.c.builderid, sa.func.max(builds.c.number).label("number")
            ).group_by(builds.c.builderid)
            if wanted is not None:
                newest = newest.where(builds.c.builderid.in_(wanted))
            latest = newest.subquery()
            joined = builds.join(
                latest,
                sa.and_(
                    builds.c.builderid == latest.c.builderid,
                    builds.c.number == latest.c.number,
                ),
            )
            rows = conn.execute(
                sa.select(
                    builds.c.builderid,
                    builds.c.id,
                    builds.c.number,
                    builds.c.results,
                    builds.c.started_at,
                    builds.c.complete_at,
                ).select_from(joined)
            )
            return {int(r[0]): LastBuild(*r) for r in rows}

        found: dict[int, LastBuild] = self._do(query)
        return found
