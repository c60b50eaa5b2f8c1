"""Status badges (SVG) for READMEs: one per buildout, aggregating its cells, and one per cell.

Served by the matrix page's application (``badges/NAME.svg``, ``badges/NAME/CELL.svg``), so
they follow the same read permission as the REST API. buildbot-badges (PyPI) was not used:
it has no per-buildout badge, ignores ``authz`` (a private master would show its results to
anyone) and lets the query string override its template settings.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from .matrix_data import LastBuild

#: shields-like colours of each state
COLOURS = {
    "success": "#4c1",
    "warnings": "#dfb317",
    "failure": "#e05d44",
    "exception": "#9b59b6",
    "cancelled": "#9f9f9f",
    "retry": "#007ec6",
    "skipped": "#a4a61d",
    "running": "#007ec6",
    "unknown": "#9f9f9f",
}
#: worst first: the buildout's badge shows the worst of its cells' last results
SEVERITY = ("cancelled", "retry", "exception", "failure", "warnings", "success", "skipped")


def aggregate(builds: Iterable[LastBuild | None]) -> str:
    """The state of a buildout: its worst finished result, "running" when none finished,
    "unknown" when nothing ever built."""
    names = [b.result_name for b in builds if b is not None]
    finished = [n for n in names if n != "running"]
    for name in SEVERITY:
        if name in finished:
            return name
    return "running" if names else "unknown"


def _width(text: str) -> int:
    """About the width of ``text`` in 11px DejaVu Sans / Verdana, plus padding."""
    narrow = sum(1 for ch in text if ch in "iljtf.,:;|!' ()[]1")
    return int(7 * (len(text) - narrow) + 4 * narrow) + 12


def badge_svg(label: str, state: str) -> str:
    """A flat two-part badge: ``label`` on grey, ``state`` on its colour (escaped)."""
    left, right = label[:80], state[:40]
    lw, rw = _width(left), _width(right)
    colour = COLOURS.get(state, COLOURS["unknown"])
    esc = html.escape
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + rw}" height="20" role="img" '
        f'aria-label="{esc(left)}: {esc(right)}"><title>{esc(left)}: {esc(right)}</title>'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{rw}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="14">{esc(left)}</text>'
        f'<text x="{lw + rw / 2:.1f}" y="14">{esc(right)}</text></g></svg>'
    )
