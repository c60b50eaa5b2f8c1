"""What the render loop made at the last configuration of a master, to reuse it.

A reconfig runs the whole configurator again, and a master of a thousand buildouts would
rebuild thousands of identical factories and builder configs (most of ``configure()``'s
time) when one section changed. :class:`RenderMemo` keeps, per master folder, each
buildout's factory and each cell's ``BuilderConfig`` with the inputs they were made from,
and gives back the same object when the inputs compare equal.

Only plain configuration objects are reused. Services (schedulers, workers, change
sources, reporters) are never: Buildbot starts and stops those very instances, and
compares a new one with the running one to decide whether to reconfigure it.

Inputs are compared with ``==``; a value without a meaningful ``==`` (a function made
for each configuration) compares by identity, so the memo misses: slower, never stale.
A buildout compares without its manifest line (only diagnostics show it), so that
adding a line to one section does not rebuild every section after it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..core.model import Buildout
from .factory import standalone_files
from .stepset_registry import StepSets

T = TypeVar("T")

_BUILDOUT_FIELDS = tuple(f.name for f in dataclasses.fields(Buildout) if f.name != "line")


def _comparable(value: Any) -> Any:
    """``value`` as it is compared: a buildout without its line, a step-set registry as a
    snapshot of its entries (master.cfg may register new functions into the same one)."""
    if isinstance(value, Buildout):
        return ("Buildout",) + tuple(getattr(value, name) for name in _BUILDOUT_FIELDS)
    if isinstance(value, StepSets):
        return ("StepSets", tuple(value.specs.items()), tuple(value.funcs.items()))
    return value


def input_key(inputs: Mapping[str, Any]) -> tuple[Any, ...]:
    """The comparable form of a call's keyword arguments."""
    return tuple((name, _comparable(value)) for name, value in inputs.items())


class RenderMemo:
    """Objects of the previous configuration of one master folder, and of the current one.

    :meth:`reuse` looks an object up in the previous configuration and records it (or the
    new one) in the current one; :meth:`commit` makes the current one the previous one
    (only after a configuration is rendered whole, so a failed one leaves the memo as
    it was)."""

    def __init__(self, previous: dict[tuple[str, str], tuple[Any, Any]]):
        self._previous = previous
        self._current: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.hits = 0
        self.misses = 0
        #: kind -> [reused, made]
        self.by_kind: dict[str, list[int]] = {}

    def reuse(
        self, kind: str, name: str, key: Any, make: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """The object made last time for (``kind``, ``name``) if ``key`` is equal to its
        key then, else ``make(*args, **kwargs)``."""
        found = self._previous.get((kind, name))
        counts = self.by_kind.setdefault(kind, [0, 0])
        if found is not None and _equal(found[0], key):
            self.hits += 1
            counts[0] += 1
            obj: T = found[1]
        else:
            self.misses += 1
            counts[1] += 1
            obj = make(*args, **kwargs)
        self._current[(kind, name)] = (key, obj)
        return obj

    def changed(self, kind: str, name: str, key: Any) -> bool:
        """Whether (``kind``, ``name``) is new or its ``key`` differs from last time."""
        found = self._previous.get((kind, name))
        self._current[(kind, name)] = (key, None)
        return found is None or not _equal(found[0], key)

    def summary(self, *kinds: str) -> str:
        """``reused 998 of 1000 factory, ...``: what a reconfig kept, for the master's log."""
        parts = []
        for kind in kinds:
            reused, made = self.by_kind.get(kind, [0, 0])
            parts.append(f"{reused} of {reused + made} {kind}")
        return "reused " + ", ".join(parts)

    def commit(self, basedir: Path) -> None:
        _MEMOS.pop(basedir, None)
        _MEMOS[basedir] = self._current
        while len(_MEMOS) > MAX_MASTERS:  # a test run configures many folders
            del _MEMOS[next(iter(_MEMOS))]


class Same:
    """Compares equal to a ``Same`` of the very same object (not an equal one)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def file_signature(path: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Identity of a standalone buildout file and of the local files it extends: a
    factory downloads each of them to the worker."""
    result = []
    for found in standalone_files(path):
        try:
            stat = os.stat(found)
        except OSError:
            result.append((str(found), -1, -1, -1))
            continue
        result.append((str(found), stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(result)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an odd __eq__: not the same, make it again
        return False


#: how many master folders keep a memo (the least recently configured go first)
MAX_MASTERS = 8
#: master folder -> what its last rendered configuration made
_MEMOS: dict[Path, dict[tuple[str, str], tuple[Any, Any]]] = {}


def memo_for(basedir: Path) -> RenderMemo:
    """The memo of a master folder (empty at its first configuration in this process)."""
    return RenderMemo(_MEMOS.get(basedir, {}))


def forget(basedir: Path | None = None) -> None:
    """Drop the memo of one master folder, or of all."""
    if basedir is None:
        _MEMOS.clear()
    else:
        _MEMOS.pop(basedir, None)
