"""The stack tables in the master's own database, and their atomic operations.

The tables (``anybox_ci_*``) live beside Buildbot's in the database of ``c['db']['db_url']``
(SQLite by default, PostgreSQL in production), created when missing. Every operation is one
transaction, so with several masters on one database:

- recording a candidate twice (each master sees the same finished build) keeps one row
  (unique buildout + fingerprint);
- two freezes of a domain never get the same number (unique domain + number, retried);
- a promotion moves the channel and writes its log line together: *stable* always names one
  complete stack, and the log says who moved it.

Blocking calls: the master runs them in a thread (``deferToThread``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from .model import (
    CHANNELS,
    TESTING,
    Candidate,
    ChannelMove,
    Member,
    Pin,
    Stack,
    fingerprint,
    pins_from_json,
    pins_to_json,
)

METADATA = sa.MetaData()

CANDIDATES = sa.Table(
    "anybox_ci_candidates",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("buildout", sa.String(200), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("revisions", sa.Text, nullable=False),
    sa.Column("release_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("artefact", sa.String(1000), nullable=False, server_default=""),
    sa.Column("artefact_sha256", sa.String(64), nullable=False, server_default=""),
    sa.Column("build_url", sa.String(1000), nullable=False, server_default=""),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.UniqueConstraint("buildout", "fingerprint", name="anybox_ci_candidates_unique"),
)
STACKS = sa.Table(
    "anybox_ci_stacks",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.String(200), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("frozen_by", sa.String(200), nullable=False),
    sa.Column("frozen_at", sa.Float, nullable=False),
    sa.UniqueConstraint("domain", "number", name="anybox_ci_stacks_unique"),
)
MEMBERS = sa.Table(
    "anybox_ci_stack_members",
    METADATA,
    sa.Column("stack_id", sa.Integer, sa.ForeignKey("anybox_ci_stacks.id"), primary_key=True),
    sa.Column("buildout", sa.String(200), primary_key=True),
    sa.Column("candidate_id", sa.Integer, nullable=False),
    sa.Column("revisions", sa.Text, nullable=False),
    sa.Column("release_version", sa.String(64), nullable=False),
    sa.Column("artefact", sa.String(1000), nullable=False),
    sa.Column("artefact_sha256", sa.String(64), nullable=False),
    sa.Column("build_url", sa.String(1000), nullable=False),
)
CHANNELS_TABLE = sa.Table(
    "anybox_ci_channels",
    METADATA,
    sa.Column("domain", sa.String(200), primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
CHANNEL_LOG = sa.Table(
    "anybox_ci_channel_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("previous", sa.Integer, nullable=True),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("note", sa.String(1000), nullable=False, server_default=""),
    sa.Column("at", sa.Float, nullable=False),
)

#: attempts of an operation that lost a race against another master
RETRIES = 8


class StackError(Exception):
    """An operation that cannot be done (no candidate yet, no such stack); one line."""


def engine_url(db_url: str, basedir: Path | None = None) -> str:
    """``db_url`` as SQLAlchemy reads it: a relative SQLite path is the master's, as
    Buildbot reads it (``sqlite:///state.sqlite`` is ``BASEDIR/state.sqlite``)."""
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database or "")
        if not path.is_absolute() and basedir is not None:
            url = url.set(database=str((basedir / path).resolve()))
    return url.render_as_string(hide_password=False)


def make_engine(db_url: str, basedir: Path | None = None) -> Engine:
    url = engine_url(db_url, basedir)
    if url.startswith("sqlite"):
        # Buildbot's own connections write to the same file: wait for them, never fail
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url, pool_pre_ping=True)


class StackStore:
    """The stack tables of one database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._created = False

    @classmethod
    def open(cls, db_url: str, basedir: Path | None = None) -> StackStore:
        return cls(make_engine(db_url, basedir))

    def close(self) -> None:
        self.engine.dispose()

    def create_tables(self) -> None:
        """Create the tables that are missing (two masters doing it at once is fine)."""
        if self._created:
            return
        for attempt in range(RETRIES):
            try:
                METADATA.create_all(self.engine, checkfirst=True)
                break
            except (IntegrityError, OperationalError):
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))  # another master is creating them
        self._created = True

    def _retrying(self, operation: Any) -> Any:
        self.create_tables()
        for attempt in range(RETRIES):
            try:
                with self.engine.begin() as conn:
                    return operation(conn)
            except IntegrityError:
                if attempt == RETRIES - 1:
                    raise
            except OperationalError as exc:  # SQLite: "database is locked"
                if "locked" not in str(exc) or attempt == RETRIES - 1:
                    raise
            time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ candidates

    def record_candidate(
        self,
        buildout: str,
        pins: Sequence[Pin],
        release_version: str = "",
        artefact: str = "",
        artefact_sha256: str = "",
        build_url: str = "",
        now: float | None = None,
    ) -> Candidate:
        """Make this the newest candidate of ``buildout``; the same revisions and artefact
        seen again (another cell, another master) only become the newest again."""
        ordered = tuple(sorted(pins, key=lambda p: p.codebase))
        key = fingerprint(ordered, artefact_sha256)
        at = time.time() if now is None else now

        def operation(conn: Connection) -> Candidate:
            where = (CANDIDATES.c.buildout == buildout) & (CANDIDATES.c.fingerprint == key)
            row = conn.execute(sa.select(CANDIDATES).where(where)).first()
            if row is None:
                conn.execute(
                    CANDIDATES.insert().values(
                        buildout=buildout,
                        fingerprint=key,
                        revisions=pins_to_json(ordered),
                        release_version=release_version,
                        artefact=artefact,
                        artefact_sha256=artefact_sha256,
                        build_url=build_url,
                        recorded_at=at,
                    )
                )
            elif float(row._mapping["recorded_at"]) < at:
                conn.execute(CANDIDATES.update().where(where).values(recorded_at=at))
            found = conn.execute(sa.select(CANDIDATES).where(where)).one()
            return _candidate(found._mapping)

        result: Candidate = self._retrying(operation)
        return result

    def unstable(self, buildouts: Iterable[str]) -> dict[str, Candidate]:
        """The newest candidate of each buildout that has one."""
        self.create_tables()
        with self.engine.connect() as conn:
            return _newest(conn, list(buildouts))

    def candidates(self, buildout: str, limit: int = 20) -> list[Candidate]:
        self.create_tables()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(CANDIDATES)
                .where(CANDIDATES.c.buildout == buildout)
                .order_by(CANDIDATES.c.recorded_at.desc(), CANDIDATES.c.id.desc())
                .limit(limit)
            )
            return [_candidate(r._mapping) for r in rows]

    # ------------------------------------------------------------ stacks

    def freeze(self, domain: str, members: Sequence[str], frozen_by: str) -> Stack:
        """Stack N+1 of ``domain`` from the newest candidate of every member, put in
        *testing*, in one transaction; :class:`StackError` when a member has none."""

        def operation(conn: Connection) -> Stack:
            newest = _newest(conn, list(members))
            missing = [m for m in members if m not in newest]
            if missing:
                raise StackError(
                    f"domain {domain!r}: no green build yet of {', '.join(missing)}: "
                    "nothing to freeze"
                )
            last = conn.execute(
                sa.select(sa.func.max(STACKS.c.number)).where(STACKS.c.domain == domain)
            ).scalar()
            number = int(last or 0) + 1
            at = time.time()
            inserted = conn.execute(
                STACKS.insert().values(
                    domain=domain, number=number, frozen_by=frozen_by[:200], frozen_at=at
                )
            )
            stack_id = (inserted.inserted_primary_key or (None,))[0]
            for name in members:
                c = newest[name]
                conn.execute(
                    MEMBERS.insert().values(
                        stack_id=stack_id,
                        buildout=name,
                        candidate_id=c.id,
                        revisions=pins_to_json(c.pins),
                        release_version=c.release_version,
                        artefact=c.artefact,
                        artefact_sha256=c.artefact_sha256,
                        build_url=c.build_url,
                    )
                )
            _move(conn, domain, TESTING, number, frozen_by, f"frozen as stack {number}", at)
            return _load_stack(conn, domain, number)  # type: ignore[return-value]

        result: Stack = self._retrying(operation)
        return result

    def stack(self, domain: str, number: int) -> Stack | None:
        self.create_tables()
        with self.engine.connect() as conn:
            return _load_stack(conn, domain, number)

    def stacks(self, domain: str | None = None, limit: int = 50) -> list[Stack]:
        """Newest first."""
        self.create_tables()
        with self.engine.connect() as conn:
            query = sa.select(STACKS.c.domain, STACKS.c.number)
            if domain is not None:
                query = query.where(STACKS.c.domain == domain)
            rows = conn.execute(
                query.order_by(STACKS.c.frozen_at.desc(), STACKS.c.id.desc()).limit(limit)
            ).all()
            found = [_load_stack(conn, d, n) for d, n in rows]
            return [s for s in found if s is not None]

    def domains(self) -> list[str]:
        self.create_tables()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(STACKS.c.domain).distinct().order_by(STACKS.c.domain))
            return [r[0] for r in rows]

    # ------------------------------------------------------------ channels

    def promote(
        self, domain: str, number: int, channel: str, author: str, note: str = ""
    ) -> ChannelMove:
        """Put stack ``number`` in ``channel``, with its log line, atomically."""
        if channel not in CHANNELS:
            raise StackError(f"unknown channel {channel!r}: expected {' or '.join(CHANNELS)}")

        def operation(conn: Connection) -> ChannelMove:
            if _load_stack(conn, domain, number) is None:
                raise StackError(f"domain {domain!r} has no stack {number}")
            return _move(conn, domain, channel, number, author, note, time.time())

        result: ChannelMove = self._retrying(operation)
        return result

    def channels(self, domain: str) -> dict[str, int]:
        self.create_tables()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(CHANNELS_TABLE.c.channel, CHANNELS_TABLE.c.number).where(
                    CHANNELS_TABLE.c.domain == domain
                )
            )
            return {r[0]: int(r[1]) for r in rows}

    def log(self, domain: str, limit: int = 100) -> list[ChannelMove]:
        """Newest first."""
        self.create_tables()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(CHANNEL_LOG)
                .where(CHANNEL_LOG.c.domain == domain)
                .order_by(CHANNEL_LOG.c.id.desc())
                .limit(limit)
            )
            return [_move_of(r._mapping) for r in rows]


def _candidate(row: Any) -> Candidate:
    return Candidate(
        id=int(row["id"]),
        buildout=row["buildout"],
        pins=pins_from_json(row["revisions"]),
        release_version=row["release_version"] or "",
        artefact=row["artefact"] or "",
        artefact_sha256=row["artefact_sha256"] or "",
        build_url=row["build_url"] or "",
        recorded_at=float(row["recorded_at"]),
    )


def _newest(conn: Connection, buildouts: list[str]) -> dict[str, Candidate]:
    result: dict[str, Candidate] = {}
    for name in buildouts:
        row = conn.execute(
            sa.select(CANDIDATES)
            .where(CANDIDATES.c.buildout == name)
            .order_by(CANDIDATES.c.recorded_at.desc(), CANDIDATES.c.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            result[name] = _candidate(row._mapping)
    return result


def _load_stack(conn: Connection, domain: str, number: int) -> Stack | None:
    row = conn.execute(
        sa.select(STACKS).where((STACKS.c.domain == domain) & (STACKS.c.number == number))
    ).first()
    if row is None:
        return None
    stack_row = row._mapping
    members = conn.execute(
        sa.select(MEMBERS).where(MEMBERS.c.stack_id == stack_row["id"]).order_by(MEMBERS.c.buildout)
    )
    return Stack(
        domain=domain,
        number=number,
        frozen_by=stack_row["frozen_by"],
        frozen_at=float(stack_row["frozen_at"]),
        members=tuple(
            Member(
                buildout=m["buildout"],
                candidate_id=int(m["candidate_id"]),
                pins=pins_from_json(m["revisions"]),
                release_version=m["release_version"],
                artefact=m["artefact"],
                artefact_sha256=m["artefact_sha256"],
                build_url=m["build_url"],
            )
            for m in (r._mapping for r in members)
        ),
    )


def _move(
    conn: Connection, domain: str, channel: str, number: int, author: str, note: str, at: float
) -> ChannelMove:
    where = (CHANNELS_TABLE.c.domain == domain) & (CHANNELS_TABLE.c.channel == channel)
    previous = conn.execute(sa.select(CHANNELS_TABLE.c.number).where(where)).scalar()
    values = {"number": number, "updated_at": at, "updated_by": author[:200]}
    if previous is None:
        conn.execute(CHANNELS_TABLE.insert().values(domain=domain, channel=channel, **values))
    else:
        conn.execute(CHANNELS_TABLE.update().where(where).values(**values))
    move = ChannelMove(domain, channel, number, previous, author[:200], note[:1000], at)
    conn.execute(
        CHANNEL_LOG.insert().values(
            domain=domain,
            channel=channel,
            number=number,
            previous=previous,
            author=move.author,
            note=move.note,
            at=at,
        )
    )
    return move


def _move_of(row: Any) -> ChannelMove:
    return ChannelMove(
        domain=row["domain"],
        channel=row["channel"],
        number=int(row["number"]),
        previous=None if row["previous"] is None else int(row["previous"]),
        author=row["author"],
        note=row["note"] or "",
        at=float(row["at"]),
    )


_OPEN: dict[str, StackStore] = {}


def store_for(db_url: str, basedir: Path | None = None) -> StackStore:
    """One store (one engine and its pool) per database, per process."""
    key = engine_url(db_url, basedir)
    if key not in _OPEN:
        _OPEN[key] = StackStore.open(db_url, basedir)
    return _OPEN[key]


def db_url_of(db: Any) -> str:
    """``c['db']``'s URL once Buildbot has read it (a ``DBConfig``, or a dict before)."""
    return str(getattr(db, "db_url", None) or db["db_url"])
