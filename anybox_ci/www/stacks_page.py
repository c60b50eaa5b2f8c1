"""Stacks over HTTP: a page and a JSON API in the web UI, through ``wsgi_dashboards``.

Under ``plugins/wsgi_dashboards/anybox-stacks/``:

- ``index.html``: the newest stacks of each domain, their channel, what changed from the
  previous stack;
- ``api/stacks`` (JSON, ``?domain=D&limit=N``): the same data;
- ``api/stacks/DOMAIN/N``: one stack; ``api/stacks/DOMAIN/N/export`` its pinned revisions
  as JSON, ``.../export?format=buildout`` in buildout form;
- ``api/candidates/BUILDOUT``: a member's newest *unstable* candidates.

Read-only, and shown only to whoever may read the builders through the REST API (the
session cookie checked against ``c['www']['authz']``, as for the matrix page): with
``anonymous_read`` off, anonymous visitors get a 403.
"""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from twisted.python import log

from ..stacks.export import buildout_export, diff, stack_dict, when
from ..stacks.model import Stack
from ..stacks.store import StackStore, db_url_of, store_for
from .matrix_page import MatrixPage, _blocking_in_reactor

_STYLE = """
.anybox-stacks{font-family:sans-serif;padding:1em;color:#222}
.anybox-stacks table{border-collapse:collapse;margin-bottom:2em}
.anybox-stacks td,.anybox-stacks th{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top} .anybox-stacks th{background:#f3f3f3} .anybox-stacks code{font-size:90%}
"""
DEFAULT_LIMIT = 20
MAX_LIMIT = 500


def domain_view(store: StackStore, domain: str, limit: int) -> dict[str, Any]:
    """A domain's channels and newest stacks, each with its changes from the previous one."""
    channels = store.channels(domain)
    stacks = store.stacks(domain, limit + 1)
    shown = []
    for i, stack in enumerate(stacks[:limit]):
        entry = stack_dict(stack, channels)
        previous = stacks[i + 1] if i + 1 < len(stacks) else None
        entry["previous"] = previous.number if previous else None
        changes = diff(previous, stack) if previous else []
        entry["changes"] = [{**c.as_dict(), "lines": c.lines()} for c in changes]
        shown.append(entry)
    return {"domain": domain, "channels": channels, "stacks": shown}


def render_html(views: list[dict[str, Any]]) -> str:
    esc = html.escape
    parts = []
    for view in views:
        chans = ", ".join(f"{k}: {v}" for k, v in sorted(view["channels"].items())) or "none"
        rows = []
        for s in view["stacks"]:
            members = "<br>".join(
                f"{esc(m['buildout'])} <code>{esc(m['release_version'] or '?')}</code>"
                for m in s["members"]
            )
            changed = "<br>".join(esc(line) for c in s["changes"] for line in c["lines"]) or "-"
            rows.append(
                f"<tr><td>{s['number']}</td><td>{esc(', '.join(s['channels']) or '-')}</td>"
                f"<td>{esc(s['frozen_at'])}</td><td>{esc(s['frozen_by'])}</td>"
                f"<td>{members}</td><td>{changed}</td></tr>"
            )
        table = (
            "<table class='stacks'><tr><th>stack</th><th>channels</th><th>frozen at</th>"
            "<th>frozen by</th><th>members</th><th>changed from previous</th></tr>"
            + "".join(rows)
            + "</table>"
            if rows
            else "<p>No stack yet.</p>"
        )
        parts.append(f"<h2>{esc(view['domain'])}</h2><p>channels: {esc(chans)}</p>{table}")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>anybox_ci stacks</title>"
        f"<style>{_STYLE}</style></head><body><div class='anybox-stacks'><h1>Stacks</h1>"
        + ("".join(parts) or "<p>No stack yet.</p>")
        + "</div></body></html>"
    )


class StacksPage(MatrixPage):
    """A WSGI application reading the stack tables of the master's own database.

    Authorization and request limits are the matrix page's (see :class:`MatrixPage`)."""

    ENDPOINTS = (("builders",),)  # type: ignore[assignment]

    def __init__(self, domains: Iterable[str] = ()):
        # no matrix here: MatrixPage's constructor is not called, its checks are used
        self.body = b""
        self._api = None
        self.run_in_reactor: Callable[..., Any] = _blocking_in_reactor
        self.domains = list(domains)
        self.store_override: StackStore | None = None

    def store(self) -> StackStore:
        if self.store_override is not None:
            return self.store_override
        master = getattr(self._api, "master", None)
        if master is None:
            raise LookupError("the stacks page is served by a Buildbot master only")
        return store_for(db_url_of(master.config.db), Path(master.basedir))

    def answer(self, path: str, query: Mapping[str, list[str]]) -> tuple[str, str, bytes]:
        """Status line, content type and body of a GET of ``path``."""
        store = self.store()
        try:
            limit = int((query.get("limit") or [str(DEFAULT_LIMIT)])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:  # a negative LIMIT is no limit at all in SQLite
            return _text("400 Bad Request", f"limit: expected a whole number from 1 to {MAX_LIMIT}")
        parts = [p for p in path.strip("/").split("/") if p]
        known = set(self.domains) | set(store.domains())
        if parts in ([], ["index.html"]):
            domains = sorted(known)
            views = [domain_view(store, d, limit) for d in domains]
            return "200 OK", "text/html; charset=utf-8", render_html(views).encode()
        if parts[:2] == ["api", "stacks"]:
            rest = parts[2:]
            if not rest:
                wanted = query.get("domain")
                if wanted and not set(wanted) <= known:
                    return _text("404 Not Found", "stacks: no such domain")
                domains = wanted or sorted(known)
                return _json({"domains": [domain_view(store, d, limit) for d in domains]})
            if len(rest) in (2, 3) and re.fullmatch(r"[0-9]{1,9}", rest[1]):
                if rest[0] not in known:
                    return _text("404 Not Found", "stacks: no such domain")
                stack = store.stack(rest[0], int(rest[1]))
                if stack is None:
                    return _text("404 Not Found", f"stacks: domain has no stack {int(rest[1])}")
                if len(rest) == 2:
                    return _json(stack_dict(stack, store.channels(stack.domain)))
                if rest[2] == "export":
                    return _export(stack, (query.get("format") or ["json"])[0])
        if parts[:2] == ["api", "candidates"] and len(parts) == 3:
            found = store.candidates(parts[2], limit)
            return _json(
                {
                    "buildout": parts[2],
                    "candidates": [
                        {
                            "id": c.id,
                            "release_version": c.release_version,
                            "artefact": c.artefact,
                            "artefact_sha256": c.artefact_sha256,
                            "build_url": c.build_url,
                            "recorded_at": when(c.recorded_at),
                            "revisions": [p.as_dict() for p in c.pins],
                        }
                        for c in found
                    ],
                }
            )
        return _text("404 Not Found", "no such page")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            status, kind, body = _text("405 Method Not Allowed", "read-only")
        elif (refused := self.refusal(environ)) is not None:
            status, kind, body = _text("403 Forbidden", refused.replace("the matrix", "stacks"))
        else:
            query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", ""))[:2000])
            try:
                status, kind, body = self.answer(str(environ.get("PATH_INFO", "")), query)
            except Exception as exc:  # one line, never a traceback (nor SQL) on the web port
                log.msg(f"anybox-ci: stacks page: {exc!r}"[:300])
                status, kind, body = _text("500 Internal Server Error", "stacks: unavailable")
        start_response(
            status,
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]


def _text(status: str, message: str) -> tuple[str, str, bytes]:
    return status, "text/plain; charset=utf-8", (message + "\n").encode()


def _json(data: Any) -> tuple[str, str, bytes]:
    return "200 OK", "application/json", json.dumps(data, indent=1).encode()


def _export(stack: Stack, form: str) -> tuple[str, str, bytes]:
    if form == "buildout":
        return "200 OK", "text/plain; charset=utf-8", buildout_export(stack).encode()
    if form == "json":
        return _json(stack_dict(stack))
    return _text("400 Bad Request", "format: expected json or buildout")


def dashboard(domains: Iterable[str] = ()) -> dict[str, Any]:
    """The ``c['www']['plugins']['wsgi_dashboards']`` entry."""
    return {
        "name": "anybox-stacks",
        "caption": "Stacks",
        "app": StacksPage(domains),
        "order": 21,
        "icon": "layer-group",
    }


def admins_only(authz: Any, builders: Iterable[str]) -> None:
    """Put first in ``authz`` rules that only admins may force or rebuild these (promote)
    builders: a rebuild replays the force form's stack and channel, and its ``owner``
    (the admin who forced it), so it is a promotion too."""
    if authz is None:
        return  # no authz: Buildbot lets everybody do everything
    from buildbot.www.authz.endpointmatchers import (
        ForceBuildEndpointMatcher,
        RebuildBuildEndpointMatcher,
    )

    from .authz import ADMIN_ROLE

    rules = [
        matcher(builder=b, role=ADMIN_ROLE, defaultDeny=True)
        for b in builders
        for matcher in (ForceBuildEndpointMatcher, RebuildBuildEndpointMatcher)
    ]
    authz.allowRules[0:0] = rules
