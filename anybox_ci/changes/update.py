"""``update_mirrors``: clone or update every mirror, and report the changes that reveals.

The refs seen at the previous update are kept in a small state file inside each mirror, so
the changes are computed against what was last *reported*, not what was last fetched. A run
that dies between fetching and spooling the changes therefore reports them again next time
instead of losing them (the spool and the master hook drop the duplicates). A damaged mirror
is set aside in ``ROOT/.trash`` (pruned after a week) and cloned again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anybox_ci.changes.backend import Backend
from anybox_ci.changes.bzr import BzrBackend
from anybox_ci.changes.git import GitBackend
from anybox_ci.changes.hg import HgBackend
from anybox_ci.changes.layout import Remote, mirror_path
from anybox_ci.changes.locking import exclusive_lock
from anybox_ci.changes.protocol import Change, acceptable
from anybox_ci.changes.tools import DEFAULT_TIMEOUT, Result, Tools
from anybox_ci.core.rewrites import RewriteRule, rewrite_url

LOCK_NAME = ".update-mirrors.lock"
TRASH_NAME = ".trash"
TRASH_MAX_AGE = 7 * 24 * 3600.0
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, try again later

BACKENDS: dict[str, type[Backend]] = {"git": GitBackend, "hg": HgBackend, "bzr": BzrBackend}


@dataclass(frozen=True)
class RemoteStatus:
    """Outcome for one remote; ``reason`` and ``warnings`` are one line each, passwords masked.

    ``warnings`` name the branches whose changes were skipped for their name.
    """

    remote: Remote
    path: Path
    ok: bool
    action: str  # cloned | updated | recloned | failed
    reason: str = ""
    changes: tuple[Change, ...] = ()
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class MirrorReport:
    statuses: tuple[RemoteStatus, ...]

    @property
    def changes(self) -> list[Change]:
        return [c for s in self.statuses for c in s.changes]

    @property
    def ok(self) -> list[RemoteStatus]:
        return [s for s in self.statuses if s.ok]

    @property
    def failed(self) -> list[RemoteStatus]:
        return [s for s in self.statuses if not s.ok]


# --------------------------------------------------------------------------- state and trash


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, path)


def _move_aside(root: Path, path: Path) -> Path:
    trash = root / TRASH_NAME
    trash.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = Path(tempfile.mkdtemp(prefix=f"{stamp}-{path.parent.name}-", dir=trash)) / path.name
    os.replace(path, target)
    return target


def _prune_trash(root: Path, max_age: float = TRASH_MAX_AGE) -> None:
    trash = root / TRASH_NAME
    if not trash.is_dir():
        return
    limit = time.time() - max_age
    for entry in trash.iterdir():
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < limit:
                shutil.rmtree(entry)


# --------------------------------------------------------------------------- one remote


def _update_one(
    backend: Backend,
    remote: Remote,
    root: Path,
    fetch_url: str,
    sink: Callable[[Sequence[Change]], object] | None,
) -> RemoteStatus:
    started = time.monotonic()
    path = mirror_path(root, remote)

    def status(
        ok: bool,
        action: str,
        reason: str = "",
        changes: Sequence[Change] = (),
        warnings: Sequence[str] = (),
    ) -> RemoteStatus:
        elapsed = time.monotonic() - started
        return RemoteStatus(
            remote, path, ok, action, reason, tuple(changes), elapsed, tuple(warnings)
        )

    def clone() -> Result:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.clone-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        res = backend.clone(fetch_url, tmp)
        if res.ok:
            os.replace(tmp, path)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        return res

    def fetch() -> tuple[str, Any]:
        """("ok", new state), ("corrupt", None) when the mirror is to blame, or ("failed", why)."""
        res = backend.fetch(fetch_url, path)
        if res.ok:
            after = backend.state(path)
            return ("ok", after) if after is not None else ("corrupt", None)
        if backend.state(path) is None:
            return "corrupt", None
        if not backend.reachable(fetch_url):
            return "failed", res.reason()
        if backend.fetch(fetch_url, path).ok:  # a reachable source: rule out a transient error
            after = backend.state(path)
            return ("ok", after) if after is not None else ("corrupt", None)
        return "corrupt", None

    def reclone() -> tuple[str, Any]:
        """Set the damaged mirror aside and clone again: ("", state) or (why it failed, None)."""
        _move_aside(root, path)
        res = clone()
        if not res.ok:
            return f"re-clone failed: {res.reason()}", None
        state = backend.state(path)
        return ("", state) if state is not None else ("mirror unreadable after re-cloning", None)

    saved: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: Any = None
    if path.exists():
        action = "updated"
        saved = _load_state(backend.state_file(path))
        before = saved if saved is not None else backend.state(path)
        outcome, after = fetch() if before is not None else ("corrupt", None)
        if outcome == "failed":
            return status(False, "failed", after)
        if outcome == "corrupt":
            action = "recloned"
            why, after = reclone()
            if why:
                return status(False, "failed", why)
    else:
        action = "cloned"
        res = clone()
        after = backend.state(path) if res.ok else None
        if after is None:
            return status(False, "failed", f"clone failed: {res.reason()}")
    try:
        changes = backend.changes(path, remote.url, before, after) if before is not None else []
    except RuntimeError as exc:
        if action != "updated":
            return status(False, "failed", str(exc).splitlines()[0])
        # refs read fine but objects are missing or damaged: the mirror is corrupt after all
        assert before is not None  # an update always has a "before" state
        action = "recloned"
        why, after = reclone()
        if why:
            return status(False, "failed", why)
        try:
            changes = backend.changes(path, remote.url, before, after)
        except RuntimeError as exc:
            return status(False, "failed", str(exc).splitlines()[0])
    changes, warnings = acceptable(changes)  # the master's branch rule: never spool the rest
    if sink is not None and changes:
        try:
            sink(changes)
        except Exception as exc:  # not recorded as seen: they come again next run
            why = f"changes not spooled: {type(exc).__name__}: {exc}"
            return status(False, "failed", why.splitlines()[0])
    if after != saved:
        _save_state(backend.state_file(path), after)
    return status(True, action, "", changes, warnings)


# --------------------------------------------------------------------------- all remotes


def update_mirrors(
    remotes: Iterable[Remote],
    root: Path,
    *,
    jobs: int = 4,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[RemoteStatus], None] | None = None,
    wait: bool | float = False,
    rules: Sequence[RewriteRule] = (),
    sink: Callable[[Sequence[Change]], object] | None = None,
    executables: Mapping[str, str] | None = None,
) -> MirrorReport:
    """Clone or update the mirror of every remote, ``jobs`` at a time, under one lock.

    A freshly cloned mirror only records a baseline (no changes), like GitPoller's first poll.
    ``rules`` rewrite the URL actually fetched (the mirror and its changes stay keyed by the
    remote's own URL). ``sink`` receives each remote's changes before its new refs are recorded:
    if it raises, the remote is reported failed and its changes come again next run. Changes
    on a branch the master would refuse (``core.vcs.check_vcs_branch``) are left out, with a
    warning in the remote's status. Raises MirrorsLocked when another run holds
    ``root/.update-mirrors.lock``.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    unique = list(dict.fromkeys(remotes))
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    tools = Tools(timeout=timeout, executables=executables or {})
    backends = {vcs: cls(tools) for vcs, cls in BACKENDS.items()}
    results: dict[Remote, RemoteStatus] = {}
    with exclusive_lock(root / LOCK_NAME, wait=wait, what="update-mirrors run"):
        _prune_trash(root)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(
                    _update_one, backends[r.vcs], r, root, rewrite_url(r.url, rules), sink
                ): r
                for r in unique
            }
            for future in as_completed(futures):
                remote = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    result = RemoteStatus(
                        remote,
                        mirror_path(root, remote),
                        False,
                        "failed",
                        f"{type(exc).__name__}: {exc}".splitlines()[0],
                    )
                results[remote] = result
                if progress is not None:
                    progress(result)
    return MirrorReport(tuple(results[r] for r in unique))
