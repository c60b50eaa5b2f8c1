"""The on-disk queue of changes waiting for the master: durable, ordered, duplicate-free.

A change is made durable here before anyone tries to post it, and leaves only once the
master acknowledged it (see ``delivery``), so a master that is down loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

from anybox_ci.changes.locking import exclusive_lock
from anybox_ci.changes.protocol import Change

_SPOOL_NAME = re.compile(r"(\d{20})-([0-9a-f]{64})\.json\Z")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Changes waiting for delivery: one JSON file each, named ``SEQUENCE-CHANGEID.json``.

    Files are written to a temporary name, fsynced and renamed, so a crash leaves either the
    whole change or nothing. An ``flock`` serialises the processes (cron runs, push hooks)
    sharing the spool; a thread lock does the same for threads of one process.
    """

    def __init__(self, directory: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        self.directory = Path(directory)
        self.lock_timeout = lock_timeout
        self._thread_lock = threading.RLock()
        self._depth = 0

    @property
    def rejected_dir(self) -> Path:
        return self.directory / "rejected"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access; re-entrant within one thread."""
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            with exclusive_lock(
                self.directory / ".lock", wait=self.lock_timeout, what="spool user"
            ):
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0

    def pending(self) -> list[Path]:
        """Spooled changes, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _SPOOL_NAME.match(p.name))

    def append(self, changes: Iterable[Change]) -> int:
        """Spool ``changes`` durably, after those already there; returns how many were new.

        A change already waiting in the spool is not spooled twice.
        """
        changes = list(changes)
        if not changes:
            return 0
        with self.locked():
            existing = self.pending()
            waiting = {_SPOOL_NAME.match(p.name)[2] for p in existing}  # type: ignore[index]
            seq = int(existing[-1].name[:20]) if existing else 0
            added = 0
            for change in changes:
                cid = change.change_id
                if cid in waiting:
                    continue
                seq += 1
                record = {
                    "format": 1,
                    "id": cid,
                    "spooled_at": time.time(),
                    "change": asdict(change),
                }
                target = self.directory / f"{seq:020d}-{cid}.json"
                tmp = self.directory / f".tmp-{seq:020d}-{os.getpid()}-{threading.get_ident()}"
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(record, fh, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
                waiting.add(cid)
                added += 1
            _fsync_dir(self.directory)
            return added

    @staticmethod
    def load(path: Path) -> tuple[str, Change]:
        """(change id, change) of a spool file; ValueError when it is unusable."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            data = dict(record["change"])
            data["files"] = tuple(data["files"])
            change = Change(**data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable spool file {path.name}: {exc}") from None
        if record.get("id") != change.change_id:
            raise ValueError(f"spool file {path.name}: id does not match its change")
        return change.change_id, change

    def reject(self, path: Path, reason: str) -> None:
        """Set aside a change the master refuses for good, with the reason next to it."""
        self.rejected_dir.mkdir(exist_ok=True)
        (self.rejected_dir / f"{path.name}.reason").write_text(reason + "\n")
        os.replace(path, self.rejected_dir / path.name)
        _fsync_dir(self.directory)

    def remove(self, path: Path) -> None:
        path.unlink()
        _fsync_dir(self.directory)
