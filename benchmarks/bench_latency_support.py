"""Helpers of bench_latency.py: a change backlog, the de-dup query alone, a push listener.

- :func:`fill_changes` writes a realistic backlog of changes straight into a fresh master
  database (``changes``, ``sourcestamps``, ``change_files``, ``change_properties``), in bulk,
  before the master starts: each change carries the two properties the ``anybox`` hook
  stores (``anybox_ci_change_id``, ``anybox_ci_vcs``), encoded as Buildbot encodes them.
- :func:`time_dedupe_query` runs the hook's own de-dup check (the product's ``_admit``: the
  revision-indexed lookup, then the claim insert, on a stand-in master whose pool runs them
  synchronously) and returns its times and the plan of its lookup.
- :class:`EventStream` is a minimal WebSocket client of the master's ``/ws`` endpoint, so a
  build request is seen the moment the master publishes it, without polling the REST API.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from buildbot.db.model import Model
from buildbot.util.sautils import hash_columns
from twisted.internet import defer

from anybox_ci.changes.protocol import CHANGE_ID_PROPERTY, VCS_PROPERTY
from anybox_ci.core.vcs import change_id, codebase_name
from anybox_ci.www.change_hook import AnyboxHookHandler

BATCH = 5_000


# --------------------------------------------------------------------------- backlog


def _backlog_rows(
    count: int, repositories: list[str], branches: list[str], now: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(sourcestamp, change, files, properties) rows of changes 1..count, oldest first."""
    last_on: dict[tuple[str, str], int] = {}
    for changeid in range(1, count + 1):
        repository = repositories[changeid % len(repositories)]
        branch = branches[(changeid // len(repositories)) % len(branches)]
        revision = hashlib.sha1(f"backlog-{changeid}".encode()).hexdigest()
        codebase = codebase_name(repository, branch)
        when = now - (count - changeid) * 120
        source = {
            "id": changeid,
            "ss_hash": hash_columns(branch, revision, repository, "", codebase, None),
            "branch": branch,
            "revision": revision,
            "patchid": None,
            "repository": repository,
            "codebase": codebase,
            "project": "",
            "created_at": when,
        }
        change = {
            "changeid": changeid,
            "author": f"Developer {changeid % 37} <dev{changeid % 37}@example.com>",
            "committer": None,
            "comments": f"[FIX] module_{changeid % 50}: backlog change {changeid}\n\nDetails.",
            "branch": branch,
            "revision": revision,
            "revlink": "",
            "when_timestamp": when,
            "category": None,
            "repository": repository,
            "codebase": codebase,
            "project": "",
            "sourcestampid": changeid,
            "parent_changeids": last_on.get((repository, branch)),
        }
        last_on[(repository, branch)] = changeid
        files = [
            {"changeid": changeid, "filename": f"addons/module_{changeid % 50}/models/m{k}.py"}
            for k in range(1 + changeid % 3)
        ]
        cid = change_id("git", repository, branch, revision)
        props = [
            {
                "changeid": changeid,
                "property_name": CHANGE_ID_PROPERTY,
                "property_value": json.dumps([cid, "Change"]),
            },
            {
                "changeid": changeid,
                "property_name": VCS_PROPERTY,
                "property_value": json.dumps(["git", "Change"]),
            },
        ]
        yield source, change, files, props


def fill_changes(db_url: str, count: int, watched: str, watched_branch: str = "main") -> float:
    """Add ``count`` changes to the fresh master database at ``db_url``; return the seconds.

    The changes are spread over 100 repositories (the watched one among them) and three
    branches, as a master with many buildouts accumulates them. On PostgreSQL the id
    sequences are moved past the backlog and the tables analysed (autovacuum would).
    """
    started = time.perf_counter()
    repositories = [watched] + [
        f"https://git.example.com/team{k % 7}/project{k}.git" for k in range(1, 100)
    ]
    branches = [watched_branch, "17.0", "18.0"]
    engine = sa.create_engine(db_url)
    meta = sa.MetaData()
    meta.reflect(engine, only=["sourcestamps", "changes", "change_files", "change_properties"])
    sources_t, changes_t = meta.tables["sourcestamps"], meta.tables["changes"]
    files_t, props_t = meta.tables["change_files"], meta.tables["change_properties"]
    rows = _backlog_rows(count, repositories, branches, int(time.time()))
    with engine.begin() as conn:
        while True:
            batch = [row for _, row in zip(range(BATCH), rows, strict=False)]
            if not batch:
                break
            conn.execute(sources_t.insert(), [row[0] for row in batch])
            conn.execute(changes_t.insert(), [row[1] for row in batch])
            conn.execute(files_t.insert(), [f for row in batch for f in row[2]])
            conn.execute(props_t.insert(), [p for row in batch for p in row[3]])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for name, column in (("sourcestamps", "id"), ("changes", "changeid")):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), "
                        f"(SELECT max({column}) FROM {name}))"
                    )
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the query alone


class _SyncPool:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def do(self, thd: Any) -> defer.Deferred[Any]:
        return defer.succeed(thd(self.conn))


class _StandIn:
    """Just what ``AnyboxHookHandler._admit`` reads of a master (for a change never seen)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.db = type("Db", (), {"model": Model, "pool": _SyncPool(conn)})()


@dataclass
class QueryTimes:
    seconds: list[float]
    statements: int
    plan: list[str]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_dedupe_query(db_url: str, repeats: int = 30) -> QueryTimes:
    """Time the hook's de-dup check for changes never seen (every new change's case).

    Runs the product's own ``_admit`` against the database (lookup by revision, then the
    claim insert and its commit), captures the SQL it sends, and asks the database for the
    plan of its lookup.
    """
    engine = sa.create_engine(db_url)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    seconds: list[float] = []
    with engine.connect() as conn:
        handler = AnyboxHookHandler(_StandIn(conn), {})
        sa.event.listen(engine, "before_cursor_execute", capture)
        for _ in range(repeats):
            captured.clear()
            cid = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
            revision = hashlib.sha1(cid.encode()).hexdigest()
            started = time.perf_counter()
            admitted: list[bool] = []
            handler._admit(cid, revision).addCallback(admitted.append)
            seconds.append(time.perf_counter() - started)
            if admitted != [True]:
                raise RuntimeError(f"de-dup check refused a change never seen: {admitted}")
        sa.event.remove(engine, "before_cursor_execute", capture)
        statements = len(captured)
        statement, params = next((s, p) for s, p in captured if "JOIN" in s.upper())
        if engine.dialect.name == "postgresql":
            explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
        else:
            explain = "EXPLAIN QUERY PLAN "
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(explain + statement, params)
        plan = [" ".join(str(col) for col in row) for row in cursor.fetchall()]
        cursor.close()
        conn.rollback()
    engine.dispose()
    return QueryTimes(seconds, statements, plan)


# --------------------------------------------------------------------------- push events


_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class EventStream:
    """The master's ``/ws`` push channel: subscribe to data paths, timestamp each message.

    Only what Buildbot's server sends is handled: unmasked text frames, possibly fragmented,
    pings, and close. Frames we send are masked, as RFC 6455 requires of a client.
    """

    def __init__(self, host: str, port: int, path: str = "/ws", timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = self.reader.readline().decode("latin-1")
        headers: dict[str, str] = {}
        while (line := self.reader.readline().decode("latin-1").strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if " 101 " not in status:
            raise RuntimeError(f"websocket refused: {status.strip()}")
        expected = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise RuntimeError("websocket handshake: wrong Sec-WebSocket-Accept")
        self.sock.settimeout(None)
        self.messages: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._send_lock = threading.Lock()
        self._next_id = 0
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, b"")
        self.sock.close()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = bytes([0x80 | opcode, 0x80 | size])
        elif size < 65_536:
            header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self._send_lock:
            self.sock.sendall(header + mask + masked)

    def _exactly(self, size: int) -> bytes:
        data = self.reader.read(size)
        if data is None or len(data) != size:
            raise EOFError("websocket closed")
        return data

    def _read_loop(self) -> None:
        parts: list[bytes] = []
        try:
            while True:
                first, second = self._exactly(2)
                opcode, size = first & 0x0F, second & 0x7F
                if size == 126:
                    size = int.from_bytes(self._exactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(self._exactly(8), "big")
                mask = self._exactly(4) if second & 0x80 else b""
                payload = self._exactly(size)
                if mask:
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                if opcode == 0x9:
                    self._send_frame(0xA, payload)
                elif opcode == 0x8:
                    return
                elif opcode in (0x0, 0x1, 0x2):
                    parts.append(payload)
                    if first & 0x80:
                        arrived = time.monotonic()
                        self.messages.put((arrived, json.loads(b"".join(parts))))
                        parts = []
        except (EOFError, OSError, ValueError):
            return

    def subscribe(self, path: str, timeout: float = 10) -> None:
        """``startConsuming`` ``path`` (e.g. ``buildrequests/*/new``), waiting for the ack."""
        self._next_id += 1
        ident = self._next_id
        self._send_frame(
            0x1, json.dumps({"cmd": "startConsuming", "path": path, "_id": ident}).encode()
        )
        deadline = time.monotonic() + timeout
        while True:
            _, message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("_id") == ident:
                if message.get("code") != 200:
                    raise RuntimeError(f"subscription to {path} refused: {message}")
                return

    def drain(self) -> None:
        while True:
            try:
                self.messages.get_nowait()
            except queue.Empty:
                return

    def wait_key(self, prefix: str, suffix: str, timeout: float) -> tuple[float, str]:
        """(arrival time, key) of the next message whose key matches; TimeoutError if none."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix}...{suffix} event within {timeout:g} s")
            try:
                arrived, message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            key = str(message.get("k", ""))
            if key.startswith(prefix) and key.endswith(suffix):
                return arrived, key


# --------------------------------------------------------------------------- profiling


def install_profiler(path: str) -> None:
    """In the master (from its master.cfg): time the change hooks and every DB pool call.

    Writes ``what<TAB>milliseconds`` lines to ``path``: per dialect, the handler's
    ``getChanges`` (reading, validating, de-duplicating), ``submitChanges`` (adding the
    change) and the whole request; per DB callable, the wait for a pool thread and a
    connection, the callable's own run, and the hop back to the reactor.
    """
    import buildbot.www.change_hook as hook_module
    from buildbot.db import pool as pool_module

    resource = hook_module.ChangeHookResource
    if getattr(resource, "_bench_profiled", False):
        return
    resource._bench_profiled = True
    out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the master

    def record(what: str, seconds: float) -> None:
        out.write(f"{what}\t{seconds * 1000:.3f}\n")

    def dialect(request: Any) -> str:
        return bytes(request.uri).decode("latin-1").split("?")[0].rstrip("/").rsplit("/", 1)[-1]

    def timed_deferred(method: Any, label: str) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            request = next(a for a in args if hasattr(a, "uri"))
            started = time.perf_counter()

            def done(result: Any) -> Any:
                record(f"{dialect(request)} {label}", time.perf_counter() - started)
                return result

            return method(self, *args, **kwargs).addBoth(done)

        return wrapper

    original_render = resource.render_POST

    def render_post(self: Any, request: Any) -> Any:
        started = time.perf_counter()
        name = dialect(request)
        request.notifyFinish().addBoth(
            lambda _: record(f"{name} request", time.perf_counter() - started)
        )
        return original_render(self, request)

    resource.render_POST = render_post
    resource.getChanges = timed_deferred(resource.getChanges, "getChanges")
    resource.submitChanges = timed_deferred(resource.submitChanges, "submitChanges")

    original_do = pool_module.DBThreadPool.do

    def do(self: Any, callable: Any, *args: Any, **kwargs: Any) -> Any:
        inner = args[0] if args and callable.__name__ == "_transaction" else callable
        name = getattr(inner, "__qualname__", repr(inner)).replace(".<locals>", "")
        called = time.perf_counter()
        marks: dict[str, float] = {}

        def timed(conn: Any, *a: Any, **k: Any) -> Any:
            marks["start"] = time.perf_counter()
            try:
                return callable(conn, *a, **k)
            finally:
                marks["end"] = time.perf_counter()

        def done(result: Any) -> Any:
            if "end" in marks:
                record(f"db {name} | wait+connect", marks["start"] - called)
                record(f"db {name} | run", marks["end"] - marks["start"])
                record(f"db {name} | back", time.perf_counter() - marks["end"])
            return result

        return original_do(self, timed, *args, **kwargs).addBoth(done)

    pool_module.DBThreadPool.do = do


def profile_summary(path: str, pairs: int, top: int = 25) -> list[str]:
    """Lines of the profile: per entry, count, median and total ms per pair of notifications
    (one through each hook)."""
    samples: dict[str, list[float]] = {}
    with open(path) as lines:
        for line in lines:
            what, _, ms = line.rstrip("\n").rpartition("\t")
            samples.setdefault(what, []).append(float(ms))
    rows = sorted(samples.items(), key=lambda item: -sum(item[1]))[:top]
    result = [f"  {'what':<66}{'n/pair':>8}{'median':>10}{'total/pair':>12}"]
    for what, values in rows:
        result.append(
            f"  {what[:66]:<66}{len(values) / pairs:>8.2f}"
            f"{statistics.median(values):>8.2f}ms{sum(values) / pairs:>10.2f}ms"
        )
    return result
