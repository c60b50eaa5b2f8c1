"""What a mirror update asks of each VCS; ``git``, ``hg`` and ``bzr`` implement it.

The update logic (clone, fetch, detect corruption, re-clone, report changes) is the same for
every VCS; only commands, the ref state kept between runs and the listing of new revisions
differ. Every URL and path goes after ``--``, so none can be read as an option.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anybox_ci.changes.protocol import Change
from anybox_ci.changes.tools import Result, Tools

STATE_NAME = "anybox-ci-state.json"
MAX_CHANGES_PER_BRANCH = 200


class Backend:
    """Commands, ref state and change listing of one VCS."""

    vcs = ""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools

    def run(self, args: Sequence[str]) -> Result:
        return self.tools.run(self.vcs, args)

    def state_file(self, path: Path) -> Path:
        """Where the refs last reported are kept, inside the mirror."""
        raise NotImplementedError

    def clone(self, url: str, path: Path) -> Result:
        raise NotImplementedError

    def fetch(self, url: str, path: Path) -> Result:
        raise NotImplementedError

    def reachable(self, url: str) -> bool:
        """Whether the source answers: tells an outage from a damaged mirror."""
        raise NotImplementedError

    def state(self, path: Path) -> dict[str, Any] | None:
        """The mirror's refs now, or None when it cannot be read (missing or corrupt)."""
        raise NotImplementedError

    def changes(
        self, path: Path, repository: str, old: dict[str, Any], new: dict[str, Any]
    ) -> list[Change]:
        """What ``new`` has that ``old`` had not; RuntimeError when objects are unreadable."""
        raise NotImplementedError
