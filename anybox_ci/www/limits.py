"""Request body limits for the master's web port, enforced before the body is read.

Twisted reads a request's whole body (into memory, or a temporary file past 100 kB) before
any resource sees it, and Buildbot's change hook resource, like the login guard in front of
it, only runs then: an unauthenticated client could make the master read and parse
megabytes for nothing. :class:`BodyLimitedRequest` is the site's request class: it looks at
the announced ``Content-Length`` as soon as the headers are in (and counts a chunked body as
it comes), and answers ``413`` and closes the connection when the body is too large for the
path, without reading it.

Buildbot creates its site itself; :func:`install_request_limits` swaps the request class of
that site. It runs when the www plugins are configured (the matrix page's plugin hands it
the master before the port listens, see :mod:`anybox_ci.www.matrix_page`) and again when the
``anybox`` change hook starts.
"""

from __future__ import annotations

from typing import Any

from twisted.python import log
from twisted.web import server

from anybox_ci.changes.protocol import HOOK_PATH, MAX_HOOK_BODY

__all__ = [
    "MAX_BODY",
    "MAX_FORGE_HOOK_BODY",
    "BodyLimitedRequest",
    "body_limit",
    "install_request_limits",
]

#: forges' webhooks (the ``github``, ``gitlab``... dialects); GitHub caps its payloads at 25 MB
MAX_FORGE_HOOK_BODY = 25 * 1024 * 1024
#: everything else the web port takes (JSON-RPC control calls, the login form) is small
MAX_BODY = 4 * 1024 * 1024


def body_limit(path: bytes) -> int:
    """The largest request body accepted for a request to ``path`` (query string included)."""
    route = path.split(b"?", 1)[0]
    hook = HOOK_PATH.encode()
    if route == hook or route.startswith(hook + b"/"):
        return MAX_HOOK_BODY
    if route == b"/change_hook" or route.startswith(b"/change_hook/"):
        return MAX_FORGE_HOOK_BODY
    return MAX_BODY


class _Discard:
    """Where the body of a refused request goes: nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args: Any) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


class BodyLimitedRequest(server.Request):
    """A Twisted web request that refuses a too large body before reading it."""

    _limit: int = MAX_BODY
    _received: int = 0
    _refused: bool = False

    def gotLength(self, length: int | None) -> None:
        # The request line is parsed by now; HTTPChannel keeps its path until the body is in.
        self._limit = body_limit(getattr(self.channel, "_path", b"") or b"")
        if length is not None and length > self._limit:
            self._refuse(length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit:  # a chunked body, or more than announced
            self._refuse(self._received)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return  # never processed: no resource ever sees it
        super().requestReceived(command, path, version)

    def _refuse(self, size: int) -> None:
        self._refused = True
        self.content = _Discard()
        message = f"request body too large: {size} bytes, at most {self._limit} here\n".encode()
        channel: Any = self.channel
        peer = getattr(self.getClientAddress(), "host", "?")
        log.msg(f"anybox-ci: refused a {size}-byte request body from {peer} (limit {self._limit})")
        if channel is None or channel.transport is None:
            return
        channel.transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(message)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + message
        )
        channel.loseConnection()


def install_request_limits(site: Any) -> bool:
    """Make ``site`` (Buildbot's ``master.www.site``) create :class:`BodyLimitedRequest`\\ s.

    Returns whether the limits are in place. A site with a request class of its own (not
    Twisted's) is left alone, with a log line.
    """
    if site is None:
        return False
    current = getattr(site, "requestFactory", None)
    if isinstance(current, type) and issubclass(current, BodyLimitedRequest):
        return True
    if current is not server.Request:
        log.msg(f"anybox-ci: request body limits not installed: the site uses {current!r}")
        return False
    site.requestFactory = BodyLimitedRequest
    log.msg("anybox-ci: request body limits installed on the web port")
    return True
