"""Mercurial mirrors: ``clone -U``, the heads as state, one change per new changeset.

``hg_changes`` is shared with the changegroup hook, which names the new changesets itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anybox_ci.changes.backend import MAX_CHANGES_PER_BRANCH, STATE_NAME, Backend
from anybox_ci.changes.protocol import Change
from anybox_ci.changes.tools import Result, Tools

_HEX = re.compile(r"[0-9a-f]+\Z")


def hg_heads(tools: Tools, repo: Path) -> list[str] | None:
    res = tools.run("hg", ["-R", str(repo), "log", "-r", "head()", "-T", "{node}\n"])
    return res.stdout.decode().split() if res.ok else None


def hg_changes(tools: Tools, repo: Path, repository: str, revset: str) -> list[Change]:
    """One change per changeset of ``revset`` (revision order), on its named branch."""
    res = tools.run(
        "hg",
        ["-R", str(repo), "log", "-r", revset, "-T", "json(node,branch,user,date,desc,files)"],
    )
    if not res.ok:
        raise RuntimeError(f"hg log failed: {res.reason()}")
    entries: list[dict[str, Any]] = json.loads(res.stdout or b"[]")
    return [
        Change(
            repository=repository,
            branch=e["branch"],
            revision=e["node"],
            author=e["user"],
            comments=e["desc"],
            files=tuple(e["files"]),
            when=float(e["date"][0]),
            vcs="hg",
        )
        for e in entries
    ]


def _new_revset(old_heads: Sequence[str]) -> str:
    """Changesets that none of ``old_heads`` has, newest ``MAX_CHANGES_PER_BRANCH`` only."""
    known = "+".join(f"present({n})" for n in old_heads if _HEX.match(n))
    new = f"all() - ::({known})" if known else "all()"
    return f"last(sort({new}, rev), {MAX_CHANGES_PER_BRANCH})"


class HgBackend(Backend):
    vcs = "hg"

    def state_file(self, path: Path) -> Path:
        return path / ".hg" / STATE_NAME

    def clone(self, url: str, path: Path) -> Result:
        return self.run(["clone", "-U", "--quiet", "--", url, str(path)])

    def fetch(self, url: str, path: Path) -> Result:
        return self.run(["-R", str(path), "pull", "--quiet", "--", url])

    def reachable(self, url: str) -> bool:
        return self.run(["identify", "--", url]).ok

    def state(self, path: Path) -> dict[str, Any] | None:
        heads = hg_heads(self.tools, path)
        return None if heads is None else {"heads": sorted(heads)}

    def changes(
        self, path: Path, repository: str, old: dict[str, Any], new: dict[str, Any]
    ) -> list[Change]:
        if old.get("heads") == new["heads"]:
            return []
        return hg_changes(self.tools, path, repository, _new_revset(old.get("heads", [])))
