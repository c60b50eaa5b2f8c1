"""``auto-watch``: builds discover the floating sources of a buildout, the master follows.

A build runs ``build_utils/watch.py`` after ``bin/buildout`` and uploads its JSON. When
the discovered set changed, :class:`UpdateWatches` stores it and reconfigures the master,
so schedulers, pollers and ``update-mirrors --master`` watch the new sources without a
person running a reconfig. At configure time the stored files add watches (and the
recipe or mr.developer coordinates needed to pin each source to the build's revision).
A missing or corrupt file is a warning, never an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.process import buildstep
from buildbot.process.results import SUCCESS, WARNINGS
from twisted.internet import defer
from zope.interface import implementer

from ..diagnostics import Diagnostics
from ..model import Watch, check_branch
from .factory import codebase_name

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
    """Watches from a watch.py dump; raises ValueError on anything malformed."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise ValueError("expected an object with a 'sources' list")
    found = []
    for source in data["sources"]:
        vcs, url, branch = source.get("vcs"), source.get("url"), source.get("branch") or ""
        if vcs not in ("git", "hg", "bzr") or not isinstance(url, str) or not url:
            raise ValueError(f"bad source entry {source!r}")
        if branch and check_branch(branch):
            raise ValueError(f"bad branch in {source!r}")
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
            str(path), 0, section, "auto-watch", f"ignoring the discovered sources: {exc}"
        )
        return []


@implementer(IRenderable)
class BuildoutCommand:
    """The buildout argv, plus overrides pinning each discovered source to the build's
    revision of its codebase (``section:revisions`` for the Odoo recipe,
    ``sources:NAME`` lines for mr.developer)."""

    def __init__(self, argv: list[Any], pins: Mapping[str, Pin]):
        self.argv = argv
        self.pins = dict(pins)

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        argv = list((yield props.render(self.argv)))
        revisions: dict[str, list[str]] = {}
        build = props.getBuild()
        for codebase, pin in sorted(self.pins.items()):
            stamp = build.getSourceStamp(codebase) if build else None
            revision = getattr(stamp, "revision", None)
            if not revision:
                continue
            if pin.kind == "recipe":
                revisions.setdefault(pin.section, []).append(f"{pin.target} {revision}")
            elif pin.kind == "developer":
                words = [w for w in pin.line.split() if not w.startswith(("rev=", "revision="))]
                argv.append(f"{pin.section}:{pin.name}={' '.join(words)} rev={revision}")
        for section, lines in revisions.items():
            argv.append(f"{section}:revisions=" + "\n".join(lines))
        return argv


def pins_by_codebase(discovered: list[tuple[Watch, Pin | None]]) -> dict[str, Pin]:
    return {codebase_name(w.url, w.branch): p for w, p in discovered if p is not None}


class UpdateWatches(buildstep.BuildStep):
    """Master-side: adopt a changed discovery file, then reconfigure the master."""

    name = "update_watches"

    def __init__(self, uploaded: str, target: str, **kwargs: Any):
        kwargs.setdefault("flunkOnFailure", False)
        kwargs.setdefault("warnOnFailure", True)
        super().__init__(**kwargs)
        self.uploaded = uploaded
        self.target = target

    @defer.inlineCallbacks
    def run(self) -> Any:
        log = yield self.addLog("watches")
        try:
            text = Path(self.uploaded).read_text(encoding="utf-8")
            found = parse_discovered(text)
        except (OSError, ValueError, TypeError) as exc:
            yield log.addStderr(f"discovery file ignored: {exc}\n")
            self.descriptionDone = ["discovery ignored"]
            return WARNINGS
        old = Path(self.target).read_text(encoding="utf-8") if os.path.exists(self.target) else None
        names = ", ".join(str(w) for w, _ in found) or "none"
        yield log.addStdout(f"floating sources: {names}\n")
        if old == text:
            self.descriptionDone = [f"{len(found)} watched, unchanged"]
            return SUCCESS
        tmp = self.target + ".tmp"
        Path(tmp).write_text(text, encoding="utf-8")
        os.replace(tmp, self.target)
        yield log.addStdout("watch set changed: reconfiguring the master\n")
        self.master.reactor.callLater(0, self.master.reconfig)
        self.descriptionDone = [f"{len(found)} watched, reconfig"]
        return SUCCESS
