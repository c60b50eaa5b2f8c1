"""Web UI login from an Apache htpasswd file with real hashes.

Buildbot's own ``util.HTPasswdAuth`` hands the file to twisted's ``FilePasswordDB``, which only
understands ``user:plaintext`` lines. :class:`HtpasswdAuth` is the same kind of Buildbot auth
(a ``TwistedICredAuthBase`` with an HTTP Basic credential factory), but its twisted.cred checker,
:class:`HtpasswdChecker`, checks the hashes of :mod:`anybox_ci.www.passwords`.

A user missing from the file costs as much as a wrong password (it is checked against a hash of
the file's usual scheme and cost, and every failure answers after the same delay), and the
file is read again whenever it changes on disk: adding a user needs no restart and no reconfig.
A byte-order mark is ignored, and a line that is not UTF-8 is skipped (logged with its number)
without locking anybody else out.
"""

from __future__ import annotations

import codecs
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildbot.www.auth import TwistedICredAuthBase
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, task, threads
from twisted.python import log
from twisted.web.guard import BasicCredentialFactory
from zope.interface import implementer

from anybox_ci.changes.protocol import shown

from .passwords import check_password, hash_password, hash_scheme

__all__ = ["HtpasswdAuth", "HtpasswdChecker", "HtpasswdFile"]


@dataclass(frozen=True)
class _Snapshot:
    key: tuple[int, int, int] | None  # (mtime_ns, size, inode), None when the file is missing
    users: Mapping[str, str]


class HtpasswdFile:
    """An htpasswd file, read again whenever its modification time, size or inode changes.

    Lines are ``user:hash``; blank lines and lines starting with ``#`` are ignored. A missing or
    unreadable file means no users (logged), never a crash.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._snapshot = _Snapshot(key=None, users={})
        self._loaded = False

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def users(self) -> Mapping[str, str]:
        """The current ``{user: hash}`` mapping."""
        key = self._stat_key()
        if self._loaded and key == self._snapshot.key:
            return self._snapshot.users
        self._snapshot = _Snapshot(key=key, users=self._read() if key is not None else {})
        if key is None:
            log.msg(f"anybox_ci htpasswd: {self.path} is missing: nobody can log in")
        self._loaded = True
        return self._snapshot.users

    def get(self, username: str) -> str | None:
        return self.users().get(username)

    def _read(self) -> dict[str, str]:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except OSError as e:
            log.msg(f"anybox_ci htpasswd: cannot read {self.path}: {e.strerror}")
            return {}
        if raw.startswith(codecs.BOM_UTF8):  # some editors write one; it is not in the name
            raw = raw[len(codecs.BOM_UTF8) :]
        users: dict[str, str] = {}
        for number, raw_line in enumerate(raw.splitlines(), start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError:
                log.msg(f"anybox_ci htpasswd: {self.path}:{number}: not UTF-8; line ignored")
                continue
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            user, sep, hashed = stripped.partition(":")
            if not sep or not user:
                log.msg(f"anybox_ci htpasswd: {self.path}:{number}: not a 'user:hash' line")
                continue
            users[user] = hashed
        return users

    def typical(self) -> tuple[str, int]:
        """(scheme, bcrypt cost or 0) of most of the file's hashes, ("bcrypt", 12) when empty."""
        counts = Counter(_kind(hashed) for hashed in self.users().values())
        return counts.most_common(1)[0][0] if counts else ("bcrypt", DEFAULT_BCRYPT_COST)


def _kind(hashed: str) -> tuple[str, int]:
    scheme = hash_scheme(hashed)
    if scheme != "bcrypt":
        return scheme, 0
    cost = hashed[4:6]
    return scheme, min(max(int(cost), 4), 31) if cost.isdigit() else DEFAULT_BCRYPT_COST


DEFAULT_BCRYPT_COST = 12
#: a failed login never answers sooner than this many seconds
MIN_FAILURE_SECONDS = 0.2
#: nor later than this, whatever the slowest check seen (a loaded machine, a huge cost)
MAX_FAILURE_SECONDS = 2.0

_dummy_hashes: dict[tuple[str, int], str] = {}
_dummy_lock = threading.Lock()


def _dummy_hash(kind: tuple[str, int]) -> str:
    """A hash of a random password in the scheme (and bcrypt cost) ``kind``, made once.

    An unknown user is checked against it, so that it costs what a known one costs."""
    with _dummy_lock:
        if kind not in _dummy_hashes:
            scheme, cost = kind
            password = secrets.token_urlsafe(16)
            if scheme == "bcrypt":
                _dummy_hashes[kind] = hash_password(password, "bcrypt", rounds=cost)
            else:
                _dummy_hashes[kind] = hash_password(password, scheme)
        return _dummy_hashes[kind]


class _PeerBasicCredentialFactory(BasicCredentialFactory):
    """HTTP Basic credentials that remember the client's address, for the failed-login log."""

    def decode(self, response: bytes, request: Any) -> Any:
        credentials = super().decode(response, request)
        address = request.getClientAddress()
        credentials.anybox_peer = getattr(address, "host", None) or "unknown"
        return credentials


@implementer(ICredentialsChecker)
class HtpasswdChecker:
    """A twisted.cred checker over an :class:`HtpasswdFile`.

    Hash checks run in a thread: bcrypt takes a noticeable fraction of a second and must not
    block the master's reactor.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, path: str | os.PathLike[str], *, allow_plaintext: bool = False) -> None:
        self.file = HtpasswdFile(path)
        self.allow_plaintext = allow_plaintext
        self._warned_plaintext: set[str] = set()
        self._slowest = 0.0  # seconds taken by the slowest check so far

    def check(self, username: str, password: bytes) -> bool:
        """Synchronous check; :meth:`requestAvatarId` runs it in a thread."""
        hashed = self.file.get(username)
        if hashed is None:
            kind = self.file.typical()
            if kind[0] == "plain" and not self.allow_plaintext:
                kind = ("bcrypt", DEFAULT_BCRYPT_COST)
            check_password(password, _dummy_hash(kind), allow_plaintext=True)
            return False
        if hash_scheme(hashed) == "plain" and not self.allow_plaintext:
            if username not in self._warned_plaintext:
                self._warned_plaintext.add(username)
                log.msg(
                    f"anybox_ci htpasswd: {self.file.path}: user {username!r} has a plaintext "
                    "or unsupported password hash; refused (use bcrypt, apr1 or sha1)"
                )
            return False
        return check_password(password, hashed, allow_plaintext=self.allow_plaintext)

    def _timed_check(self, username: str, password: bytes) -> bool:
        started = time.monotonic()
        ok = self.check(username, password)
        self._slowest = min(max(self._slowest, time.monotonic() - started), MAX_FAILURE_SECONDS)
        return ok

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[bytes]:
        """The user name, or UnauthorizedLogin after a delay that does not depend on why.

        Every failure answers no sooner than the slowest check seen so far (and than
        :data:`MIN_FAILURE_SECONDS`), so that an unknown user and a wrong password look the
        same; each failure is logged as ``anybox-ci: failed login for user 'NAME' from IP``
        (a line for fail2ban), never with the password.
        """
        started = time.monotonic()
        raw_user = credentials.username
        if isinstance(raw_user, bytes):
            username = raw_user.decode("utf-8", "surrogateescape")
        else:
            username = str(raw_user)
        password = credentials.password
        if isinstance(password, str):
            password = password.encode("utf-8", "surrogateescape")
        peer = getattr(credentials, "anybox_peer", "unknown")
        d = threads.deferToThread(self._timed_check, username, password)

        def conclude(ok: bool) -> Any:
            if ok:
                return username.encode("utf-8", "surrogateescape")
            log.msg(f"anybox-ci: failed login for user {shown(username)} from {peer}")
            wait = max(MIN_FAILURE_SECONDS, self._slowest) - (time.monotonic() - started)
            return task.deferLater(self.clock(), max(wait, 0.0), _refuse)

        d.addCallback(conclude)
        return d

    @staticmethod
    def clock() -> Any:
        from twisted.internet import reactor

        return reactor


def _refuse() -> None:
    raise UnauthorizedLogin()


class HtpasswdAuth(TwistedICredAuthBase):
    """``c['www']['auth']``: HTTP Basic login at ``/auth/login`` against an htpasswd file.

    Only Basic is offered: Digest needs the plaintext password on the server side.
    """

    def __init__(
        self, passwdFile: str | os.PathLike[str], *, allow_plaintext: bool = False, **kwargs: Any
    ) -> None:
        self.passwdFile = os.fspath(passwdFile)
        self.allow_plaintext = allow_plaintext
        self.checker = HtpasswdChecker(self.passwdFile, allow_plaintext=allow_plaintext)
        super().__init__([_PeerBasicCredentialFactory(b"buildbot")], [self.checker], **kwargs)
