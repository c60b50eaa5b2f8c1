"""``auto-watch``: builds discover the floating sources of a buildout, the master follows.

A build runs ``build_utils/watch.py`` after ``bin/buildout`` and uploads its JSON. When
the discovered set changed, :class:`UpdateWatches` stores it and reconfigures the master,
so schedulers, pollers and ``update-mirrors --master`` watch the new sources without a
person running a reconfig. At configure time the stored files add watches (and the
recipe or mr.developer coordinates needed to pin each source to the build's revision).
A missing or corrupt file is a warning, never an error.

Several masters (multi-master, docs/production.md): the master that ran the build stores the
file in its configurator's folder and reconfigures, and publishes the new set on the message
queue that all masters share (``anybox_ci.watches.changed``, carrying the section and the
file's text). :class:`FollowDiscoveries`, which every master runs, writes the same file into
its own folder (validated again, in case it was not the same folder) and reconfigures, so
every master watches the new sources, whether they share one folder or each have a copy.
A master that was down at that moment keeps its previous file until the next build of that
buildout on any master publishes the set again (every build with auto-watch does, changed
or not, when it differs from the file of the master running it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.process import buildstep
from buildbot.process.results import SUCCESS, WARNINGS
from buildbot.util import service
from twisted.internet import defer
from twisted.python import log as twisted_log
from zope.interface import implementer

from ..core.discovered import Pin, parse_discovered, watch_file

#: the message-queue routing key of a changed discovery set
CHANGED_KEY = ("anybox_ci", "watches", "changed")

#: a buildout section, option or recipe target named by a pin: a plain word, never an
#: option of ``bin/buildout`` (the discovery file is repository content)
_PIN_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}\Z")


def safe_pin(pin: Pin) -> bool:
    """Whether a pin's names can go on the buildout command line."""
    words = [pin.section, pin.name] if pin.kind == "developer" else [pin.section]
    if pin.kind == "recipe" and not (pin.target and not pin.target.startswith("-")):
        return False
    return all(_PIN_WORD.match(word) for word in words) and "\n" not in pin.line + pin.target


@implementer(IRenderable)
class BuildoutCommand:
    """The buildout argv, plus overrides pinning each discovered source to the build's
    revision of its codebase (``section:revisions`` for the Odoo recipe,
    ``sources:NAME`` lines for mr.developer)."""

    def __init__(self, argv: list[Any], pins: Mapping[str, Pin]):
        self.argv = argv
        self.pins = {codebase: pin for codebase, pin in pins.items() if safe_pin(pin)}

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
        store(Path(self.target), text)
        yield log.addStdout("watch set changed: reconfiguring the master(s)\n")
        self.master.mq.produce(
            CHANGED_KEY,
            {"masterid": self.master.masterid, "section": Path(self.target).stem, "text": text},
        )
        self.master.reactor.callLater(0, self.master.reconfig)
        self.descriptionDone = [f"{len(found)} watched, reconfig"]
        return SUCCESS


def store(target: Path, text: str) -> None:
    """Replace a discovery file atomically (a reconfig never reads half of it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


class FollowDiscoveries(service.BuildbotService):
    """Adopt the discovery sets that other masters publish, then reconfigure."""

    name = "anybox-ci-follow-discoveries"

    def checkConfig(self, basedir: str | os.PathLike[str] = ".", **kwargs: Any) -> None:
        pass

    @defer.inlineCallbacks
    def reconfigService(self, basedir: str | os.PathLike[str] = ".", **kwargs: Any) -> Any:
        self.basedir = Path(basedir)
        yield super().reconfigService(**kwargs)

    @defer.inlineCallbacks
    def startService(self) -> Any:
        yield super().startService()
        self._consumer = yield self.master.mq.startConsuming(self._changed, CHANGED_KEY)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        consumer, self._consumer = getattr(self, "_consumer", None), None
        if consumer is not None:
            yield consumer.stopConsuming()
        yield super().stopService()

    def _changed(self, key: tuple[str, ...], message: dict[str, Any]) -> None:
        if message.get("masterid") == self.master.masterid:
            return  # our own build: already stored and reconfiguring
        section, text = message.get("section"), message.get("text")
        try:
            if not isinstance(section, str) or not isinstance(text, str):
                raise ValueError("malformed message")
            if Path(section).name != section or section.startswith(".") or "\x00" in section:
                raise ValueError(f"bad section {section[:100]!r}")  # never a path elsewhere
            parse_discovered(text)
            target = watch_file(self.basedir, section)
        except (ValueError, TypeError) as exc:
            twisted_log.msg(f"anybox-ci: discovery message ignored: {exc}")
            return
        if target.exists() and target.read_text(encoding="utf-8") == text:
            return
        store(target, text)
        twisted_log.msg(f"anybox-ci: [{section}] watch set changed on another master: reconfig")
        self.master.reactor.callLater(0, self.master.reconfig)
