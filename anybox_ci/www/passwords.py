"""The password hashes of Apache htpasswd files: make them and check them.

Twisted's ``FilePasswordDB`` (behind Buildbot's ``util.HTPasswdAuth``) only knows plaintext
lines, so the schemes ``htpasswd`` writes are implemented here:

* bcrypt: ``$2y$``, ``$2b$``, ``$2a$`` (``htpasswd -B``), through the ``bcrypt`` package;
* Apache MD5: ``$apr1$`` (``htpasswd -m``, the historical default), implemented here;
* SHA-1: ``{SHA}`` (``htpasswd -s``);
* plaintext, only when explicitly allowed.

Every comparison runs in constant time. No Buildbot or twisted import: ``anybox-ci init`` hashes
the first password with this module alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import bcrypt

__all__ = [
    "SCHEMES",
    "apr1_md5",
    "check_password",
    "hash_password",
    "hash_scheme",
]

SCHEMES = ("bcrypt", "apr1", "sha1", "plain")
BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
APR1_PREFIX = "$apr1$"
SHA1_PREFIX = "{SHA}"
#: bcrypt only uses the first 72 bytes of a password; Apache's htpasswd truncates silently.
BCRYPT_MAX_BYTES = 72

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


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
