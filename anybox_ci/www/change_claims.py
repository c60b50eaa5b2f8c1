"""Which change notifications were already taken, kept in the masters' shared database.

A sender (``update-mirrors``, a push hook) posts a change again when it lost the answer, and
with several masters it may post the same change to two of them at once. The change must be
added once. Memory cannot tell, since each master has its own; the database all masters
share can:

- :func:`find_added` looks for the change itself: ``changes`` joined with
  ``change_properties`` on the revision, which Buildbot indexes (``changes_revision``), so it
  takes the same time with 100 or 100,000 changes in the table;
- :data:`CLAIMS` is a table of our own, one row per change id (the primary key). The first
  request to insert the row adds the change; every other insert fails on the key, whichever
  master it runs on, and that request waits until the change shows up, then acknowledges it
  as a replay.

A claim whose change never showed up (its master died between the two) is taken over once
it is older than :data:`STALE_AFTER`, with a compare-and-set on its time, so two takers
cannot both win. Claims older than :data:`KEEP_CLAIMS` are deleted: by then the change
itself answers for replays. Times are the masters' clocks, which are assumed to agree
within a few seconds (NTP).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import sqlalchemy as sa

from anybox_ci.changes.protocol import CHANGE_ID_PROPERTY

TABLE = "anybox_ci_change_claims"
#: seconds after which a claim whose change never appeared may be taken over
STALE_AFTER = 60
#: seconds a claim is kept; older replays are recognised by the change itself
KEEP_CLAIMS = 30 * 24 * 3600

_METADATA = sa.MetaData()
CLAIMS = sa.Table(
    TABLE,
    _METADATA,
    sa.Column("change_id", sa.String(64), primary_key=True),
    sa.Column("claimed_at", sa.Integer, nullable=False, index=True),
)

_created: set[str] = set()  # database URLs where the table is known to exist
_created_lock = threading.Lock()


def ensure_table(conn: sa.Connection) -> None:
    """Create the claims table once per database; two masters creating it at once is fine."""
    url = conn.engine.url.render_as_string(hide_password=True)
    with _created_lock:
        if url in _created:
            return
    try:
        _METADATA.create_all(conn, checkfirst=True)
        conn.commit()
    except sa.exc.DBAPIError:
        conn.rollback()  # another master created it between our check and our CREATE
        if not sa.inspect(conn).has_table(TABLE):
            raise
    with _created_lock:
        _created.add(url)


def property_value(cid: str) -> str:
    """How Buildbot stores the change id property of a change."""
    return json.dumps([cid, "Change"])


def find_added(conn: sa.Connection, model: Any, revision: str, cid: str) -> bool:
    """Whether a change with this revision and change id is in ``changes``."""
    changes, props = model.changes, model.change_properties
    query = (
        sa.select(changes.c.changeid)
        .select_from(changes.join(props, props.c.changeid == changes.c.changeid))
        .where(changes.c.revision == revision)
        .where(props.c.property_name == CHANGE_ID_PROPERTY)
        .where(props.c.property_value == property_value(cid))
        .limit(1)
    )
    return conn.execute(query).first() is not None


def claim(conn: sa.Connection, cid: str, now: int) -> int | None:
    """Insert the claim of ``cid``: None when this call took it, else the existing claim's
    time. Leaves no transaction open."""
    try:
        conn.execute(CLAIMS.insert().values(change_id=cid, claimed_at=now))
        conn.commit()
        return None
    except sa.exc.IntegrityError:
        conn.rollback()
    row = conn.execute(sa.select(CLAIMS.c.claimed_at).where(CLAIMS.c.change_id == cid)).first()
    conn.rollback()
    return now if row is None else int(row[0])


def take_over(conn: sa.Connection, cid: str, seen_at: int, now: int) -> bool:
    """Take a stale claim: only if its time is still ``seen_at`` (nobody took it meanwhile)."""
    result = conn.execute(
        CLAIMS.update()
        .where(CLAIMS.c.change_id == cid)
        .where(CLAIMS.c.claimed_at == seen_at)
        .values(claimed_at=now)
    )
    conn.commit()
    return bool(result.rowcount == 1)


def prune(conn: sa.Connection, now: int) -> int:
    """Delete the claims older than :data:`KEEP_CLAIMS`; how many went."""
    result = conn.execute(CLAIMS.delete().where(CLAIMS.c.claimed_at < now - KEEP_CLAIMS))
    conn.commit()
    return int(result.rowcount or 0)
