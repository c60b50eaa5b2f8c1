"""Continuous release version of a checkout: its last version tag plus the commits since.

    python3 version.py [--vcs auto|git|hg] [--pattern REGEX] [--] [DIR]

Why: every build of a branch gets a distinct, increasing number without anyone tagging it,
and a release tarball can carry the number it was tested under. The rules:

- a tag counts when ``REGEX`` matches it (``re.search``; default ``^v?(\\d+(\\.\\d+)*)$``);
  the version is the group named ``version``, else group 1, else the whole match;
- the tag chosen is the one reachable from the checked-out revision with the fewest commits
  since it (``git rev-list --count TAG..HEAD``, ``hg log -r "only(., TAG)"``); ties go to the
  highest version. Each branch thus counts from its own last tag, and versions may go down
  from one branch to another;
- exactly on the tag the version is the tag's (``1.4``), N commits after it ``1.4.N``; with
  no matching tag it is ``0.0.N``, N being every commit of the history. Mercurial tags live
  in a commit of their own, so ``hg tag 1.4`` then building the tagging commit gives ``1.4.1``.

``git describe --match`` is not used: its globs cannot express the regex and its candidate
search is a heuristic (ties by date); the tag list plus one count per tagged commit is exact.

Prints ``release_version=V``, ``release_tag=T`` (empty without a tag),
``release_distance=N``, then the summary line. Tag names are data only: they are matched in
Python, and git and hg are given commit ids, never names.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]

DEFAULT_PATTERN = r"^v?(\d+(\.\d+)*)$"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1 or SHA-256 ids


class VersionError(RuntimeError):
    """The checkout could not be read; the message fits the summary line."""


@dataclass(frozen=True)
class Tagged:
    """A matching tag: its name, the version it carries and the commits since it."""

    tag: str
    version: str
    distance: int


@dataclass(frozen=True)
class Release:
    version: str
    tag: str | None
    distance: int


def tag_version(pattern: re.Pattern[str], tag: str) -> str | None:
    """The version a tag carries, or None when the pattern does not match it."""
    match = pattern.search(tag)
    if match is None:
        return None
    if "version" in pattern.groupindex:
        value = match.group("version")
    elif pattern.groups:
        value = match.group(1)
    else:
        value = match.group(0)
    return value or None


def version_key(version: str) -> tuple[tuple[int, ...], str]:
    """Numeric order (1.10 > 1.9), then text as a stable tie-breaker."""
    return tuple(int(part) for part in re.findall(r"\d+", version)), version


def choose(candidates: Iterable[Tagged], total: int) -> Release:
    """Fewest commits since the tag wins; then the highest version."""
    best: Tagged | None = None
    for cand in candidates:
        if (
            best is None
            or cand.distance < best.distance
            or (
                cand.distance == best.distance
                and version_key(cand.version) > version_key(best.version)
            )
        ):
            best = cand
    if best is None:
        return Release(f"0.0.{total}", None, total)
    if best.distance == 0:
        return Release(best.version, best.tag, 0)
    return Release(f"{best.version}.{best.distance}", best.tag, best.distance)


def run(argv: Sequence[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit {proc.returncode}"
        raise VersionError(f"{os.path.basename(argv[0])} failed: {detail}")
    return proc.stdout


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise VersionError(f"{name} not found on PATH")
    return path


# --- git -------------------------------------------------------------------------------------


def git_release(repo: str, pattern: re.Pattern[str]) -> Release:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    git = [find_tool("git"), "-C", repo]
    probe = subprocess.run(
        [*git, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if probe.returncode != 0:
        return Release("0.0.0", None, 0)  # no commit yet
    if run([*git, "rev-parse", "--is-shallow-repository"], env).strip() == "true":
        print("warning: shallow clone, commit counts are truncated", file=sys.stderr)
    total = int(run([*git, "rev-list", "--count", "HEAD"], env))
    refs = run(
        [
            *git,
            "for-each-ref",
            "--merged=HEAD",
            "--format=%(objectname) %(*objectname) %(refname)",
            "refs/tags",
        ],
        env,
    )
    by_commit: dict[str, list[tuple[str, str]]] = {}
    for line in refs.splitlines():
        obj, peeled, refname = line.split(" ", 2)
        commit = peeled or obj
        name = refname.removeprefix("refs/tags/")
        version = tag_version(pattern, name)
        if version is not None and COMMIT_RE.match(commit):
            by_commit.setdefault(commit, []).append((name, version))
    candidates = []
    for commit, tags in by_commit.items():
        distance = int(run([*git, "rev-list", "--count", f"{commit}..HEAD"], env))
        candidates += [Tagged(name, version, distance) for name, version in tags]
    return choose(candidates, total)


# --- Mercurial -------------------------------------------------------------------------------

#: one process: the number of ancestors, then one JSON line per tagged ancestor
HG_TEMPLATE = (
    '{count(revset("ancestors(.) - null"))}\n'
    '{revset("ancestors(.) and tag()") % '
    '"{dict(tags, distance=count(revset(\\"only(., %d)\\", rev)))|json}\\n"}'
)


def hg_release(repo: str, pattern: re.Pattern[str]) -> Release:
    env = dict(os.environ, HGPLAIN="1")
    hg = [find_tool("hg"), f"--repository={repo}"]
    first, *lines = run([*hg, "log", "--rev=.", f"--template={HG_TEMPLATE}"], env).splitlines()
    candidates = []
    for line in lines:
        entry = json.loads(line)
        for name in entry["tags"]:
            version = tag_version(pattern, name)
            if version is not None and name != "tip":
                candidates.append(Tagged(name, version, int(entry["distance"])))
    return choose(candidates, int(first))


# --- command line ----------------------------------------------------------------------------


def detect_vcs(repo: str) -> str:
    """The nearest enclosing working copy decides, as git and hg themselves do."""
    path = os.path.abspath(repo)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return "git"
        if os.path.isdir(os.path.join(path, ".hg")):
            return "hg"
        parent = os.path.dirname(path)
        if parent == path:
            raise VersionError(f"not a git or hg checkout: {repo}")
        path = parent


def release_of(repo: str, pattern: str = DEFAULT_PATTERN, vcs: str = "auto") -> Release:
    compiled = re.compile(pattern)
    if not os.path.isdir(repo):
        raise VersionError(f"no such directory: {repo}")
    if vcs == "auto":
        vcs = detect_vcs(repo)
    repo = os.path.abspath(repo)
    return git_release(repo, compiled) if vcs == "git" else hg_release(repo, compiled)


def commits(count: int) -> str:
    return f"{count} commit" if count == 1 else f"{count} commits"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Release version: last version tag + commits since.")
    parser.add_argument("--vcs", choices=("auto", "git", "hg"), default="auto")
    parser.add_argument(
        "--pattern",
        default=DEFAULT_PATTERN,
        help="regex a version tag matches; the version is group 'version' or 1 "
        f"(default {DEFAULT_PATTERN})",
    )
    parser.add_argument("repo", nargs="?", default=".", help="the checkout (default .)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        re.compile(args.pattern)
    except re.error as exc:
        parser.error(f"--pattern is not a valid regular expression: {exc}")
    try:
        release = release_of(args.repo, args.pattern, args.vcs)
    except (VersionError, OSError, ValueError) as exc:
        print_summary(f"version failed: {exc}")
        return 1
    print(f"release_version={release.version}")
    print(f"release_tag={release.tag or ''}")
    print(f"release_distance={release.distance}")
    if release.tag is None:
        print_summary(f"version {release.version} (no matching tag, {commits(release.distance)})")
    elif release.distance == 0:
        print_summary(f"version {release.version} (on tag {release.tag})")
    else:
        print_summary(
            f"version {release.version} (tag {release.tag} + {commits(release.distance)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
