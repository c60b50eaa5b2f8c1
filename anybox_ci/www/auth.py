"""Web UI login from an Apache htpasswd file with real hashes.

Buildbot's own ``util.HTPasswdAuth`` hands the file to twisted's ``FilePasswordDB``, which only
understands ``user:plaintext`` lines. :class:`HtpasswdAuth` is the same kind of Buildbot auth
(a ``TwistedICredAuthBase`` with an HTTP Basic credential factory), but its twisted.cred checker,
:class:`HtpasswdChecker`, checks the hashes of :mod:`anybox_ci.www.passwords`.

A user missing from the file costs as much as a wrong password, and the file is read again
whenever it changes on disk: adding a user needs no restart and no reconfig.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildbot.www.auth import TwistedICredAuthBase
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from twisted.python import log
from twisted.web.guard import BasicCredentialFactory
from zope.interface import implementer

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
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            log.msg(f"anybox_ci htpasswd: cannot read {self.path}: {e}")
            return {}
        users: dict[str, str] = {}
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            user, sep, hashed = stripped.partition(":")
            if not sep or not user:
                log.msg(f"anybox_ci htpasswd: {self.path}:{number}: not a 'user:hash' line")
                continue
            users[user] = hashed
        return users


_dummy_hash: str | None = None


def _dummy_bcrypt_hash() -> str:
    """A bcrypt hash of a random password, checked for unknown users so that they cost as much
    time as known ones (no user enumeration by timing)."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16), "bcrypt")
    return _dummy_hash


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

    def check(self, username: str, password: bytes) -> bool:
        """Synchronous check; :meth:`requestAvatarId` runs it in a thread."""
        hashed = self.file.get(username)
        if hashed is None:
            check_password(password, _dummy_bcrypt_hash())
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

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[bytes]:
        raw_user = credentials.username
        username = raw_user.decode("utf-8") if isinstance(raw_user, bytes) else str(raw_user)
        password = credentials.password
        if isinstance(password, str):
            password = password.encode("utf-8")
        d = threads.deferToThread(self.check, username, password)

        def conclude(ok: bool) -> bytes:
            if not ok:
                raise UnauthorizedLogin()
            return username.encode("utf-8")

        d.addCallback(conclude)
        return d


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
        super().__init__([BasicCredentialFactory(b"buildbot")], [self.checker], **kwargs)
