"""Fetch sources for a build: git, hg, bzr (Breezy) and archives (Python standard library only).

    python3 fetch.py git  --url URL --dest DIR [--branch B] [--revision R] [--clean]
    python3 fetch.py hg   --url URL --dest DIR [--branch B] [--revision R] [--clean]
    python3 fetch.py bzr  --url URL --dest DIR [--revision R] [--checkout]
    python3 fetch.py archive --url URL-or-PATH --dest DIR [--sha256 HEX]

Why this exists: builds must check out exactly the revision that triggered them (``--revision``)
and otherwise the tip of ``--branch`` (for hg a named branch or a bookmark), for sources that
Buildbot's own steps do not cover, in a reusable working copy. VCS runs print
``got_revision=<full id>`` (Buildbot's property name) before the summary line.

Safety: every command is an argv list (no shell). URL, branch and revision values starting
with ``-`` are refused (option injection), values are passed attached to their option
(``--rev=VALUE``) or after ``--``, Mercurial revisions are quoted as revset string literals,
git branches are checked with ``git check-ref-format``, credentials in URLs are masked in what
is printed. Archives refuse absolute member paths, ``..`` components, links whose target is
absolute or contains ``..``, and device files; a single top-level directory is stripped.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]


HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
HEXISH_RE = re.compile(r"^[0-9a-fA-F]{4,40}$")
CREDENTIALS_RE = re.compile(r"(//[^/@:\s]*):[^/@\s]*@")
CHUNK = 1 << 16


class FetchError(RuntimeError):
    """A fetch failed; the message is fit for the summary line."""


class UsageError(FetchError):
    """Bad argument value (exit status 2)."""


def redact(text: str) -> str:
    """Mask the password of ``scheme://user:password@host`` URLs."""
    return CREDENTIALS_RE.sub(r"\1:***@", text)


def check_value(option: str, value: str | None) -> None:
    """Refuse values that a VCS could read as an option, or that hold control characters."""
    if value is None:
        return
    if not value:
        raise UsageError(f"{option} must not be empty")
    if value.startswith("-"):
        raise UsageError(f"{option} must not start with '-': {value!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"{option} contains control characters")


def find_tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise FetchError(f"{' or '.join(names)} not found on PATH")


def run(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    capture: bool = False,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """Run argv (printed with credentials masked); return stdout when ``capture``."""
    print("$ " + redact(shlex.join(argv)), flush=True)
    proc = subprocess.run(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        text=True,
    )
    if capture and proc.stderr:
        sys.stderr.write(redact(proc.stderr))
    if proc.returncode != 0:
        detail = ""
        if capture and proc.stderr.strip():
            detail = ": " + redact(proc.stderr.strip().splitlines()[-1])
        raise FetchError(f"{Path(argv[0]).name} {argv[1]} failed (exit {proc.returncode}){detail}")
    return proc.stdout if capture else ""


def vcs_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


# --- git -------------------------------------------------------------------------------------


def git_fetch(
    url: str, dest: str, branch: str | None = None, revision: str | None = None, clean: bool = False
) -> str:
    """Clone or update ``dest`` to ``revision`` (exactly) or the tip of ``branch``."""
    for option, value in (("--url", url), ("--branch", branch), ("--revision", revision)):
        check_value(option, value)
    git = find_tool("git")
    env = vcs_env(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true")
    work = os.path.abspath(dest)
    if branch is not None:
        try:
            run([git, "check-ref-format", f"refs/heads/{branch}"], env=env, capture=True)
        except FetchError:
            raise UsageError(f"invalid git branch name: {branch!r}") from None
    if not os.path.isdir(os.path.join(work, ".git")):
        os.makedirs(work, exist_ok=True)
        run([git, "init", "-q", work], env=env)
    git_c = [git, "-C", work]

    all_refs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
    if branch is not None:
        run(
            git_c
            + ["fetch", "-q", "--", url, f"+refs/heads/{branch}:refs/remotes/origin/{branch}"],
            env=env,
        )
    elif revision is not None:
        run(git_c + ["fetch", "-q", "--", url, *all_refs], env=env)
    else:
        run(git_c + ["fetch", "-q", "--", url, "HEAD"], env=env)

    if revision is not None:
        sha = git_resolve(git_c, revision, env)
        if sha is None and branch is not None:
            # not on the branch: maybe a tag or a commit of another branch
            run(git_c + ["fetch", "-q", "--", url, *all_refs], env=env)
            sha = git_resolve(git_c, revision, env)
        if sha is None and HEXISH_RE.match(revision):
            # not reachable from any ref: ask the server for the commit itself
            run(git_c + ["fetch", "-q", "--", url, revision], env=env)
            sha = git_resolve(git_c, revision, env)
        if sha is None:
            raise FetchError(f"git revision not found: {revision!r}")
    elif branch is not None:
        sha = git_resolve(git_c, f"refs/remotes/origin/{branch}", env)
    else:
        sha = git_resolve(git_c, "FETCH_HEAD", env)
    if sha is None or not HEX40_RE.match(sha):
        raise FetchError("could not resolve the fetched revision")
    run(git_c + ["checkout", "-q", "--force", "--detach", sha], env=env)
    if clean:
        run(git_c + ["clean", "-q", "-f", "-f", "-d", "-x"], env=env)
    head = run(git_c + ["rev-parse", "HEAD"], env=env, capture=True).strip()
    if head != sha:
        raise FetchError(f"checkout ended on {head}, expected {sha}")
    return sha


def git_resolve(git_c: list[str], rev: str, env: dict[str, str]) -> str | None:
    proc = subprocess.run(
        git_c + ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and HEX40_RE.match(out) else None


# --- Mercurial -------------------------------------------------------------------------------


def hg_literal(symbol: str) -> str:
    """A revset string literal: looked up as one name, never parsed as a revset expression."""
    return "'" + symbol.replace("\\", "\\\\").replace("'", "\\'") + "'"


def hg_fetch(
    url: str, dest: str, branch: str | None = None, revision: str | None = None, clean: bool = False
) -> str:
    """Pull into ``dest`` and update to ``revision`` or the tip of ``branch`` (or bookmark)."""
    for option, value in (("--url", url), ("--branch", branch), ("--revision", revision)):
        check_value(option, value)
    hg = find_tool("hg")
    env = vcs_env(HGPLAIN="1")
    work = os.path.abspath(dest)
    repo = f"--repository={work}"
    if not os.path.isdir(os.path.join(work, ".hg")):
        os.makedirs(work, exist_ok=True)
        run([hg, "init", work], env=env)
    run([hg, "pull", "-q", repo, "--", url], env=env)
    target = revision if revision is not None else (branch or "default")
    try:
        node = run(
            [hg, "log", repo, f"--rev={hg_literal(target)}", "--limit=1", "--template={node}"],
            env=env,
            capture=True,
        ).strip()
    except FetchError:
        kind = "revision" if revision is not None else "branch or bookmark"
        raise FetchError(f"hg {kind} not found: {target!r}") from None
    if not HEX40_RE.match(node):
        raise FetchError(f"hg could not resolve {target!r}")
    run([hg, "update", "-q", repo, "--clean", f"--rev={node}"], env=env)
    if clean:
        run([hg, "--config=extensions.purge=", "purge", repo, "--all"], env=env)
    current = run([hg, "log", repo, "--rev=.", "--template={node}"], env=env, capture=True).strip()
    if current != node:
        raise FetchError(f"update ended on {current}, expected {node}")
    return node


# --- Bazaar (Breezy) -------------------------------------------------------------------------


def bzr_fetch(
    url: str, dest: str, revision: str | None = None, checkout: bool = False
) -> tuple[str, str]:
    """Branch (or checkout) ``url`` into ``dest`` at ``revision``; return (revno, revid)."""
    check_value("--url", url)
    check_value("--revision", revision)
    brz = find_tool("brz", "bzr")
    env = vcs_env()
    work = os.path.abspath(dest)
    rev = [f"--revision={revision}"] if revision is not None else []
    if not os.path.isdir(os.path.join(work, ".bzr")):
        command = "checkout" if checkout else "branch"
        existing = ["--use-existing-dir"] if os.path.isdir(work) and not checkout else []
        run([brz, command, "-q", *existing, *rev, "--", url, work], env=env)
    elif checkout:
        run([brz, "update", "-q", *rev, "--", work], env=env)
    else:
        run([brz, "pull", "-q", "--overwrite", f"--directory={work}", *rev, "--", url], env=env)
    out = run([brz, "revision-info", "--tree", f"--directory={work}"], env=env, capture=True)
    parts = out.split()
    if len(parts) != 2:
        raise FetchError(f"unexpected brz revision-info output: {out.strip()!r}")
    return parts[0], parts[1]


# --- archives --------------------------------------------------------------------------------


def _is_unsafe_path(name: str) -> bool:
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in PurePosixPath(name.replace("\\", "/")).parts


def check_tar_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for member in members:
        if _is_unsafe_path(member.name):
            raise FetchError(f"unsafe path in archive: {member.name!r}")
        if member.isdev() or member.isfifo():
            raise FetchError(f"device or fifo in archive: {member.name!r}")
        if (member.issym() or member.islnk()) and _is_unsafe_path(member.linkname):
            raise FetchError(f"unsafe link in archive: {member.name!r} -> {member.linkname!r}")
    return members


def check_zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    for member in members:
        if _is_unsafe_path(member.filename):
            raise FetchError(f"unsafe path in archive: {member.filename!r}")
    return members


def extract_archive(path: Path, target: Path) -> int:
    """Extract a zip or tar(.gz/.bz2/.xz) safely into ``target``; return the file count."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = check_zip_members(archive)
            for member in members:
                extracted = Path(archive.extract(member, target))
                mode = (member.external_attr >> 16) & 0o777
                if mode and not member.is_dir():
                    extracted.chmod(mode & 0o755 | 0o600)
            return sum(1 for m in members if not m.is_dir())
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as tar:
            tar_members = check_tar_members(tar)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=tar_members, filter="data")
            else:  # Python < 3.11.4: members were checked above
                tar.extractall(target, members=tar_members)
            return sum(1 for t in tar_members if not t.isdir())
    raise FetchError(f"not a zip or tar archive: {path.name}")


def download(source: str, out: IO[bytes]) -> str:
    """Copy a file:// or http(s):// URL, or a local path, into ``out``; return its sha256."""
    digest = hashlib.sha256()
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https", "file"):
        stream: IO[bytes] = urllib.request.urlopen(source, timeout=60)
    elif scheme and len(scheme) > 1:
        raise UsageError(f"unsupported URL scheme: {scheme}")
    else:
        stream = open(source, "rb")  # noqa: SIM115 - closed below
    with stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def fetch_archive(source: str, dest: str, sha256: str | None = None) -> tuple[str, int]:
    """Download, verify and extract into ``dest`` (replaced); return (sha256, file count)."""
    check_value("--url", source)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise UsageError("--sha256 must be 64 hexadecimal digits")
    target = Path(os.path.abspath(dest))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".anybox-ci-archive-") as tmp:
        archive = Path(tmp) / "archive"
        print(f"downloading {redact(source)}", flush=True)
        with open(archive, "wb") as out:
            try:
                digest = download(source, out)
            except OSError as exc:
                raise FetchError(f"download failed: {redact(str(exc))}") from None
        if sha256 is not None and digest != sha256.lower():
            _remove(target)  # no earlier tree may pass for this archive
            raise FetchError(
                f"sha256 mismatch: got {digest}, expected {sha256.lower()}; nothing extracted"
            )
        if sha256 is not None:
            print(f"sha256 verified: {digest}", flush=True)
        extracted = Path(tmp) / "extracted"
        extracted.mkdir()
        count = extract_archive(archive, extracted)
        entries = list(extracted.iterdir())
        root = extracted
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            root = entries[0]
        _remove(target)
        os.replace(root, target)
    return digest, count


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Fetch git/hg/bzr sources or an archive.")
    sub = parser.add_subparsers(dest="vcs", required=True)
    for name in ("git", "hg"):
        p = sub.add_parser(name, help=f"clone/pull a {name} repository")
        p.add_argument("--url", required=True)
        p.add_argument("--dest", required=True)
        p.add_argument("--branch", default=None)
        p.add_argument("--revision", default=None)
        p.add_argument("--clean", action="store_true", help="remove untracked and ignored files")
    p = sub.add_parser("bzr", help="branch/checkout a Bazaar branch with Breezy")
    p.add_argument("--url", required=True)
    p.add_argument("--dest", required=True)
    p.add_argument("--revision", default=None)
    p.add_argument("--checkout", action="store_true", help="bound checkout instead of a branch")
    p = sub.add_parser("archive", help="download and extract a tar/zip archive")
    p.add_argument("--url", required=True, help="file://, http(s):// URL or local path")
    p.add_argument("--dest", required=True)
    p.add_argument("--sha256", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.vcs in ("git", "hg"):
            fetcher = git_fetch if args.vcs == "git" else hg_fetch
            rev = fetcher(args.url, args.dest, args.branch, args.revision, args.clean)
            print(f"got_revision={rev}")
            if args.revision is not None:
                on = f" (branch {args.branch})" if args.branch else ""
                print_summary(f"{args.vcs} revision {rev[:12]}{on}")
            else:
                print_summary(f"{args.vcs} {args.branch or 'default branch'} at {rev[:12]}")
        elif args.vcs == "bzr":
            revno, revid = bzr_fetch(args.url, args.dest, args.revision, args.checkout)
            print(f"got_revno={revno}")
            print(f"got_revision={revid}")
            print_summary(f"bzr revno {revno} ({revid})")
        else:
            digest, count = fetch_archive(args.url, args.dest, args.sha256)
            print(f"sha256={digest}")
            checked = ", sha256 verified" if args.sha256 else ""
            print_summary(f"archive: {count} files into {args.dest}{checked}")
    except UsageError as exc:
        print_summary(f"refused: {exc}")
        return 2
    except FetchError as exc:
        print_summary(f"{args.vcs} fetch failed: {exc}")
        return 1
    except OSError as exc:
        print_summary(f"{args.vcs} fetch failed: {redact(str(exc))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
