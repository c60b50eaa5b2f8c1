"""One ``flock`` helper for everything on the master's host that must not run twice at once.

``update-mirrors`` runs and spool users (cron runs, push hooks) serialise on lock files;
the kernel drops a lock when its holder dies, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class MirrorsLocked(RuntimeError):
    """Another process holds a lock that this run needs."""


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool | float = False, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, writing our pid into it for people to see.

    ``wait`` is False (fail at once), True (wait forever) or a number of seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        deadline = None if wait is True else time.monotonic() + float(wait or 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait is True else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    raise MirrorsLocked(
                        f"another {what or 'process'} holds {path}"
                        + (" (use --wait to wait for it)" if not wait else "")
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
