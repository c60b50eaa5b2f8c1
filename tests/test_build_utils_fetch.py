"""Tests of build_utils/fetch.py with real git, hg and brz repositories and real archives."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from build_utils import fetch
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
HOSTILE_BRANCH = "$(touch pwned)"
HOSTILE_REVISION = ";rm -rf ~"


def got_revision(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("got_revision=")]
    assert len(lines) == 1, stdout
    return lines[0].removeprefix("got_revision=")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """hg and brz from the project virtualenv, identities for commits, a canary HOME."""
    home = tmp_path_factory.mktemp("home")
    (home / "canary").write_text("still here")
    values = dict(os.environ)
    values.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "HGUSER": "Test <test@example.com>",
            "BRZ_EMAIL": "Test <test@example.com>",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
    )
    return values


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return ship(tmp_path, "fetch")


def sh(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def run(
    script: Path, env: dict[str, str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def assert_nothing_executed(tmp_path: Path, env: dict[str, str]) -> None:
    assert not list(tmp_path.rglob("pwned"))
    assert (Path(env["HOME"]) / "canary").read_text() == "still here"


# --- git -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict[str, str]:
    base = tmp_path_factory.mktemp("git_repo")
    repo = base / "git-src"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo, env)
    revs = {}
    (repo / "f.txt").write_text("one\n")
    sh(["git", "add", "f.txt"], repo, env)
    sh(["git", "commit", "-q", "-m", "one"], repo, env)
    revs["one"] = sh(["git", "rev-parse", "HEAD"], repo, env).strip()
    sh(["git", "tag", "v1"], repo, env)
    sh(["git", "checkout", "-q", "-b", "16.0"], repo, env)
    (repo / "f.txt").write_text("branch\n")
    sh(["git", "commit", "-q", "-am", "on 16.0"], repo, env)
    revs["16.0"] = sh(["git", "rev-parse", "HEAD"], repo, env).strip()
    sh(["git", "checkout", "-q", "main"], repo, env)
    (repo / "f.txt").write_text("two\n")
    sh(["git", "commit", "-q", "-am", "two"], repo, env)
    revs["main"] = sh(["git", "rev-parse", "HEAD"], repo, env).strip()
    revs["url"] = str(repo)
    return revs


def test_git_branch_revision_and_default(
    script: Path, env: dict[str, str], tmp_path: Path, git_repo: dict[str, str]
) -> None:
    dest = tmp_path / "work"
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        str(dest),
        "--branch",
        "main",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert got_revision(proc.stdout) == git_repo["main"]
    assert summary_of(proc.stdout) == f"git main at {git_repo['main'][:12]}"
    assert (dest / "f.txt").read_text() == "two\n"

    # the same working copy moves to another branch
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        str(dest),
        "--branch",
        "16.0",
        cwd=tmp_path,
    )
    assert got_revision(proc.stdout) == git_repo["16.0"]
    assert (dest / "f.txt").read_text() == "branch\n"

    # an exact revision wins over the branch tip
    proc = run(
        script, env, "git", "--url", git_repo["url"], "--dest", str(dest),
        "--branch", "main", "--revision", git_repo["one"], cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert got_revision(proc.stdout) == git_repo["one"]
    assert (dest / "f.txt").read_text() == "one\n"

    # a revision off the branch (here on 16.0), a tag, and a fresh clone of the default branch
    proc = run(
        script, env, "git", "--url", git_repo["url"], "--dest", str(dest),
        "--branch", "main", "--revision", git_repo["16.0"][:10], cwd=tmp_path,
    )  # fmt: skip
    assert got_revision(proc.stdout) == git_repo["16.0"]
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        str(dest),
        "--revision",
        "v1",
        cwd=tmp_path,
    )
    assert got_revision(proc.stdout) == git_repo["one"]
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        str(tmp_path / "fresh"),
        cwd=tmp_path,
    )
    assert got_revision(proc.stdout) == git_repo["main"]


def test_git_clean_option(
    script: Path, env: dict[str, str], tmp_path: Path, git_repo: dict[str, str]
) -> None:
    dest = tmp_path / "work"
    assert (
        run(
            script, env, "git", "--url", git_repo["url"], "--dest", str(dest), cwd=tmp_path
        ).returncode
        == 0
    )
    (dest / "f.txt").write_text("local edit\n")
    (dest / "untracked.pyc").write_text("x")
    run(script, env, "git", "--url", git_repo["url"], "--dest", str(dest), cwd=tmp_path)
    assert (dest / "f.txt").read_text() == "two\n"  # forced checkout
    assert (dest / "untracked.pyc").exists()  # kept without --clean (incremental builds)
    run(script, env, "git", "--url", git_repo["url"], "--dest", str(dest), "--clean", cwd=tmp_path)
    assert not (dest / "untracked.pyc").exists()


def test_git_unknown_revision_and_branch(
    script: Path, env: dict[str, str], tmp_path: Path, git_repo: dict[str, str]
) -> None:
    dest = str(tmp_path / "work")
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        dest,
        "--revision",
        "0" * 40,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("git fetch failed: ")
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        dest,
        "--branch",
        "nope",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("git fetch failed: ")


@pytest.mark.parametrize(
    ("option", "value", "code"),
    [
        ("--branch", HOSTILE_BRANCH, 2),
        ("--revision", HOSTILE_REVISION, 1),
        ("--revision", "$(touch pwned)", 1),
        ("--branch", "--upload-pack=touch pwned", 2),
        ("--revision", "--output=pwned", 2),
    ],
)
def test_git_hostile_values_execute_nothing(
    script: Path,
    env: dict[str, str],
    tmp_path: Path,
    git_repo: dict[str, str],
    option: str,
    value: str,
    code: int,
) -> None:
    # attached (--opt=VALUE) so that argparse hands even a dash-leading value to the script
    proc = run(
        script,
        env,
        "git",
        "--url",
        git_repo["url"],
        "--dest",
        str(tmp_path / "work"),
        f"{option}={value}",
        cwd=tmp_path,
    )
    assert proc.returncode == code, proc.stdout + proc.stderr
    text = summary_of(proc.stdout)
    assert text.startswith("refused: " if code == 2 else "git fetch failed: ")
    assert_nothing_executed(tmp_path, env)


def test_dash_value_as_separate_argument_is_a_usage_error(
    script: Path, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(
        script,
        env,
        "git",
        "--url",
        "u",
        "--dest",
        str(tmp_path / "w"),
        "--revision",
        "--output=pwned",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert summary_of(proc.stdout) == "usage error: argument --revision: expected one argument"
    assert_nothing_executed(tmp_path, env)


def test_url_starting_with_dash_is_refused(
    script: Path, env: dict[str, str], tmp_path: Path
) -> None:
    proc = run(
        script,
        env,
        "git",
        "--url=--upload-pack=touch pwned",
        "--dest",
        str(tmp_path / "w"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert (
        summary_of(proc.stdout)
        == "refused: --url must not start with '-': '--upload-pack=touch pwned'"
    )
    assert_nothing_executed(tmp_path, env)


# --- Mercurial -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hg_repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict[str, str]:
    base = tmp_path_factory.mktemp("hg_repo")
    repo = base / "hg-src"
    sh(["hg", "init", str(repo)], base, env)
    revs = {}

    def commit(text: str, message: str) -> str:
        (repo / "f.txt").write_text(text)
        sh(["hg", "commit", "-q", "-A", "-m", message], repo, env)
        return sh(["hg", "log", "-r", ".", "-T", "{node}"], repo, env)

    revs["one"] = commit("one\n", "one")
    sh(["hg", "branch", "-q", "stable"], repo, env)
    revs["stable"] = commit("stable\n", "on stable")
    sh(["hg", "update", "-q", "default"], repo, env)
    revs["default"] = commit("two\n", "two")
    sh(["hg", "bookmark", "feat-x"], repo, env)
    revs["feat-x"] = commit("feature\n", "feature")
    sh(["hg", "update", "-q", revs["default"]], repo, env)
    revs["url"] = str(repo)
    return revs


def test_hg_branch_bookmark_and_revision(
    script: Path, env: dict[str, str], tmp_path: Path, hg_repo: dict[str, str]
) -> None:
    dest = str(tmp_path / "work")
    for branch, expected, content in (
        ("stable", "stable", "stable\n"),
        ("feat-x", "feat-x", "feature\n"),
        ("default", "feat-x", "feature\n"),  # the bookmark commit is the tip of default
    ):
        proc = run(
            script,
            env,
            "hg",
            "--url",
            hg_repo["url"],
            "--dest",
            dest,
            "--branch",
            branch,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert got_revision(proc.stdout) == hg_repo[expected]
        assert (Path(dest) / "f.txt").read_text() == content
    proc = run(
        script, env, "hg", "--url", hg_repo["url"], "--dest", dest,
        "--branch", "stable", "--revision", hg_repo["one"][:12], cwd=tmp_path,
    )  # fmt: skip
    assert got_revision(proc.stdout) == hg_repo["one"]
    assert summary_of(proc.stdout) == f"hg revision {hg_repo['one'][:12]} (branch stable)"
    assert (Path(dest) / "f.txt").read_text() == "one\n"
    (Path(dest) / "junk.pyc").write_text("x")
    proc = run(script, env, "hg", "--url", hg_repo["url"], "--dest", dest, "--clean", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert got_revision(proc.stdout) == hg_repo["feat-x"]
    assert not (Path(dest) / "junk.pyc").exists()


@pytest.mark.parametrize(
    ("option", "value", "code"),
    [
        ("--branch", HOSTILE_BRANCH, 1),
        ("--revision", HOSTILE_REVISION, 1),
        ("--revision", "all()", 1),  # a revset is not a revision
        ("--revision", "--config=hooks.update=touch pwned", 2),
    ],
)
def test_hg_hostile_values_execute_nothing(
    script: Path,
    env: dict[str, str],
    tmp_path: Path,
    hg_repo: dict[str, str],
    option: str,
    value: str,
    code: int,
) -> None:
    proc = run(
        script,
        env,
        "hg",
        "--url",
        hg_repo["url"],
        "--dest",
        str(tmp_path / "work"),
        f"{option}={value}",
        cwd=tmp_path,
    )
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert summary_of(proc.stdout).startswith("refused: " if code == 2 else "hg fetch failed: ")
    assert_nothing_executed(tmp_path, env)


def test_hg_literal_quoting() -> None:
    assert fetch.hg_literal("feat-x") == "'feat-x'"
    assert fetch.hg_literal("it's\\") == "'it\\'s\\\\'"


# --- Bazaar (Breezy) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bzr_repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    base = tmp_path_factory.mktemp("bzr_repo")
    repo = base / "bzr-src"
    sh(["brz", "init", "-q", str(repo)], base, env)
    (repo / "f.txt").write_text("one\n")
    sh(["brz", "add", "-q", "f.txt"], repo, env)
    sh(["brz", "commit", "-q", "-m", "one"], repo, env)
    (repo / "f.txt").write_text("two\n")
    sh(["brz", "commit", "-q", "-m", "two"], repo, env)
    return repo


def bzr_revid(repo: Path, revno: str, env: dict[str, str]) -> str:
    return sh(["brz", "revision-info", "-r", revno, "-d", str(repo)], repo, env).split()[1]


def test_bzr_branch_and_revision(
    script: Path, env: dict[str, str], tmp_path: Path, bzr_repo: Path
) -> None:
    dest = str(tmp_path / "work")
    proc = run(script, env, "bzr", "--url", str(bzr_repo), "--dest", dest, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert got_revision(proc.stdout) == bzr_revid(bzr_repo, "2", env)
    assert "got_revno=2" in proc.stdout.splitlines()
    assert (Path(dest) / "f.txt").read_text() == "two\n"
    proc = run(
        script, env, "bzr", "--url", str(bzr_repo), "--dest", dest, "--revision", "1", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert got_revision(proc.stdout) == bzr_revid(bzr_repo, "1", env)
    assert (Path(dest) / "f.txt").read_text() == "one\n"
    assert summary_of(proc.stdout) == f"bzr revno 1 ({bzr_revid(bzr_repo, '1', env)})"


def test_bzr_checkout(script: Path, env: dict[str, str], tmp_path: Path, bzr_repo: Path) -> None:
    dest = tmp_path / "co"
    dest.mkdir()  # Buildbot creates the build directory beforehand
    proc = run(
        script,
        env,
        "bzr",
        "--url",
        str(bzr_repo),
        "--dest",
        str(dest),
        "--checkout",
        "--revision",
        "1",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (dest / "f.txt").read_text() == "one\n"
    proc = run(
        script, env, "bzr", "--url", str(bzr_repo), "--dest", str(dest), "--checkout", cwd=tmp_path
    )
    assert got_revision(proc.stdout) == bzr_revid(bzr_repo, "2", env)


def test_bzr_hostile_revision(
    script: Path, env: dict[str, str], tmp_path: Path, bzr_repo: Path
) -> None:
    for value, code in ((HOSTILE_REVISION, 1), ("$(touch pwned)", 1), ("--help", 2)):
        proc = run(
            script,
            env,
            "bzr",
            "--url",
            str(bzr_repo),
            "--dest",
            str(tmp_path / "w"),
            f"--revision={value}",
            cwd=tmp_path,
        )
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert summary_of(proc.stdout).startswith(
            "refused: " if code == 2 else "bzr fetch failed: "
        )
    assert_nothing_executed(tmp_path, env)


# --- archives --------------------------------------------------------------------------------


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_archive_tar_strips_single_top_dir(
    script: Path, env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    archive = make_tar(
        tmp_path / f"release.{mode[2:]}",
        {"project-1.0/buildout.cfg": b"[buildout]\n", "project-1.0/bin/run.sh": b"#!/bin/sh\n"},
        mode,
    )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "build"
    proc = run(
        script,
        env,
        "archive",
        "--url",
        str(archive),
        "--dest",
        str(dest),
        "--sha256",
        digest,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (dest / "buildout.cfg").read_text() == "[buildout]\n"
    assert os.access(dest / "bin" / "run.sh", os.X_OK)
    assert f"sha256={digest}" in proc.stdout.splitlines()
    assert summary_of(proc.stdout) == f"archive: 2 files into {dest}, sha256 verified"


def test_archive_zip_over_http_and_file_url(
    script: Path, env: dict[str, str], tmp_path: Path, http_root: tuple[str, Path]
) -> None:
    base_url, served = http_root
    with zipfile.ZipFile(served / "two-roots.zip", "w") as archive:
        archive.writestr("a/one.txt", "1")
        archive.writestr("b/two.txt", "2")
    dest = tmp_path / "build"
    proc = run(
        script,
        env,
        "archive",
        "--url",
        f"{base_url}/two-roots.zip",
        "--dest",
        str(dest),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["a", "b"]  # two roots: nothing stripped
    # a second fetch replaces the directory entirely
    make_tar(served / "next.tar.gz", {"top/new.txt": b"new"})
    proc = run(
        script,
        env,
        "archive",
        "--url",
        (served / "next.tar.gz").as_uri(),
        "--dest",
        str(dest),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in dest.iterdir()] == ["new.txt"]


def test_archive_checksum_mismatch(script: Path, env: dict[str, str], tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", {"top/x": b"x"})
    dest = tmp_path / "build"
    proc = run(
        script,
        env,
        "archive",
        "--url",
        str(archive),
        "--dest",
        str(dest),
        "--sha256",
        "0" * 64,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("archive fetch failed: sha256 mismatch")
    assert not dest.exists()


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../evil.txt"),
        tarfile.TarInfo("/tmp/evil.txt"),
        tarfile.TarInfo("top/../../evil.txt"),
    ],
)
def test_archive_refuses_escaping_paths(
    script: Path, env: dict[str, str], tmp_path: Path, member: tarfile.TarInfo
) -> None:
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    dest = tmp_path / "sub" / "build"
    proc = run(script, env, "archive", "--url", str(archive), "--dest", str(dest), cwd=tmp_path)
    assert proc.returncode == 1
    assert "unsafe path in archive" in summary_of(proc.stdout)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not dest.exists()


@pytest.mark.parametrize("target", ["/etc", "../..", "sub/../../x"])
def test_archive_refuses_escaping_links(
    script: Path, env: dict[str, str], tmp_path: Path, target: str
) -> None:
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        link = tarfile.TarInfo("top/link")
        link.type = tarfile.SYMTYPE
        link.linkname = target
        tar.addfile(link)
    proc = run(
        script,
        env,
        "archive",
        "--url",
        str(archive),
        "--dest",
        str(tmp_path / "build"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "unsafe link in archive" in summary_of(proc.stdout)


def test_archive_zip_refuses_escaping_paths(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "evil")
    with pytest.raises(fetch.FetchError, match="unsafe path"):
        fetch.fetch_archive(str(archive), str(tmp_path / "build"))
    assert not list(tmp_path.rglob("evil.txt"))


def test_archive_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(fetch.FetchError, match="not a zip or tar archive"):
        fetch.fetch_archive(str(tmp_path / "plain.txt"), str(tmp_path / "build"))
    with pytest.raises(fetch.UsageError, match="unsupported URL scheme"):
        fetch.fetch_archive("ftp://example.com/x.tar.gz", str(tmp_path / "build"))


def test_redact() -> None:
    assert (
        fetch.redact("https://bob:hunter2@example.com/r.git") == "https://bob:***@example.com/r.git"
    )
    assert fetch.redact("https://example.com/r.git") == "https://example.com/r.git"
    assert fetch.redact("ssh://git@example.com/r.git") == "ssh://git@example.com/r.git"


def test_a_tampered_archive_is_refused_and_leaves_no_earlier_tree(
    script: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A release cell checks the hash its release build recorded: a changed byte fails the
    fetch with one line, and the tree of an earlier build is gone (nothing to test)."""
    archive = make_tar(tmp_path / "release.tar.gz", {"top/buildout.cfg": b"[buildout]\n"})
    released = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "build"
    args = ("archive", "--url", str(archive), "--dest", str(dest))
    good = run(script, env, *args, f"--sha256={released}", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"sha256 verified: {released}" in good.stdout.splitlines()
    assert (dest / "buildout.cfg").exists()
    tampered = bytearray(archive.read_bytes())
    tampered[-1] ^= 0xFF
    archive.write_bytes(bytes(tampered))
    proc = run(script, env, *args, f"--sha256={released}", cwd=tmp_path)
    assert proc.returncode == 1
    got = hashlib.sha256(bytes(tampered)).hexdigest()
    assert summary_of(proc.stdout) == (
        f"archive fetch failed: sha256 mismatch: got {got}, expected {released}; nothing extracted"
    )
    assert not dest.exists()
    assert "sha256 verified" not in proc.stdout


@pytest.mark.parametrize("value", ["", "-x", "abc", "g" * 64])
def test_a_malformed_sha256_is_refused(
    script: Path, env: dict[str, str], tmp_path: Path, value: str
) -> None:
    archive = make_tar(tmp_path / "a.tar.gz", {"top/x": b"x"})
    proc = run(
        script,
        env,
        "archive",
        "--url",
        str(archive),
        "--dest",
        str(tmp_path / "build"),
        f"--sha256={value}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert summary_of(proc.stdout) == "refused: --sha256 must be 64 hexadecimal digits"
    assert not (tmp_path / "build").exists()
