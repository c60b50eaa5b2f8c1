"""The file in which auto-watch keeps the sources that builds discovered, one per buildout.

A build's ``build_utils/watch.py`` dump is stored as ``anybox-ci/watch/SECTION.json`` in the
master directory; loading a configuration reads it back into extra watches and the pins
that fix each source to a build's revision. The content comes from a repository, so it is
untrusted: anything malformed is a warning, never an error, and never reaches a command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .diagnostics import Diagnostics
from .model import Watch
from .schema import AUTO_WATCH
from .vcs import VCS_NAMES, check_url, check_vcs_branch, codebase_name

WATCH_DIR = "anybox-ci/watch"


@dataclass(frozen=True)
class Pin:
    """How to pin one discovered source on the buildout command line."""

    kind: str  # "recipe" or "developer"
    section: str
    target: str = ""
    name: str = ""
    line: str = ""


def watch_file(basedir: Path, buildout: str) -> Path:
    return basedir / WATCH_DIR / f"{buildout}.json"


def parse_discovered(text: str) -> list[tuple[Watch, Pin | None]]:
    """Watches from a watch.py dump; raises ValueError on anything malformed.

    URLs and branches follow the rules of ``core.vcs`` that manifest watches and the
    change hook follow, so a discovered source is watched only if a manifest could say it.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise ValueError("expected an object with a 'sources' list")
    found = []
    for source in data["sources"]:
        if not isinstance(source, dict):
            raise ValueError(f"bad source entry {str(source)[:200]!r}")
        vcs, url, branch = source.get("vcs"), source.get("url"), source.get("branch") or ""
        if vcs not in VCS_NAMES or not isinstance(url, str) or not isinstance(branch, str):
            raise ValueError(f"bad source entry {str(source)[:200]!r}")
        if why := check_url(url):
            raise ValueError(f"bad URL {url[:100]!r}: {why}")
        if why := check_vcs_branch(vcs, branch):
            raise ValueError(f"invalid branch name {branch[:100]!r}: {why}")
        pin = source.get("pin")
        found.append(
            (
                Watch(vcs, url, branch),
                Pin(**{k: str(v) for k, v in pin.items() if k in Pin.__annotations__})
                if isinstance(pin, dict)
                else None,
            )
        )
    return found


def read_discovered(path: Path, diags: Diagnostics, section: str) -> list[tuple[Watch, Pin | None]]:
    if not path.exists():
        return []
    try:
        return parse_discovered(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        diags.warning(
            str(path), 0, section, AUTO_WATCH.name, f"ignoring the discovered sources: {exc}"
        )
        return []


def pins_by_codebase(discovered: list[tuple[Watch, Pin | None]]) -> dict[str, Pin]:
    return {codebase_name(w.url, w.branch): p for w, p in discovered if p is not None}
