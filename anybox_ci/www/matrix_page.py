"""The matrix page of the web UI (a Buildbot ``wsgi_dashboards`` page), and the badges.

Rows are buildouts, columns are capability versions; each cell shows the result and time of
its last build and links to its builder and that build; a slot without a cell says why (the
plan's reason, ``anybox-ci matrix`` gives the same). The page filters by name, tag and
result and pages on the server: one request reads the builder ids and the last builds of the
cells it shows in two queries (:mod:`.matrix_data`), whatever the number of buildouts.

The web UI embeds the first page (it fetches ``index.html`` without a query); the filter
form and the pager open the page itself, at ``plugins/wsgi_dashboards/anybox-matrix/``.
Badges are ``badges/BUILDOUT.svg`` and ``badges/BUILDOUT/CELL.svg`` below that address.
Everything follows the read permission of the REST API (``anonymous_read``).
"""

from __future__ import annotations

import html
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.python import log

from ..core.capabilities import CapabilityRegistry
from ..core.model import Buildout
from ..core.plan import Matrix
from .badges import aggregate, badge_svg
from .limits import install_request_limits
from .matrix_data import RESULT_NAMES, BuildSource, DatabaseBuilds, LastBuild
from .matrix_model import MatrixModel, Row, Slot, build_model

#: where Buildbot's wsgi_dashboards plugin serves the page (below ``buildbotURL``)
PAGE_PATH = "plugins/wsgi_dashboards/anybox-matrix/"
PAGE_SIZES = (10, 25, 50, 100, 200)
DEFAULT_SIZE = 50
#: the result filter's choices: Buildbot's results, plus "running" and "never" (not built)
RESULT_FILTERS = (*RESULT_NAMES.values(), "running", "never")
MAX_QUERY = 2000
MAX_NAME = 100

# Scoped to the page's own container: the web UI embeds this page in its layout.
_STYLE = """
.anybox-matrix{font-family:sans-serif;padding:1em;color:#222}
.anybox-matrix table{border-collapse:collapse;margin:1em 0}
.anybox-matrix td,.anybox-matrix th{border:1px solid #ccc;padding:.25em .5em;text-align:left;
vertical-align:top;font-size:90%}
.anybox-matrix th{background:#f3f3f3}
.anybox-matrix td.cell a{color:#111;text-decoration:none;display:block}
.anybox-matrix td.cell a.build{font-weight:bold}
.anybox-matrix td.cell time,.anybox-matrix td.cell span{display:block}
.anybox-matrix td.cell time{color:#333;font-size:85%}
.anybox-matrix a.badge-link{font-size:75%;font-weight:normal}
.anybox-matrix td.none{color:#777;font-size:80%;max-width:16em}
.anybox-matrix td.row-reason{color:#933;font-size:85%}
.anybox-matrix .tag{background:#eee;border-radius:3px;padding:0 .3em;margin-right:.2em;
font-size:80%}
.anybox-matrix .r-success{background:#8d4}.anybox-matrix .r-warnings{background:#fa3}
.anybox-matrix .r-failure{background:#e88}.anybox-matrix .r-skipped{background:#ade}
.anybox-matrix .r-exception{background:#c6c}.anybox-matrix .r-retry{background:#ecc}
.anybox-matrix .r-cancelled{background:#ecc}.anybox-matrix .r-running{background:#e7d100}
.anybox-matrix .r-never{background:#fff}
.anybox-matrix form label{margin-right:1em}
.anybox-matrix .pager a,.anybox-matrix .pager span{margin-right:1em}
"""


class BadQuery(ValueError):
    """A query string the page refuses (one line, shown with a 400)."""


@dataclass(frozen=True)
class Query:
    """What a request asks for; every field checked by :func:`parse_query`."""

    name: str = ""
    tag: str = ""
    result: str = ""
    page: int = 1
    size: int = DEFAULT_SIZE

    def as_params(self, **changes: Any) -> str:
        """The query string of this query with ``changes`` (defaults left out)."""
        query = replace(self, **changes)
        params = [
            (key, str(value))
            for key, value, default in (
                ("name", query.name, ""),
                ("tag", query.tag, ""),
                ("result", query.result, ""),
                ("size", query.size, DEFAULT_SIZE),
                ("page", query.page, 1),
            )
            if value != default
        ]
        return urllib.parse.urlencode(params)


def parse_query(text: str, model: MatrixModel) -> Query:
    """The query of a request's query string; raises :class:`BadQuery` on anything odd."""
    if len(text) > MAX_QUERY:
        raise BadQuery("query string too long")
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise BadQuery(f"unreadable query string: {exc}") from None
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in ("name", "tag", "result", "page", "size"):
            raise BadQuery("unknown parameter: expected name, tag, result, page or size")
        if key in values:
            raise BadQuery(f"{key}: given twice")
        values[key] = value
    name = values.get("name", "").strip()
    if len(name) > MAX_NAME or any(ord(ch) < 32 for ch in name):
        raise BadQuery(f"name: at most {MAX_NAME} printable characters")
    tag = values.get("tag", "")
    if tag and tag not in model.tags:
        raise BadQuery("tag: not a tag of this matrix")
    result = values.get("result", "")
    if result and result not in RESULT_FILTERS:
        raise BadQuery(f"result: expected one of {', '.join(RESULT_FILTERS)}")
    try:
        page = int(values.get("page", "1") or "1")
        size = int(values.get("size", str(DEFAULT_SIZE)) or DEFAULT_SIZE)
    except ValueError:
        raise BadQuery("page and size: expected whole numbers") from None
    if page < 1 or page > 1_000_000:
        raise BadQuery("page: out of range")
    if size not in PAGE_SIZES:
        raise BadQuery(f"size: expected one of {', '.join(map(str, PAGE_SIZES))}")
    return Query(name, tag, result, page, size)


@dataclass(frozen=True)
class PageView:
    """One page of rows with what the database says about their cells."""

    rows: tuple[Row, ...]
    #: rows matching the filter, on every page
    total: int
    pages: int
    #: builder name -> id, for the cells of the shown rows that exist in the database
    builder_ids: Mapping[str, int]
    #: builder id -> its last build
    builds: Mapping[int, LastBuild]

    def last(self, cell: str) -> LastBuild | None:
        builderid = self.builder_ids.get(cell)
        return None if builderid is None else self.builds.get(builderid)


def _row_results(row: Row, ids: Mapping[str, int], builds: Mapping[int, LastBuild]) -> set[str]:
    found = set()
    for cell in row.cells:
        build = builds.get(ids.get(cell, -1))
        found.add(build.result_name if build else "never")
    return found


def select_page(model: MatrixModel, query: Query, source: BuildSource) -> PageView:
    """Filter and page the rows; two queries to ``source`` (a result filter needs the
    last build of every cell the name and tag filters leave, still in those two)."""
    needle = query.name.lower()
    rows = [
        r
        for r in model.rows
        if (not needle or needle in r.buildout.lower()) and (not query.tag or query.tag in r.tags)
    ]
    ids = source.builder_ids()
    if query.result:
        wanted = {ids[c] for r in rows for c in r.cells if c in ids}
        builds = source.last_builds(wanted)
        rows = [r for r in rows if query.result in _row_results(r, ids, builds)]
    total = len(rows)
    pages = max(1, -(-total // query.size))
    start = (query.page - 1) * query.size
    shown = tuple(rows[start : start + query.size])
    shown_ids = {c: ids[c] for r in shown for c in r.cells if c in ids}
    if not query.result:
        builds = source.last_builds(set(shown_ids.values()))
    return PageView(shown, total, pages, shown_ids, builds)


def _when(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def render_html(model: MatrixModel, query: Query, view: PageView, base_url: str = "") -> str:
    """The page; every value from the manifests, the workers or the database is escaped."""
    esc = html.escape
    page_url = base_url + PAGE_PATH + "index.html"
    ui = base_url + "#/builders/"

    def cell_html(slot: Slot) -> str:
        cell = slot.cell
        builderid = view.builder_ids.get(cell)
        build = view.last(cell)
        state = build.result_name if build else "never"
        if builderid is None:
            inner = f"<span class='builder'>{esc(cell)}</span>"
        else:
            inner = f"<a class='builder' href='{esc(ui)}{builderid}'>{esc(cell)}</a>"
        if build is None:
            inner += "<span class='state'>not built yet</span>"
        else:
            stamp = build.complete_at if build.complete_at is not None else build.started_at
            inner += (
                f"<a class='build' href='{esc(ui)}{builderid}/builds/{build.number}'>"
                f"#{build.number} {esc(state)}</a>"
                f"<time datetime='{stamp}'>{esc(_when(stamp))}</time>"
            )
        workers = esc("workers: " + ", ".join(slot.workers))
        return (
            f"<td class='cell r-{esc(state)}' data-cell='{esc(cell)}' title='{workers}'>"
            f"{inner}</td>"
        )

    body_rows = []
    for row in view.rows:
        tags = "".join(f"<span class='tag'>{esc(t)}</span>" for t in row.tags)
        badge = f"{base_url}{PAGE_PATH}badges/{urllib.parse.quote(row.buildout)}.svg"
        head = (
            f"<th class='buildout' data-buildout='{esc(row.buildout)}'>{esc(row.buildout)}"
            f"<div>{tags}</div>"
            + (f"<a class='badge-link' href='{esc(badge)}'>badge</a>" if row.cells else "")
            + "</th>"
        )
        if row.reason:
            kind = "broken" if row.broken else "unmatched"
            cells = (
                f"<td class='row-reason {kind}' colspan='{max(1, len(model.columns))}'>"
                f"{esc(row.reason)}</td>"
            )
        else:
            cells = "".join(
                cell_html(slot)
                if slot.cell
                else f"<td class='none' title='{esc(slot.reason)}'>{esc(slot.reason)}</td>"
                for slot in row.slots.values()
            )
        body_rows.append(f"<tr>{head}{cells}</tr>")

    def option(value: str, current: str, label: str | None = None) -> str:
        selected = " selected" if value == current else ""
        return f"<option value='{esc(value)}'{selected}>{esc(label or value or 'any')}</option>"

    form = (
        f"<form class='filter' method='get' action='{esc(page_url)}'>"
        f"<label>name <input name='name' value='{esc(query.name)}' size='16'></label>"
        "<label>tag <select name='tag'>"
        + option("", query.tag)
        + "".join(option(t, query.tag) for t in model.tags)
        + "</select></label><label>result <select name='result'>"
        + option("", query.result)
        + "".join(option(r, query.result) for r in RESULT_FILTERS)
        + "</select></label><label>per page <select name='size'>"
        + "".join(option(str(n), str(query.size)) for n in PAGE_SIZES)
        + "</select></label><button type='submit'>Filter</button></form>"
    )

    def page_link(page: int, text: str, css: str) -> str:
        href = page_url + "?" + query.as_params(page=page)
        return f"<a class='{css}' href='{esc(href)}'>{esc(text)}</a>"

    pager = [f"<span class='position'>page {query.page} of {view.pages}</span>"]
    if query.page > 1:
        pager.insert(0, page_link(query.page - 1, "previous", "prev"))
    if query.page < view.pages:
        pager.append(page_link(query.page + 1, "next", "next"))
    header = "".join(
        f"<th class='version' data-column='{esc(c.key)}'>{esc(c.label)}</th>" for c in model.columns
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>anybox_ci matrix</title>"
        f"<style>{_STYLE}</style></head><body><div class='anybox-matrix'>"
        f"<h1>Matrix</h1><p class='summary'>{len(model.rows)} buildout(s), "
        f"{model.cell_count} cell(s); {view.total} shown by this filter.</p>"
        + form
        + f"<div class='pager'>{''.join(pager)}</div>"
        "<table id='matrix'><thead><tr><th>buildout</th>"
        + header
        + "</tr></thead><tbody>"
        + "".join(body_rows)
        + "</tbody></table></div></body></html>"
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
    """The WSGI application of the page and the badges; a new one at each reconfig.

    It is shown only to whoever may read the builders, workers and builds through the REST
    API: the request's session (the web UI's login cookie) is checked against
    ``c['www']['authz']``, as Buildbot's REST API checks it. Anyone else gets a 403.

    Buildbot's ``wsgi_dashboards`` plugin hands each dashboard application itself (with the
    master) as ``buildbot_api`` whenever the web server is (re)configured, once before the
    port listens: the page takes that moment to put the request body limits of
    :mod:`anybox_ci.www.limits` in place.
    """

    #: what the page shows, as REST endpoints: reading it needs the right to read these
    ENDPOINTS = (("builders",), ("workers",), ("builds",))

    def __init__(
        self,
        matrix: Matrix,
        buildouts: Iterable[Buildout] = (),
        registry: CapabilityRegistry | None = None,
    ):
        self.model = build_model(matrix, buildouts, registry)
        self._api: Any = None
        self.run_in_reactor: Callable[..., Any] = _blocking_in_reactor
        #: where builds are read from; the master's database unless a test sets one
        self.source_override: BuildSource | None = None

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

    def source(self) -> BuildSource:
        if self.source_override is not None:
            return self.source_override
        master = getattr(self._api, "master", None)
        if master is None or getattr(master, "db", None) is None:
            raise LookupError("the matrix page is served by a Buildbot master only")
        return DatabaseBuilds(master, self.run_in_reactor)

    def base_url(self) -> str:
        """The web UI's address (``c['buildbotURL']``): links work embedded or not."""
        config = getattr(getattr(self._api, "master", None), "config", None)
        url = getattr(config, "buildbotURL", "") or ""
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else "/"

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

    def respond(self, path: str, query_string: str) -> tuple[str, str, bytes]:
        """Status line, content type and body of a GET of ``path``."""
        parts = [p for p in path.split("/") if p]
        if parts in ([], ["index.html"]):
            try:
                query = parse_query(query_string, self.model)
            except BadQuery as exc:
                return _text("400 Bad Request", f"matrix: {exc}")
            view = select_page(self.model, query, self.source())
            page = render_html(self.model, query, view, self.base_url())
            return "200 OK", "text/html; charset=utf-8", page.encode()
        if parts and parts[0] == "badges" and len(parts) in (2, 3) and parts[-1].endswith(".svg"):
            names = [urllib.parse.unquote(p) for p in parts[1:]]
            names[-1] = names[-1][: -len(".svg")]
            return self.badge(names)
        return _text("404 Not Found", "matrix: no such page")

    def badge(self, names: Sequence[str]) -> tuple[str, str, bytes]:
        """``[buildout]``: its cells' worst last result; ``[buildout, cell]``: the cell's."""
        row = self.model.by_name.get(names[0])
        if row is None or not row.cells or (len(names) == 2 and names[1] not in row.cells):
            return _text("404 Not Found", "matrix: no such buildout or cell")
        cells = [names[1]] if len(names) == 2 else row.cells
        source = self.source()
        ids = source.builder_ids()
        wanted = {ids[c] for c in cells if c in ids}
        builds = source.last_builds(wanted)
        state = aggregate(builds.get(ids[c]) if c in ids else None for c in cells)
        return "200 OK", "image/svg+xml", badge_svg(names[-1], state).encode()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        headers: list[tuple[str, str]] = []
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            status, kind, body = _text("405 Method Not Allowed", "read-only")
        elif (refused := self.refusal(environ)) is not None:
            status, kind, body = _text("403 Forbidden", refused)
        else:
            try:
                status, kind, body = self.respond(
                    str(environ.get("PATH_INFO", "")), str(environ.get("QUERY_STRING", ""))
                )
            except Exception as exc:  # one line, never a traceback on the web port
                log.msg(f"anybox-ci: matrix page: {exc!r}"[:300])
                status, kind, body = _text("500 Internal Server Error", "matrix: unavailable")
            headers.append(("Cache-Control", "no-cache"))
        start_response(
            status,
            [("Content-Type", kind), ("Content-Length", str(len(body))), *headers],
        )
        return [body]


def _text(status: str, message: str) -> tuple[str, str, bytes]:
    return status, "text/plain; charset=utf-8", (message + "\n").encode()


def dashboard(
    matrix: Matrix,
    buildouts: Iterable[Buildout] = (),
    registry: CapabilityRegistry | None = None,
) -> dict[str, Any]:
    """The ``c['www']['plugins']['wsgi_dashboards']`` entry."""
    return {
        "name": "anybox-matrix",
        "caption": "Matrix",
        "app": MatrixPage(matrix, buildouts, registry),
        "order": 20,
        "icon": "table",
    }
