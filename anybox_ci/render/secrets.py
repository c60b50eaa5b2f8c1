"""Secrets read when they are used, so that a reconfig (or none) sees the files as they are.

Buildbot's ``SecretInAFile`` reads its folder once, when its own configuration changes: a
secret file added for a new worker is unknown to the reconfig that adds the worker (which
then fails half-way, "configuration update partially applied"), and a rotated PostgreSQL
password is ignored until the master restarts. :class:`SecretsFolder` reads
``DIRNAME/NAME`` at every use instead; master.cfg uses it in place of ``SecretInAFile``::

    from anybox_ci.render.secrets import SecretsFolder
    c['secretsProviders'] = [SecretsFolder(dirname=os.path.join(basedir, 'secrets'))]

:class:`WorkerPassword` is how a worker's ``password = secret:NAME`` reaches Buildbot: when
the secret is missing, that worker cannot log in (and the master says why), but the reconfig
goes on for everything else.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from typing import Any

from buildbot import config
from buildbot.process.properties import Secret
from buildbot.secrets.providers.base import SecretProviderBase
from twisted.internet import defer
from twisted.python import log

#: a secret's file name: no path separator, no hidden file, no ``..``
SECRET_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}\Z")


def secret_name_error(name: str) -> str | None:
    """Why ``name`` cannot name a file of the secrets folder, or None."""
    if not SECRET_NAME_RE.match(name) or ".." in name:
        return "expected letters, digits and '_', '.', '+', '-' (no '/', no leading '.')"
    return None


def _too_open(mode: int) -> bool:
    return os.name == "posix" and bool(stat.S_IMODE(mode) & 0o007)


class SecretsFolder(SecretProviderBase):
    """One file per secret in ``dirname``, read at every ``get`` (no cache).

    As ``SecretInAFile``: files that others may read are refused (at configuration time
    an error, later a log line and no value), a trailing line break is stripped."""

    name: str | None = "SecretsFolder"

    def checkConfig(self, dirname: str, strip: bool = True) -> None:
        if not os.path.isdir(dirname):
            config.error(f"secrets folder {dirname} does not exist")
            return
        for entry in sorted(os.listdir(dirname)):
            path = os.path.join(dirname, entry)
            if os.path.isfile(path) and _too_open(os.stat(path).st_mode):
                config.error(
                    f"Permissions {oct(stat.S_IMODE(os.stat(path).st_mode))} on secret file "
                    f"{entry} are too open: others must not be able to read it"
                )

    def reconfigService(self, dirname: str, strip: bool = True) -> None:
        self.dirname = dirname
        self.strip = strip

    def get(self, entry: str) -> str | None:
        if secret_name_error(entry):
            return None
        path = os.path.join(self.dirname, entry)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, encoding="utf-8", errors="strict") as source:
            if _too_open(os.fstat(source.fileno()).st_mode):
                log.msg(f"anybox-ci: secret {entry}: file readable by others, ignored")
                return None
            try:
                value = source.read()
            except (OSError, UnicodeDecodeError) as exc:
                log.msg(f"anybox-ci: secret {entry}: cannot read: {type(exc).__name__}")
                return None
        return value.rstrip("\r\n") if self.strip else value


class WorkerPassword(Secret):
    """A worker's password from a secret; a missing secret locks the worker out, nothing else.

    Buildbot renders a worker's password while it reconfigures the workers, after other
    services already changed: an exception there leaves the master half-configured (and
    ``buildbot stop`` hanging). A random password instead keeps the reconfig whole."""

    def __init__(self, worker: str, secret: str):
        super().__init__(secret)
        self.worker = worker

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        try:
            value = yield super().getRenderingFor(props)
        except KeyError:
            log.msg(
                f"anybox-ci: error: worker {self.worker}: secret {self.secret_name!r} not found; "
                "the worker cannot log in until the secret exists and the master reconfigures"
            )
            return secrets.token_urlsafe(32)
        return value

    def __repr__(self) -> str:
        return f"WorkerPassword({self.worker!r}, {self.secret_name!r})"
