"""git mirrors: ``clone --mirror``, branch heads as state, new commits read in three batches.

``git_refs`` and ``git_changes`` are shared with the post-receive hook, which gets its
branch moves from stdin instead of comparing states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anybox_ci.changes.backend import MAX_CHANGES_PER_BRANCH, STATE_NAME, Backend
from anybox_ci.changes.protocol import Change
from anybox_ci.changes.tools import Result, Tools


def _parse_commit(raw: bytes) -> tuple[list[str], str, float, str]:
    """(parents, author, committer timestamp, message) of a raw commit object."""
    header, _, body = raw.partition(b"\n\n")
    parents: list[str] = []
    author, when, encoding = "", 0.0, "utf-8"
    for line in header.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"parent":
            parents.append(value.decode())
        elif key == b"author":
            author = value.rsplit(b" ", 2)[0].decode("utf-8", "replace")
        elif key == b"committer":
            with contextlib.suppress(ValueError, IndexError):
                when = float(value.rsplit(b" ", 2)[1])
        elif key == b"encoding":
            encoding = value.decode("ascii", "replace")
    try:
        message = body.decode(encoding, "replace").rstrip("\n")
    except LookupError:
        message = body.decode("utf-8", "replace").rstrip("\n")
    return parents, author, when, message


def git_refs(tools: Tools, git_dir: Path) -> dict[str, str] | None:
    """Branch heads, or None when the repository cannot be read (missing or corrupt)."""
    res = tools.run(
        "git",
        [
            "--git-dir",
            str(git_dir),
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "--",
            "refs/heads/",
        ],
    )
    if not res.ok:
        return None
    heads = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        sha, _, ref = line.partition(" ")
        heads[ref.removeprefix("refs/heads/")] = sha
    return heads


def _new_commits(
    tools: Tools, gd: list[str], moves: Sequence[tuple[str, str | None, str]], known: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """(branch, new commits oldest first) per move."""
    per_branch: list[tuple[str, list[str]]] = []
    for branch, old, new in moves:
        excludes = [old] if old else list(known)
        res = tools.run(
            "git",
            [
                *gd,
                "rev-list",
                "--reverse",
                f"--max-count={MAX_CHANGES_PER_BRANCH}",
                "--ignore-missing",
                "--end-of-options",
                new,
                *(f"^{e}" for e in excludes),
            ],
        )
        if not res.ok:
            raise RuntimeError(f"git rev-list failed: {res.reason()}")
        per_branch.append((branch, res.stdout.decode().split() or [new]))
    return per_branch


def _commit_info(
    tools: Tools, gd: list[str], wanted: list[str]
) -> dict[str, tuple[list[str], str, float, str]]:
    res = tools.run(
        "git", [*gd, "cat-file", "--batch"], stdin="".join(f"{s}\n" for s in wanted).encode()
    )
    if not res.ok:
        raise RuntimeError(f"git cat-file failed: {res.reason()}")
    info: dict[str, tuple[list[str], str, float, str]] = {}
    data, pos = res.stdout, 0
    for sha in wanted:
        eol = data.index(b"\n", pos)
        header = data[pos:eol].split()
        if len(header) != 3 or header[1] != b"commit":
            raise RuntimeError(f"git cat-file: {sha} is not a commit")
        size = int(header[2])
        info[sha] = _parse_commit(data[eol + 1 : eol + 1 + size])
        pos = eol + 1 + size + 1
    return info


def _changed_files(
    tools: Tools, gd: list[str], wanted: list[str], first_parent: dict[str, str | None]
) -> dict[str, list[str]]:
    """Files each commit changed, compared with its first parent."""
    lines = "".join(f"{s} {first_parent[s]}\n" if first_parent[s] else f"{s}\n" for s in wanted)
    res = tools.run(
        "git",
        [*gd, "diff-tree", "--stdin", "-r", "--name-only", "-z", "--root", "--always"],
        stdin=lines.encode(),
    )
    if not res.ok:
        raise RuntimeError(f"git diff-tree failed: {res.reason()}")
    files: dict[str, list[str]] = {s: [] for s in wanted}
    expected = iter(wanted)
    current, upcoming = None, next(expected, None)
    for token in res.stdout.split(b"\0"):
        text = token.decode("utf-8", "replace")
        if text and text == upcoming:
            current, upcoming = text, next(expected, None)
        elif text and current is not None:
            files[current].append(text)
    return files


def git_changes(
    tools: Tools,
    git_dir: Path,
    repository: str,
    moves: Sequence[tuple[str, str | None, str]],
    known: Sequence[str],
) -> list[Change]:
    """Changes for branch moves ``(branch, old or None, new)``, oldest first per branch.

    An updated branch lists ``old..new``; a new branch lists what no ``known`` head has, so
    that history it shares with other branches is not reported again under its name. A branch
    that moved without new commits (created on, or reset to, a known commit) reports its head,
    so that it still gets built.
    """
    gd = ["--git-dir", str(git_dir)]
    per_branch = _new_commits(tools, gd, moves, known)
    wanted = list(dict.fromkeys(sha for _, shas in per_branch for sha in shas))
    if not wanted:
        return []
    info = _commit_info(tools, gd, wanted)
    files = _changed_files(tools, gd, wanted, {s: next(iter(info[s][0]), None) for s in wanted})
    return [
        Change(
            repository=repository,
            branch=branch,
            revision=sha,
            author=info[sha][1],
            comments=info[sha][3],
            files=tuple(files[sha]),
            when=info[sha][2],
            vcs="git",
        )
        for branch, shas in per_branch
        for sha in shas
    ]


class GitBackend(Backend):
    vcs = "git"

    def state_file(self, path: Path) -> Path:
        return path / STATE_NAME

    def clone(self, url: str, path: Path) -> Result:
        return self.run(["clone", "--mirror", "--quiet", "--", url, str(path)])

    def fetch(self, url: str, path: Path) -> Result:
        return self.run(
            ["--git-dir", str(path), "fetch", "--prune", "--quiet", "--", url, "+refs/*:refs/*"]
        )

    def reachable(self, url: str) -> bool:
        return self.run(["ls-remote", "--heads", "--", url]).ok

    def state(self, path: Path) -> dict[str, Any] | None:
        heads = git_refs(self.tools, path)
        return None if heads is None else {"heads": heads}

    def changes(
        self, path: Path, repository: str, old: dict[str, Any], new: dict[str, Any]
    ) -> list[Change]:
        before: dict[str, str] = old.get("heads", {})
        after: dict[str, str] = new["heads"]
        moves = [
            (branch, before.get(branch), sha)
            for branch, sha in sorted(after.items())
            if before.get(branch) != sha
        ]
        # a new branch reports only what no other branch has (nor reports now)
        known = set(before.values()) | {sha for b, sha in after.items() if b in before}
        return git_changes(self.tools, path, repository, moves, sorted(known))
