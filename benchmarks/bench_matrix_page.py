"""The matrix page at 1,000 buildouts: one served page against the whole table. A script.

The data is real SQL on Buildbot's own schema (``buildbot.db.model``, created in a SQLite
file): 1,000 buildouts x 3 PostgreSQL versions = 3,000 builders with ``--builds`` builds each.
The page's queries (:class:`anybox_ci.www.matrix_data.DatabaseBuilds`) run on it through a
stand-in for the master's connection pool that calls them on one connection.

- **paged**: what a request costs: filter, two queries, render 50 rows (first page, a middle
  page, and the ``result=failure`` filter, which reads the last build of every cell);
- **baseline, whole table**: the same code asked for all 1,000 rows on one page, which is
  what an unpaged matrix would serve.

Medians of ``--runs`` rounds, in milliseconds.

    .venv/bin/python benchmarks/bench_matrix_page.py [--runs 15] [--builds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import sqlalchemy as sa
from buildbot.db.model import Model

from anybox_ci.core.plan import Cell, Matrix
from anybox_ci.core.versions import Version
from anybox_ci.www.matrix_data import DatabaseBuilds
from anybox_ci.www.matrix_model import build_model
from anybox_ci.www.matrix_page import PAGE_SIZES, Query, render_html, select_page

BUILDOUTS = 1000
VERSIONS = ("13", "15", "17")


def _database(path: Path, builds: int) -> sa.engine.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    Model.metadata.create_all(engine)
    m = Model.metadata.tables
    with engine.begin() as conn:
        conn.execute(
            m["masters"].insert(),
            [{"id": 1, "name": "m", "name_hash": "m", "active": 1, "last_active": 0}],
        )
        conn.execute(
            m["buildsets"].insert(), [{"id": 1, "submitted_at": 0, "results": -1, "complete": 1}]
        )
        names = [f"b{i:04d}-pg{v}" for i in range(BUILDOUTS) for v in VERSIONS]
        conn.execute(
            m["builders"].insert(),
            [{"id": n, "name": name, "name_hash": f"{n:040d}"} for n, name in enumerate(names, 1)],
        )
        conn.execute(
            m["buildrequests"].insert(),
            [
                {
                    "id": 1,
                    "buildsetid": 1,
                    "builderid": 1,
                    "priority": 0,
                    "complete": 1,
                    "results": 0,
                    "submitted_at": 0,
                }
            ],
        )
        rows = []
        for builderid in range(1, len(names) + 1):
            for number in range(1, builds + 1):
                rows.append(
                    {
                        "number": number,
                        "builderid": builderid,
                        "buildrequestid": 1,
                        "masterid": 1,
                        "started_at": 1_700_000_000 + number,
                        "complete_at": 1_700_000_060 + number,
                        "locks_duration_s": 0,
                        "state_string": "finished",
                        "results": 2 if builderid % 97 == 0 else 0,
                    }
                )
        conn.execute(m["builds"].insert(), rows)
    return engine


def _source(engine: sa.engine.Engine) -> DatabaseBuilds:
    def do(function: Callable[[Any], Any]) -> Any:
        with engine.connect() as conn:
            return function(conn)

    master = SimpleNamespace(
        db=SimpleNamespace(pool=SimpleNamespace(do=do), model=SimpleNamespace(**{
            "builders": Model.metadata.tables["builders"],
            "builds": Model.metadata.tables["builds"],
        }))
    )  # fmt: skip
    return DatabaseBuilds(master, lambda f, *a: f(*a))


def _median_ms(runs: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--builds", type=int, default=5)
    args = parser.parse_args()
    cells = tuple(
        Cell(f"b{i:04d}-pg{v}", f"b{i:04d}", (("postgresql", Version.parse(v)),), ("w1",), MappingProxyType({}))
        for i in range(BUILDOUTS)
        for v in VERSIONS
    )  # fmt: skip
    model = build_model(Matrix(cells, ()))
    with tempfile.TemporaryDirectory() as tmp:
        engine = _database(Path(tmp) / "state.sqlite", args.builds)
        source = _source(engine)

        def page(query: Query) -> Callable[[], str]:
            return lambda: render_html(model, query, select_page(model, query, source), "/")

        everything = Query(size=BUILDOUTS)
        # the whole table, by the same code (PAGE_SIZES would refuse it from a request)
        figures = {
            "page 1 (50 rows)": _median_ms(args.runs, page(Query())),
            "page 10 (50 rows)": _median_ms(args.runs, page(Query(page=10))),
            "result=failure (50 rows)": _median_ms(args.runs, page(Query(result="failure"))),
            f"baseline: whole table ({BUILDOUTS} rows)": _median_ms(args.runs, page(everything)),
        }
    print(
        f"matrix page, {BUILDOUTS} buildouts x {len(VERSIONS)} versions, "
        f"{args.builds} builds per cell, medians of {args.runs} (page sizes {PAGE_SIZES}):"
    )
    base = figures[f"baseline: whole table ({BUILDOUTS} rows)"]
    for name, ms in figures.items():
        print(f"  {name:<32} {ms:8.1f} ms   {ms / base:5.2f} x baseline")


if __name__ == "__main__":
    main()
