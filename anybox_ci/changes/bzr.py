"""Bazaar mirrors through Breezy: ``branch --no-tree``, the tip as state, mainline revisions.

A bzr URL is a branch, so its changes have no branch name.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from anybox_ci.changes.backend import MAX_CHANGES_PER_BRANCH, STATE_NAME, Backend
from anybox_ci.changes.protocol import Change
from anybox_ci.changes.tools import Result

_BZR_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([+-]\d{4})")
_FILE_SECTIONS = ("added", "removed", "modified", "renamed", "kind changed")


def parse_bzr_log(text: str, repository: str) -> list[Change]:
    """Parse ``brz log --long -v --show-ids -n1`` output (the only stable format brz offers)."""
    changes = []
    for block in re.split(r"^-{60}$", text, flags=re.M):
        fields: dict[str, str] = {}
        files: list[str] = []
        message: list[str] = []
        section = ""
        for line in block.splitlines():
            if not line.startswith(" ") and ":" in line:
                key, _, value = line.partition(":")
                section = key
                fields.setdefault(key, value.strip())
            elif section == "message":
                message.append(line[2:])
            elif section in _FILE_SECTIONS:
                name = line.strip().rsplit(None, 1)[0]  # drop the file id
                files.append(name.split(" => ")[-1].rstrip("/*@"))
        if "revision-id" not in fields:
            continue
        when = 0.0
        if stamp := _BZR_TIMESTAMP.search(fields.get("timestamp", "")):
            when = datetime.strptime(" ".join(stamp.groups()), "%Y-%m-%d %H:%M:%S %z").timestamp()
        changes.append(
            Change(
                repository=repository,
                branch="",
                revision=fields["revision-id"],
                author=fields.get("author", fields.get("committer", "")),
                comments="\n".join(message).strip("\n"),
                files=tuple(files),
                when=when,
                vcs="bzr",
            )
        )
    return changes


class BzrBackend(Backend):
    vcs = "bzr"

    def state_file(self, path: Path) -> Path:
        return path / ".bzr" / STATE_NAME

    def clone(self, url: str, path: Path) -> Result:
        return self.run(["branch", "--no-tree", "--quiet", "--", url, str(path)])

    def fetch(self, url: str, path: Path) -> Result:
        return self.run(["pull", "--quiet", "--overwrite", "-d", str(path), "--", url])

    def reachable(self, url: str) -> bool:
        return self.run(["revno", "--", url]).ok

    def state(self, path: Path) -> dict[str, Any] | None:
        res = self.run(["revision-info", "-d", str(path)])
        if not res.ok:
            return None
        revno, _, revid = res.stdout.decode().strip().partition(" ")
        return {"revno": revno, "revid": revid}

    def changes(
        self, path: Path, repository: str, old: dict[str, Any], new: dict[str, Any]
    ) -> list[Change]:
        old_revid, new_revno = old.get("revid"), int(new["revno"])
        if old_revid == new["revid"] or new_revno == 0:
            return []
        first = max(1, new_revno - MAX_CHANGES_PER_BRANCH + 1)
        if old_revid and old_revid != "null:":
            found = self.run(["revision-info", "-d", str(path), "-r", f"revid:{old_revid}"])
            old_revno = found.stdout.decode().split()[0] if found.ok else ""
            # unknown or off-mainline old revision, or a rewind: report the new tip only
            first = max(first, int(old_revno) + 1) if old_revno.isdigit() else new_revno
            first = min(first, new_revno)
        res = self.run(
            [
                "log",
                "--long",
                "-v",
                "--show-ids",
                "-n1",
                "--forward",
                "-r",
                f"{first}..",
                "--",
                str(path),
            ]
        )
        if not res.ok:
            raise RuntimeError(f"brz log failed: {res.reason()}")
        return parse_bzr_log(res.stdout.decode("utf-8", "replace"), repository)
