"""A read-only page of the matrix in the web UI, through Buildbot's wsgi_dashboards.

It shows every builder with its buildout, workers and properties, and every cell that
no worker can run, with the reason: the same facts as ``anybox-ci matrix``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.python import log

from ..core.plan import Matrix
from .limits import install_request_limits

# Scoped to the page's own container: the web UI embeds this page in its layout.
_STYLE = """
.anybox-matrix{font-family:sans-serif;padding:1em;color:#222}
.anybox-matrix table{border-collapse:collapse;margin-bottom:2em}
.anybox-matrix td,.anybox-matrix th{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}
.anybox-matrix th{background:#f3f3f3} .anybox-matrix code{font-size:90%}
"""


def render_html(matrix: Matrix) -> str:
    esc = html.escape
    rows = []
    for cell in matrix.cells:
        props = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(cell.properties.items()))
        rows.append(
            f"<tr><td><code>{esc(cell.name)}</code></td><td>{esc(cell.buildout)}</td>"
            f"<td>{esc(', '.join(sorted(cell.workers)))}</td><td><code>{esc(props)}</code></td>"
            "</tr>"
        )
    missing = [
        f"<tr><td>{esc(u.buildout)}</td><td><code>{esc(u.cell or '-')}</code></td>"
        f"<td>{esc(u.reason)}</td></tr>"
        for u in matrix.unmatched
    ]
    broken = [f"<tr><td>{esc(b.buildout)}</td><td>{esc(b.reason)}</td></tr>" for b in matrix.broken]
    broken_table = (
        "<h2>Broken</h2><p>Left out of this master until fixed.</p><table id='broken'>"
        "<tr><th>buildout</th><th>reason</th></tr>" + "".join(broken) + "</table>"
        if broken
        else ""
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>anybox_ci matrix</title>"
        f"<style>{_STYLE}</style></head><body><div class='anybox-matrix'>"
        f"<h1>Matrix</h1><p>{len(matrix.cells)} builder(s), "
        f"{len(matrix.unmatched)} unmatched.</p>"
        "<table id='builders'><tr><th>builder</th><th>buildout</th><th>workers</th>"
        "<th>properties</th></tr>" + "".join(rows) + "</table>"
        "<h2>Unmatched</h2><table id='unmatched'><tr><th>buildout</th><th>cell</th>"
        "<th>reason</th></tr>"
        + "".join(missing)
        + "</table>"
        + broken_table
        + "</div></body></html>"
    )


def _blocking_in_reactor(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function`` in the reactor thread and wait for its (deferred) result."""
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread

    return blockingCallFromThread(reactor, function, *args)


def _session_token(environ: Mapping[str, Any]) -> str | None:
    """The Buildbot session cookie of the request, as the web UI's login set it."""
    from buildbot.www.auth import build_cookie_name

    name = build_cookie_name(environ.get("wsgi.url_scheme") == "https", []).decode("ascii")
    for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


class MatrixPage:
    """A WSGI application serving one pre-rendered page; it is replaced at each reconfig.

    It is shown only to whoever may read the builders and workers through the REST API: the
    request's session (the web UI's login cookie) is checked against ``c['www']['authz']``,
    as Buildbot's REST API checks it. Anyone else gets a 403.

    Buildbot's ``wsgi_dashboards`` plugin hands each dashboard application itself (with the
    master) as ``buildbot_api`` whenever the web server is (re)configured, once before the
    port listens: the page takes that moment to put the request body limits of
    :mod:`anybox_ci.www.limits` in place.
    """

    #: what the page shows, as REST endpoints: reading it needs the right to read these
    ENDPOINTS = (("builders",), ("workers",))

    def __init__(self, matrix: Matrix):
        self.body = render_html(matrix).encode()
        self._api: Any = None
        self.run_in_reactor: Callable[..., Any] = _blocking_in_reactor

    @property
    def buildbot_api(self) -> Any:
        return self._api

    @buildbot_api.setter
    def buildbot_api(self, api: Any) -> None:
        self._api = api
        www = getattr(getattr(api, "master", None), "www", None)
        site = getattr(www, "site", None)
        if site is not None:
            install_request_limits(site)

    def _user_info(self, environ: Mapping[str, Any], www: Any) -> dict[str, Any]:
        """The session's user, or the anonymous user (no, expired or forged cookie)."""
        import jwt
        from buildbot.www.auth import SESSION_SECRET_ALGORITHM, build_anonymous_user_info

        token = _session_token(environ)
        secret = getattr(getattr(www, "site", None), "session_secret", None)
        if token and secret:
            try:
                claims = jwt.decode(token, secret, algorithms=[SESSION_SECRET_ALGORITHM])
                info = claims["user_info"]
                if isinstance(info, dict):
                    return info
            except (jwt.PyJWTError, KeyError, TypeError, ValueError):
                pass
        return build_anonymous_user_info()

    def refusal(self, environ: Mapping[str, Any]) -> str | None:
        """Why this request may not see the page (one line), or None when it may."""
        from buildbot.www.authz import Forbidden

        www = getattr(getattr(self._api, "master", None), "www", None)
        if www is None:
            return "the matrix page is served by a Buildbot master only"
        authz = getattr(www, "authz", None)
        if authz is None:
            return None  # no authz configured: Buildbot lets everybody read
        user = self._user_info(environ, www)
        for endpoint in self.ENDPOINTS:
            try:
                self.run_in_reactor(authz.assertUserAllowed, endpoint, "get", {}, user)
            except Forbidden as exc:
                message = exc.message.decode("utf-8", "replace") if exc.message else ""
                return f"not allowed to read the matrix: {message or 'forbidden'}"
            except Exception as exc:  # fail closed, on one line
                log.msg(f"anybox-ci: matrix page: authorization check failed: {exc!r}"[:300])
                return "not allowed to read the matrix: the authorization check failed"
        return None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"read-only"]
        refused = self.refusal(environ)
        if refused is not None:
            body = (refused + "\n").encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        start_response(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(self.body)))],
        )
        return [self.body]


def dashboard(matrix: Matrix) -> dict[str, Any]:
    """The ``c['www']['plugins']['wsgi_dashboards']`` entry."""
    return {
        "name": "anybox-matrix",
        "caption": "Matrix",
        "app": MatrixPage(matrix),
        "order": 20,
        "icon": "table",
    }
