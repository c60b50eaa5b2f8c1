"""Web UI login from an Apache htpasswd file with real hashes, and the matching authorization.

Buildbot's own ``util.HTPasswdAuth`` hands the file to twisted's ``FilePasswordDB``, which only
understands ``user:plaintext`` lines. :class:`HtpasswdAuth` is the same kind of Buildbot auth
(a ``TwistedICredAuthBase`` with an HTTP Basic credential factory), but its twisted.cred checker,
:class:`HtpasswdChecker`, understands the hashes written by ``htpasswd``:

* bcrypt: ``$2y$``, ``$2b$``, ``$2a$`` (``htpasswd -B``), through the ``bcrypt`` package;
* Apache MD5: ``$apr1$`` (``htpasswd -m``, the historical default), implemented here;
* SHA-1: ``{SHA}`` (``htpasswd -s``);
* plaintext, only when explicitly allowed.

Every comparison runs in constant time, a user missing from the file costs as much as a wrong
password, and the file is read again whenever it changes on disk: adding a user needs no restart
and no reconfig.

:func:`authz_config` builds the ``c['www']['authz']`` object: who may read, and which roles may
force, stop and rebuild.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt
from buildbot.www.auth import TwistedICredAuthBase
from buildbot.www.authz import Authz
from buildbot.www.authz.endpointmatchers import (
    AnyControlEndpointMatcher,
    AnyEndpointMatcher,
    EndpointMatcherBase,
    ForceBuildEndpointMatcher,
    RebuildBuildEndpointMatcher,
    StopBuildEndpointMatcher,
)
from buildbot.www.authz.roles import RolesFromBase, RolesFromUsername
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from twisted.python import log
from twisted.web.guard import BasicCredentialFactory
from zope.interface import implementer

__all__ = [
    "ADMIN_ROLE",
    "AUTHENTICATED_ROLE",
    "HtpasswdAuth",
    "HtpasswdChecker",
    "HtpasswdFile",
    "RolesFromAuthenticated",
    "apr1_md5",
    "authz_config",
    "check_password",
    "hash_password",
    "read_htgroups",
]

#: Role given to the ``admins`` of :func:`authz_config`: they may do everything.
ADMIN_ROLE = "admins"
#: Role every logged-in user has; reading requires it when anonymous read is off.
AUTHENTICATED_ROLE = "authenticated"

SCHEMES = ("bcrypt", "apr1", "sha1", "plain")
BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
APR1_PREFIX = "$apr1$"
SHA1_PREFIX = "{SHA}"
#: bcrypt only uses the first 72 bytes of a password; Apache's htpasswd truncates silently.
BCRYPT_MAX_BYTES = 72

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# -- hashing ----------------------------------------------------------------------------------


def _to64(value: int, length: int) -> str:
    """The crypt(3) base-64 encoding: ``length`` characters, least significant 6 bits first."""
    out = []
    for _ in range(length):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(out)


def apr1_md5(password: bytes, salt: str) -> str:
    """The Apache ``$apr1$`` hash: Poul-Henning Kamp's MD5-crypt with the ``$apr1$`` magic.

    ``salt`` is at most 8 characters of ``./0-9A-Za-z``; longer salts are cut, as Apache does.
    """
    magic = APR1_PREFIX.encode()
    salt_b = salt.encode("ascii")[:8]

    # The "alternate" digest: password, salt, password.
    alternate = hashlib.md5(password + salt_b + password).digest()

    ctx = hashlib.md5(password + magic + salt_b)
    # One byte of the alternate digest per byte of password, 16 at a time.
    remaining = len(password)
    while remaining > 0:
        ctx.update(alternate[: min(16, remaining)])
        remaining -= 16
    # Then, for each bit of the password length, low bit first: a NUL byte for a set bit,
    # the first password byte for a clear one.
    length = len(password)
    while length:
        ctx.update(b"\0" if length & 1 else password[:1])
        length >>= 1
    digest = ctx.digest()

    # 1000 rounds to slow down brute force.
    for i in range(1000):
        round_ctx = hashlib.md5()
        round_ctx.update(password if i & 1 else digest)
        if i % 3:
            round_ctx.update(salt_b)
        if i % 7:
            round_ctx.update(password)
        round_ctx.update(digest if i & 1 else password)
        digest = round_ctx.digest()

    # Final encoding: the digest bytes regrouped by three, in this order, then the last byte.
    encoded = "".join(
        _to64((digest[a] << 16) | (digest[b] << 8) | digest[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    )
    encoded += _to64(digest[11], 2)
    return f"{APR1_PREFIX}{salt_b.decode('ascii')}${encoded}"


def _sha1(password: bytes) -> str:
    return SHA1_PREFIX + base64.b64encode(hashlib.sha1(password).digest()).decode("ascii")


def hash_password(password: str, scheme: str = "bcrypt", *, rounds: int = 12) -> str:
    """Hash ``password`` for an htpasswd line ``user:HASH``.

    ``scheme`` is ``bcrypt`` (the default, written as ``$2y$`` like ``htpasswd -B``), ``apr1``,
    ``sha1`` or ``plain`` (only useful with ``allow_plaintext=True``). ``rounds`` is bcrypt's cost.
    """
    raw = password.encode("utf-8")
    if scheme == "bcrypt":
        if len(raw) > BCRYPT_MAX_BYTES:
            raise ValueError(f"bcrypt passwords are limited to {BCRYPT_MAX_BYTES} bytes")
        hashed = bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode("ascii")
        # Same algorithm; "$2y$" is what Apache's htpasswd writes and reads everywhere.
        return "$2y$" + hashed[4:]
    if scheme == "apr1":
        salt = "".join(secrets.choice(_ITOA64) for _ in range(8))
        return apr1_md5(raw, salt)
    if scheme == "sha1":
        return _sha1(raw)
    if scheme == "plain":
        return password
    raise ValueError(f"unknown password scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")


def hash_scheme(hashed: str) -> str:
    """The scheme of an htpasswd hash: ``bcrypt``, ``apr1``, ``sha1``, or ``plain`` for anything
    else (including formats this module does not implement, such as DES crypt)."""
    if hashed.startswith(BCRYPT_PREFIXES):
        return "bcrypt"
    if hashed.startswith(APR1_PREFIX):
        return "apr1"
    if hashed.startswith(SHA1_PREFIX):
        return "sha1"
    return "plain"


def check_password(password: bytes, hashed: str, *, allow_plaintext: bool = False) -> bool:
    """Whether ``password`` matches the htpasswd ``hashed`` value, compared in constant time."""
    scheme = hash_scheme(hashed)
    if scheme == "bcrypt":
        try:
            # bcrypt ignores what lies beyond 72 bytes; the bcrypt package refuses it instead.
            return bcrypt.checkpw(password[:BCRYPT_MAX_BYTES], hashed.encode("ascii"))
        except ValueError:  # malformed hash
            return False
    if scheme == "apr1":
        salt = hashed[len(APR1_PREFIX) :].split("$", 1)[0]
        try:
            expected = apr1_md5(password, salt)
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(expected.encode(), hashed.encode())
    if scheme == "sha1":
        return hmac.compare_digest(_sha1(password).encode(), hashed.encode())
    if not allow_plaintext:
        return False
    return hmac.compare_digest(password, hashed.encode("utf-8"))


# -- the file -----------------------------------------------------------------------------------


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


def read_htgroups(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read an Apache htgroup file (``group: user1 user2``) into ``{group: [users]}``.

    Suitable as the ``groups`` argument of :func:`authz_config` (group names become roles).
    """
    groups: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            group, sep, members = stripped.partition(":")
            if not sep:
                raise ValueError(f"{os.fspath(path)}: not a 'group: users' line: {stripped!r}")
            groups.setdefault(group.strip(), []).extend(members.split())
    return groups


# -- authorization ------------------------------------------------------------------------------


class RolesFromAuthenticated(RolesFromBase):
    """Gives ``role`` to every logged-in user (and nothing to anonymous visitors)."""

    def __init__(self, role: str = AUTHENTICATED_ROLE) -> None:
        super().__init__()
        self.role = role

    def getRolesFromUser(self, userDetails: dict[str, Any]) -> list[str]:
        if userDetails.get("anonymous") or not userDetails.get("username"):
            return []
        return [self.role]


class CancelBuildRequestEndpointMatcher(StopBuildEndpointMatcher):
    """The UI cancels a pending build request with the ``cancel`` action, which Buildbot's
    ``StopBuildEndpointMatcher`` (``stop`` only) does not cover: whoever may stop, may cancel."""

    match_BuildRequestEndpoint_cancel = StopBuildEndpointMatcher.match_BuildRequestEndpoint_stop


def _rules_for(matcher: type[EndpointMatcherBase], roles: list[str]) -> list[EndpointMatcherBase]:
    """One rule per role; only the last one denies, so any of the roles is enough."""
    return [matcher(role=role, defaultDeny=i == len(roles) - 1) for i, role in enumerate(roles)]


def authz_config(
    admins: Iterable[str],
    anonymous_read: bool,
    force_roles: Iterable[str],
    *,
    groups: Mapping[str, Iterable[str]] | None = None,
) -> Authz:
    """The ``c['www']['authz']`` object.

    - ``admins``: user names given the :data:`ADMIN_ROLE` role, which may do everything.
    - ``groups``: ``{role: [user names]}`` (for example from :func:`read_htgroups`).
    - ``force_roles``: roles that may force, stop, rebuild builds and cancel build requests, on
      top of the admins. Every other control action (enabling schedulers, ...) is admins-only.
    - ``anonymous_read``: when false, anonymous visitors may read nothing, not even the list of
      builders; every logged-in user may read.
    """
    role_matchers: list[RolesFromBase] = [RolesFromAuthenticated(AUTHENTICATED_ROLE)]
    admin_names = sorted(set(admins))
    if admin_names:
        role_matchers.append(RolesFromUsername(roles=[ADMIN_ROLE], usernames=admin_names))
    for role, members in sorted((groups or {}).items()):
        names = sorted(set(members))
        if names:
            role_matchers.append(RolesFromUsername(roles=[role], usernames=names))

    control_roles = [ADMIN_ROLE]
    control_roles += [r for r in dict.fromkeys(force_roles) if r != ADMIN_ROLE]

    allow_rules: list[EndpointMatcherBase] = []
    for matcher in (
        ForceBuildEndpointMatcher,
        StopBuildEndpointMatcher,
        CancelBuildRequestEndpointMatcher,
        RebuildBuildEndpointMatcher,
    ):
        allow_rules += _rules_for(matcher, control_roles)
    # Everything else that is not a read: admins only.
    allow_rules.append(AnyControlEndpointMatcher(role=ADMIN_ROLE))
    if not anonymous_read:
        # Reads (the only thing left) need a login. The websocket also asks for 'masters'.
        allow_rules.append(AnyEndpointMatcher(role=AUTHENTICATED_ROLE))
    return Authz(allowRules=allow_rules, roleMatchers=role_matchers)
