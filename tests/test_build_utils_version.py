"""Continuous release versions (build_utils/version.py) on real git and Mercurial repositories.

The version is the last matching tag reachable from the checked-out revision plus the commits
since it: ``1.4`` on the tag, ``1.4.7`` seven commits later, ``0.0.N`` without a tag.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from build_utils import version
from tests.shipped import ship, summary_of

HG = str(Path(sys.executable).with_name("hg"))
ENV = {
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    "HOME": os.environ.get("HOME", "/tmp"),
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "HGPLAIN": "1",
    "HGRCPATH": os.devnull,
    "HGUSER": "t",
}
HOSTILE_GIT_TAGS = ("--foo", "$(touch${IFS}pwned)", "`touch${IFS}pwned`")
HOSTILE_HG_TAGS = ("--foo", "$(touch pwned)", "; touch pwned")


class Repo:
    """A real repository driven with argv lists; ``commit`` returns the new commit's id."""

    def __init__(self, path: Path, vcs: str) -> None:
        self.path = path
        self.vcs = vcs
        self.count = 0
        path.mkdir()
        if vcs == "git":
            self.run("git", "init", "-q", "-b", "main")
        else:
            self.run(HG, "init")

    def run(self, *argv: str) -> str:
        proc = subprocess.run(
            list(argv), cwd=self.path, env=ENV, capture_output=True, text=True, check=True
        )
        return proc.stdout.strip()

    def commit(self, message: str = "") -> None:
        self.count += 1
        (self.path / f"f{self.count}").write_text(message or str(self.count))
        if self.vcs == "git":
            self.run("git", "add", "-A")
            self.run("git", "commit", "-q", "-m", message or f"c{self.count}")
        else:
            self.run(HG, "commit", "-q", "-A", "-m", message or f"c{self.count}")

    def tag(self, name: str, rev: str | None = None) -> None:
        """Git: a lightweight tag (by update-ref, which takes any valid name). Hg: a local tag,
        which adds no commit, so that both tools count the same history."""
        if self.vcs == "git":
            self.run("git", "update-ref", f"refs/tags/{name}", rev or "HEAD")
        else:
            self.run(HG, "tag", "--local", f"--rev={rev or '.'}", "--", name)

    def annotated_tag(self, name: str) -> None:
        assert self.vcs == "git"
        self.run("git", "tag", "-a", "-m", name, "--", name)

    def branch(self, name: str, start: str | None = None) -> None:
        if self.vcs == "git":
            self.run("git", "checkout", "-q", "-b", name, *([start] if start else []))
        else:
            if start:
                self.run(HG, "update", "-q", f"--rev={start}")
            self.run(HG, "branch", "-q", name)

    def switch(self, name: str) -> None:
        if self.vcs == "git":
            self.run("git", "checkout", "-q", name)
        else:
            self.run(HG, "update", "-q", f"--rev={name}")

    def merge(self, other: str) -> None:
        if self.vcs == "git":
            self.run("git", "merge", "-q", "--no-ff", "-m", f"merge {other}", other)
        else:
            self.run(HG, "merge", "-q", f"--rev={other}")
            self.run(HG, "commit", "-q", "-m", f"merge {other}")

    def release(self, pattern: str = version.DEFAULT_PATTERN) -> version.Release:
        return version.release_of(str(self.path), pattern)


@pytest.fixture(params=["git", "hg"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    return Repo(tmp_path / "repo", request.param)


def test_linear_history(repo: Repo) -> None:
    repo.commit()
    repo.commit()
    repo.tag("1.4")
    assert repo.release() == version.Release("1.4", "1.4", 0)
    for _ in range(7):
        repo.commit()
    assert repo.release() == version.Release("1.4.7", "1.4", 7)
    repo.tag("v2.0")
    assert repo.release().version == "2.0"
    repo.commit()
    assert repo.release().version == "2.0.1"


def test_merge_commits_count(repo: Repo) -> None:
    """Commits since = commits reachable from HEAD and not from the tag, merges included."""
    repo.commit()
    repo.tag("1.0")
    repo.branch("feature")
    repo.commit("feature 1")
    repo.commit("feature 2")
    repo.switch("main" if repo.vcs == "git" else "default")
    repo.commit("main 1")
    repo.merge("feature")
    assert repo.release() == version.Release("1.0.4", "1.0", 4)  # 2 + 1 + the merge
    # a tag on the merged branch is closer: only main's commit and the merge are after it
    repo.tag("1.1", "feature")
    assert repo.release() == version.Release("1.1.2", "1.1", 2)


def test_branches_have_their_own_last_tag(repo: Repo) -> None:
    repo.commit()
    repo.tag("1.9")
    repo.commit()
    repo.tag("2.0")
    for _ in range(3):
        repo.commit()
    assert repo.release().version == "2.0.3"
    repo.branch("maint", "1.9")
    repo.commit("fix")
    assert repo.release().version == "1.9.1"  # lower than main: each branch counts alone


def test_non_matching_tags_are_ignored(repo: Repo) -> None:
    repo.commit()
    repo.tag("1.2")
    repo.commit()
    repo.tag("nightly")
    repo.tag("1.3rc1")
    repo.commit()
    assert repo.release() == version.Release("1.2.2", "1.2", 2)
    custom = r"^release-(?P<version>\d+\.\d+)$"
    repo.tag("release-7.1")
    assert repo.release(custom) == version.Release("7.1", "release-7.1", 0)


def test_ties_go_to_the_highest_version(repo: Repo) -> None:
    repo.commit()
    repo.tag("1.9")
    repo.tag("1.10")
    repo.tag("v1.2")
    repo.commit()
    assert repo.release() == version.Release("1.10.1", "1.10", 1)


def test_no_tag_counts_the_whole_history(repo: Repo) -> None:
    for _ in range(5):
        repo.commit()
    assert repo.release() == version.Release("0.0.5", None, 5)


def test_empty_repository(repo: Repo) -> None:
    assert repo.release() == version.Release("0.0.0", None, 0)


def test_shipped_script_prints_properties(repo: Repo, tmp_path: Path) -> None:
    script = ship(tmp_path, "version")
    repo.commit()
    if repo.vcs == "git":
        repo.annotated_tag("v3.2")
    else:
        repo.tag("v3.2")
    repo.commit()
    proc = subprocess.run(
        [sys.executable, str(script), "--", str(repo.path)],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[:3] == [
        "release_version=3.2.1",
        "release_tag=v3.2",
        "release_distance=1",
    ]
    assert summary_of(proc.stdout) == "version 3.2.1 (tag v3.2 + 1 commit)"


def test_hostile_tag_names_are_data(repo: Repo, tmp_path: Path) -> None:
    script = ship(tmp_path, "version")
    repo.commit()
    hostile = HOSTILE_GIT_TAGS if repo.vcs == "git" else HOSTILE_HG_TAGS
    for name in hostile:
        repo.tag(name)
    repo.commit()
    assert repo.release() == version.Release("0.0.2", None, 2)  # none looks like a version
    catch_all = "^(.*)$"
    proc = subprocess.run(
        [sys.executable, str(script), "--pattern", catch_all, "--", str(repo.path)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tag = proc.stdout.splitlines()[1].removeprefix("release_tag=")
    assert tag in hostile
    assert proc.stdout.splitlines()[0] == f"release_version={max(hostile)}.1"
    assert not (tmp_path / "pwned").exists()
    assert not (repo.path / "pwned").exists()


def test_errors_are_summarised(tmp_path: Path) -> None:
    script = ship(tmp_path, "version")
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), "--", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("version failed: no such directory")
    proc = subprocess.run(
        [sys.executable, str(script), "--pattern", "(", "--", str(plain)],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert proc.returncode == 2
    assert summary_of(proc.stdout).startswith("usage error: --pattern is not a valid")
