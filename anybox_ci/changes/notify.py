"""Lossless, ordered, duplicate-free delivery of changes to the master's ``anybox`` change hook.

A change is first made durable in an on-disk spool, then posted; it leaves the spool only once
the master has acknowledged it. A change whose acknowledgement was lost is simply posted again:
each change carries its identity (``anybox_ci_change_id``) and the master-side dialect
acknowledges a replay without adding it twice. Delivery stops at the first transient failure
so that changes keep their order; the next run (cron or push hook) resumes from there.

The hook secret is read from a file or the environment, never from argv (visible to every local
user in ``ps``), and is never printed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from anybox_ci.changes.mirrors import Change, MirrorsLocked, exclusive_lock

CHANGE_ID_PROPERTY = "anybox_ci_change_id"
VCS_PROPERTY = "anybox_ci_vcs"
SECRET_ENV = "ANYBOX_CI_HOOK_SECRET"
HOOK_PATH = "/change_hook/anybox"
DEFAULT_TIMEOUT = 10.0
_SPOOL_NAME = re.compile(r"(\d{20})-([0-9a-f]{64})\.json\Z")

__all__ = [
    "CHANGE_ID_PROPERTY",
    "VCS_PROPERTY",
    "SECRET_ENV",
    "DeliveryReport",
    "MirrorsLocked",
    "Spool",
    "deliver",
    "hook_endpoint",
    "read_secret",
]


def read_secret(
    secret_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> str:
    """The hook password, from ``secret_file`` or else ``$ANYBOX_CI_HOOK_SECRET``."""
    if secret_file:
        try:
            secret = Path(secret_file).read_text().strip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {secret_file}: {exc.strerror}") from None
        if not secret:
            raise ValueError(f"secret file {secret_file} is empty")
        return secret
    secret = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    if not secret:
        raise ValueError(f"no hook secret: give --secret-file or set {SECRET_ENV}")
    return secret


def hook_endpoint(url: str) -> str:
    """``URL/change_hook/anybox`` from the master's base URL; credentials in it are refused."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"notify URL must be http(s)://HOST[:PORT][/PATH], got {url!r}")
    if "@" in parts.netloc:
        raise ValueError("notify URL must not contain credentials: use --user and --secret-file")
    path = parts.path.rstrip("/")
    if not path.endswith(HOOK_PATH):
        path += HOOK_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# --------------------------------------------------------------------------- spool


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


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    rejected: int
    remaining: int
    error: str = ""  # why delivery stopped before the end; empty when all went through


def change_form(cid: str, change: Change) -> dict[str, str]:
    """The form fields of Buildbot's base hook, plus our identity properties."""
    return {
        "repository": change.repository,
        "branch": change.branch,
        "revision": change.revision,
        "author": change.author,
        "comments": change.comments,
        "project": change.project,
        "codebase": change.codebase,
        "when_timestamp": repr(float(change.when)),
        "files": json.dumps(list(change.files)),
        "properties": json.dumps({CHANGE_ID_PROPERTY: cid, VCS_PROPERTY: change.vcs}),
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the credentials elsewhere, or drop the POST: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _post(endpoint: str, fields: Mapping[str, str], auth: str, timeout: float) -> tuple[int, str]:
    """(HTTP status, one-line body or error); status 0 when the master could not be reached."""
    request = urllib.request.Request(
        endpoint,
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(500).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode("utf-8", "replace").strip() or str(exc.reason)
        return exc.code, " ".join(body.split())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, f"cannot reach {endpoint}: {reason}"


def deliver(
    spool: Spool, url: str, user: str, secret: str, timeout: float = DEFAULT_TIMEOUT
) -> DeliveryReport:
    """Post the spooled changes in order; each leaves the spool once the master accepted it.

    A 400 answer means the master refuses that change for good (unknown repository, bad
    branch): it is moved to ``rejected/`` so it cannot block the queue. Anything else that is
    not a success (unreachable, 401, 5xx) stops delivery and keeps the rest for the next run.
    """
    endpoint = hook_endpoint(url)
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    auth = f"Basic {token}"
    delivered = rejected = 0
    with spool.locked():
        pending = spool.pending()
        for index, path in enumerate(pending):
            try:
                cid, change = spool.load(path)
            except ValueError as exc:
                spool.reject(path, str(exc))
                rejected += 1
                continue
            status, message = _post(endpoint, change_form(cid, change), auth, timeout)
            if 200 <= status < 300:
                spool.remove(path)
                delivered += 1
            elif status == 400:
                spool.reject(path, f"HTTP 400: {message}")
                rejected += 1
            else:
                what = f"HTTP {status}: {message}" if status else message
                if status == 401:
                    what = "HTTP 401: the master refused the hook user or secret"
                return DeliveryReport(delivered, rejected, len(pending) - index, what)
    return DeliveryReport(delivered, rejected, 0)
