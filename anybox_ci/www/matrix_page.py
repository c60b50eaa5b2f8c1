"""A read-only page of the matrix in the web UI, through Buildbot's wsgi_dashboards.

It shows every builder with its buildout, workers and properties, and every cell that
no worker can run, with the reason: the same facts as ``anybox-ci matrix``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from typing import Any

from ..core.plan import Matrix

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
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>anybox_ci matrix</title>"
        f"<style>{_STYLE}</style></head><body><div class='anybox-matrix'>"
        f"<h1>Matrix</h1><p>{len(matrix.cells)} builder(s), "
        f"{len(matrix.unmatched)} unmatched.</p>"
        "<table id='builders'><tr><th>builder</th><th>buildout</th><th>workers</th>"
        "<th>properties</th></tr>" + "".join(rows) + "</table>"
        "<h2>Unmatched</h2><table id='unmatched'><tr><th>buildout</th><th>cell</th>"
        "<th>reason</th></tr>" + "".join(missing) + "</table></div></body></html>"
    )


class MatrixPage:
    """A WSGI application serving one pre-rendered page; it is replaced at each reconfig."""

    def __init__(self, matrix: Matrix):
        self.body = render_html(matrix).encode()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"read-only"]
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
