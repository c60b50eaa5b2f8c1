"""A dump kept on the master (``restore.master-dump``), sent to each cell's worker.

Why here: the worker may have no access to the backups, but it always has its connection to
the master. The master resolves the path inside ``restore.master-dir`` (links followed, then
checked: nothing outside that folder is ever read), hashes it once per file version (the
worker need not re-hash it, and the template cache stays keyed by the dump's checksum), then
Buildbot's own ``FileDownload`` sends it into the builder's folder.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from buildbot.plugins import steps
from buildbot.process.results import FAILURE
from twisted.internet import defer, threads

#: the downloaded dump, in the builder's folder on the worker (deleted by the restore)
MASTER_DUMP_FILE = "anybox-ci-master-dump"
#: the build property holding the dump's SHA-256, computed on the master
SHA256_PROPERTY = "restore_dump_sha256"
CHUNK = 1 << 20


class MasterDumpError(Exception):
    """Why a master dump cannot be sent: one line for the step's summary."""


def locate(root: str, relpath: str) -> str:
    """The resolved path of ``relpath`` inside ``root`` (relative: the master's basedir),
    or :class:`MasterDumpError` when it leaves the folder or is not a regular file."""
    shown = f"{root.rstrip('/')}/{relpath}"
    real_root = os.path.realpath(os.path.expanduser(root))
    real = os.path.realpath(os.path.join(real_root, relpath))
    if os.path.isabs(relpath) or not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise MasterDumpError(f"master dump {shown!r} is outside restore.master-dir")
    if not os.path.exists(real):
        raise MasterDumpError(f"master dump not found: {shown}")
    if not os.path.isfile(real):
        raise MasterDumpError(f"master dump is not a regular file: {shown}")
    return real


_HASHES: dict[tuple[str, int, int, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def sha256_of(path: str) -> str:
    """The file's SHA-256, remembered per (path, inode, size, mtime): the cells of one
    buildout share a hash instead of reading a big dump once each."""
    info = os.stat(path)
    key = (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _HASHES_LOCK:
        if len(_HASHES) >= 64:
            _HASHES.clear()
        _HASHES[key] = value
    return value


class MasterDumpDownload(steps.FileDownload):
    """Checks and hashes the dump on the master (property :data:`SHA256_PROPERTY`), then
    sends it to :data:`MASTER_DUMP_FILE` in the builder's folder. A missing file, or a path
    leading out of its folder, fails the step with one line."""

    def __init__(self, root: str, relpath: str, expected: str | None = None, **kwargs: Any):
        kwargs.setdefault("name", "download_master_dump")
        kwargs.setdefault("workdir", ".")
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(
            mastersrc=os.path.join(root, relpath),
            workerdest=MASTER_DUMP_FILE,
            blocksize=256 * 1024,
            **kwargs,
        )
        self.root, self.relpath, self.expected = root, relpath, expected

    @defer.inlineCallbacks
    def run(self) -> Any:
        try:
            real = locate(self.root, self.relpath)
            reactor = self.master.reactor  # the test reactor's pool runs in line
            sha = yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), sha256_of, real)
        except (MasterDumpError, OSError) as exc:
            text = str(exc) if isinstance(exc, MasterDumpError) else f"master dump: {exc}"
            return (yield self._refuse(text))
        if self.expected and sha != self.expected:
            return (yield self._refuse(f"master dump sha256 {sha} is not restore.sha256"))
        self.setProperty(SHA256_PROPERTY, sha, self.name)
        self.mastersrc = real  # the checked file, not the path as written
        result = yield super().run()
        if result != FAILURE:
            self.descriptionDone = [f"{self.relpath} sha256 {sha[:12]}"]
        return result

    @defer.inlineCallbacks
    def _refuse(self, text: str) -> Any:
        yield self.addCompleteLog("refused", text + "\n")
        self.descriptionDone = [text[:250]]
        return FAILURE
