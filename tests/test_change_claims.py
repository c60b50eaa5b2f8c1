"""The hook's de-duplication lives in the database: one claim per change id, whoever asks.

Runs :mod:`anybox_ci.www.change_claims` against Buildbot's own schema (its SQLAlchemy model,
created in a real database): SQLite in a file, and PostgreSQL on every configured major
(live). Two connections racing for the same change id stand for two masters that got the
same notification at once: exactly one wins, and the revision-indexed lookup finds the change
once it was added.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from buildbot.db.model import Model

from anybox_ci.changes.protocol import CHANGE_ID_PROPERTY
from anybox_ci.devtools.pgcluster import Cluster
from anybox_ci.www import change_claims

REVISION = "a" * 40
CID = "c" * 64


class _Model:
    """The two tables :func:`change_claims.find_added` reads, as Buildbot's model has them."""

    changes = Model.changes
    change_properties = Model.change_properties


def _engine_with_schema(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    Model.metadata.create_all(engine)
    return engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = _engine_with_schema(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield engine
    engine.dispose()


def _add_change(engine: sa.Engine, revision: str, cid: str) -> None:
    with engine.begin() as conn:
        ssid = conn.execute(
            Model.sourcestamps.insert().values(ss_hash=cid[:40], created_at=0)
        ).inserted_primary_key[0]
        changeid = conn.execute(
            Model.changes.insert().values(
                author="a",
                comments="",
                branch="main",
                revision=revision,
                revlink="",
                when_timestamp=0,
                category="",
                repository="r",
                codebase="",
                project="",
                sourcestampid=ssid,
            )  # fmt: skip
        ).inserted_primary_key[0]
        conn.execute(
            Model.change_properties.insert().values(
                changeid=changeid,
                property_name=CHANGE_ID_PROPERTY,
                property_value=change_claims.property_value(cid),
            )
        )


def _claims_behave(engine: sa.Engine) -> None:
    now = int(time.time())
    with engine.connect() as conn:
        change_claims.ensure_table(conn)
        change_claims.ensure_table(conn)  # again: a no-op
        assert not change_claims.find_added(conn, _Model, REVISION, CID)
        assert change_claims.claim(conn, CID, now) is None  # taken
        assert change_claims.claim(conn, CID, now + 1) == now  # already held, since `now`
        # a stale claim is taken over once: the second taker sees another time
        assert change_claims.take_over(conn, CID, now, now + 100)
        assert not change_claims.take_over(conn, CID, now, now + 101)
    _add_change(engine, REVISION, CID)
    with engine.connect() as conn:
        assert change_claims.find_added(conn, _Model, REVISION, CID)
        assert not change_claims.find_added(conn, _Model, REVISION, "d" * 64)
        assert not change_claims.find_added(conn, _Model, "b" * 40, CID)
        # claims older than KEEP_CLAIMS go, the others stay
        assert change_claims.claim(conn, "e" * 64, now - change_claims.KEEP_CLAIMS - 5) is None
        assert change_claims.prune(conn, now) == 1
        assert change_claims.claim(conn, CID, now) == now + 100


def _race(engine: sa.Engine, contenders: int = 8) -> list[int | None]:
    """Each thread is a master with its own connection, all claiming one id at once."""
    with engine.connect() as conn:
        change_claims.ensure_table(conn)
    barrier = threading.Barrier(contenders)
    answers: list[int | None] = []
    lock = threading.Lock()

    def contend() -> None:
        with engine.connect() as conn:
            barrier.wait()
            answer = change_claims.claim(conn, "f" * 64, 1000)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_claims_on_sqlite(sqlite_engine: sa.Engine) -> None:
    _claims_behave(sqlite_engine)


def test_one_of_many_concurrent_claims_wins_on_sqlite(sqlite_engine: sa.Engine) -> None:
    answers = _race(sqlite_engine)
    assert sorted(answers, key=str) == [1000] * 7 + [None]


def test_lookup_uses_the_revision_index(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as conn:
        query = str(
            sa.select(Model.changes.c.changeid)
            .where(Model.changes.c.revision == REVISION)
            .compile(compile_kwargs={"literal_binds": True})
        )
        plan = " ".join(
            str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + query).fetchall()
        )
    assert "changes_revision" in plan, plan


@pytest.fixture
def pg_engine(pg_cluster: Cluster) -> Iterator[sa.Engine]:
    name = f"claims_{pg_cluster.major}_{int(time.time() * 1000)}"
    pg_cluster.psql(f"CREATE DATABASE {name}")
    engine = _engine_with_schema(
        f"postgresql+psycopg2://{pg_cluster.user}@/{name}"
        f"?host={pg_cluster.host}&port={pg_cluster.port}"
    )
    yield engine
    engine.dispose()
    pg_cluster.psql(f"DROP DATABASE {name}")


@pytest.mark.live
def test_claims_on_postgresql(pg_engine: sa.Engine) -> None:
    _claims_behave(pg_engine)


@pytest.mark.live
def test_one_of_many_concurrent_claims_wins_on_postgresql(pg_engine: sa.Engine) -> None:
    answers = _race(pg_engine)
    assert sorted(answers, key=str) == [1000] * 7 + [None]
