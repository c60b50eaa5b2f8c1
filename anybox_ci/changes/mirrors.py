"""Local mirrors of the watched repositories, and the changes that updating them reveals.

Builds fetch from mirrors on the master machine instead of hammering forges, and the mirror
update is also where new revisions are discovered: the refs seen at the previous update are
kept in a small state file inside each mirror, so the changes are computed against what was
last *reported*, not what was last fetched. A run that dies between fetching and spooling the
changes therefore reports them again next time instead of losing them (the spool and the master
hook drop the duplicates).

Every command is an argv list run without a shell, with prompts disabled, so an unreachable or
password-protected remote fails fast instead of hanging a cron job.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from anybox_ci.core.rewrites import RewriteRule, rewrite_url
from anybox_ci.core.vcs import VCS_NAMES, change_id

LOCK_NAME = ".update-mirrors.lock"
TRASH_NAME = ".trash"
STATE_NAME = "anybox-ci-state.json"
DEFAULT_TIMEOUT = 600.0
MAX_CHANGES_PER_BRANCH = 200
TRASH_MAX_AGE = 7 * 24 * 3600.0
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, try again later

_SEGMENT_BAD_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
_SCP_LIKE = re.compile(r"(?:[^@/:]+@)?(?P<host>[^/:]{2,}):(?P<path>.*)\Z")
_HEX = re.compile(r"[0-9a-f]+\Z")
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*):[^/@]*@")


class MirrorsLocked(RuntimeError):
    """Another process holds a lock that this run needs."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Remote:
    """A repository to mirror, as the manifests name it (the URL is the identity)."""

    vcs: str
    url: str

    def __post_init__(self) -> None:
        if self.vcs not in VCS_NAMES:
            raise ValueError(f"unsupported vcs {self.vcs!r} (expected git, hg or bzr)")
        if (
            not self.url
            or self.url != self.url.strip()
            or self.url.startswith("-")
            or any(ord(c) < 32 or ord(c) == 127 for c in self.url)
        ):
            raise ValueError(f"invalid {self.vcs} URL {self.url!r}")


@dataclass(frozen=True)
class Change:
    """One new revision on one branch, in the shape Buildbot's change hooks expect."""

    repository: str
    branch: str
    revision: str
    author: str
    comments: str
    files: tuple[str, ...]
    when: float
    vcs: str
    project: str = ""
    codebase: str = ""

    @property
    def change_id(self) -> str:
        return change_id(self.vcs, self.repository, self.branch, self.revision)


@dataclass(frozen=True)
class RemoteStatus:
    """Outcome for one remote; ``reason`` is one line, with any URL password masked."""

    remote: Remote
    path: Path
    ok: bool
    action: str  # cloned | updated | recloned | failed
    reason: str = ""
    changes: tuple[Change, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class MirrorReport:
    statuses: tuple[RemoteStatus, ...]

    @property
    def changes(self) -> list[Change]:
        return [c for s in self.statuses for c in s.changes]

    @property
    def ok(self) -> list[RemoteStatus]:
        return [s for s in self.statuses if s.ok]

    @property
    def failed(self) -> list[RemoteStatus]:
        return [s for s in self.statuses if not s.ok]


# --------------------------------------------------------------------------- layout


def redact_url(url: str) -> str:
    """Mask a password embedded in a URL, so that reports and logs never show it."""
    return _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)


def _safe_segment(segment: str) -> str:
    cleaned = _SEGMENT_BAD_CHARS.sub("_", segment)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned
    return cleaned[:80]


def _split_location(url: str) -> tuple[str, list[str], bool]:
    """(host, path segments, canonical) where canonical means the layout alone is unambiguous."""
    if "://" in url:
        parts = urlsplit(url)
        canonical = (
            parts.scheme == "https"
            and "@" not in parts.netloc
            and not parts.query
            and not parts.fragment
            and not url.endswith(("?", "#"))
        )
        host = parts.netloc.rsplit("@", 1)[-1]
        if parts.scheme == "file":
            host = "_local"
        raw_path = parts.path
    elif (scp := _SCP_LIKE.match(url)) and "/" not in url.split(":", 1)[0]:
        host, raw_path, canonical = scp["host"], "/" + scp["path"], False
    else:
        host, raw_path, canonical = "_local", url, False
    if raw_path.startswith("/"):
        raw_path = raw_path[1:]
    raw_segments = raw_path.split("/")
    if any(not s for s in raw_segments):  # "//", trailing "/", empty path
        canonical = False
    segments = [s for s in raw_segments if s]
    safe = [_safe_segment(s) for s in segments]
    safe_host = _safe_segment(host.replace(":", "_")) or "_nohost"
    if safe != segments or safe_host != host or not safe:
        canonical = False
    return safe_host, safe or ["_root"], canonical


def mirror_path(root: Path, remote: Remote) -> Path:
    """Where the mirror of ``remote`` lives: ``root/VCS/HOST/PATH``.

    Plain ``https://host/path`` URLs (ending in ``.git`` for git) map to exactly that path, so
    prefix rewrite rules can point builds at the mirror tree. Any other URL (ssh, scp-like,
    local path, user or port, characters that had to be replaced) gets a short hash of the full
    URL in its last component: different URLs never share a mirror, and the name stays readable.
    """
    host, segments, canonical = _split_location(remote.url)
    leaf = segments[-1]
    if remote.vcs == "git" and not (leaf.endswith(".git") and len(leaf) > 4):
        canonical = False
    if not canonical:
        digest = hashlib.sha256(f"{remote.vcs}\0{remote.url}".encode()).hexdigest()[:10]
        stem = leaf[:-4] if remote.vcs == "git" and leaf.endswith(".git") else leaf
        leaf = f"{stem}-{digest}" + (".git" if remote.vcs == "git" else "")
    return Path(root, remote.vcs, host, *segments[:-1], leaf)


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool | float = False, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``: the kernel drops it if the holder dies.

    ``wait`` is False (fail at once), True (wait forever) or a number of seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        deadline = None if wait is True else time.monotonic() + float(wait or 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait is True else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    raise MirrorsLocked(
                        f"another {what or 'process'} holds {path}"
                        + (" (use --wait to wait for it)" if not wait else "")
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- commands


def find_executable(name: str) -> str:
    """``name`` from PATH, else next to the running Python (hg and brz come from the venv)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return found or name


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """Last meaningful stderr line: what a person needs to see first."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        text = lines[-1] if lines else f"exit status {self.returncode}"
        return redact_url(text)[:300]


@dataclass
class Tools:
    """Executables, environment and timeout shared by every command of a run."""

    timeout: float = DEFAULT_TIMEOUT
    executables: Mapping[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        exes = {"git": "git", "hg": "hg", "bzr": "brz"}
        exes.update(self.executables)
        self.executables = {k: find_executable(v) for k, v in exes.items()}
        env = dict(os.environ)
        env.update(
            GIT_TERMINAL_PROMPT="0",
            HGPLAIN="1",
            HGENCODING="utf-8",
            BRZ_PROGRESS_BAR="none",
        )
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        env.update(self.env)
        self.env = env

    def run(self, vcs: str, args: Sequence[str], *, stdin: bytes | None = None) -> Result:
        argv = [self.executables[vcs], *args]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,  # so a timeout can kill helpers (ssh, git-remote-*) too
            )
        except OSError as exc:
            return Result(127, b"", f"cannot run {argv[0]}: {exc.strerror}")
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Result(-9, b"", f"{vcs} timed out after {self.timeout:g} s")
        return Result(proc.returncode, out, err.decode("utf-8", "replace"))


# --------------------------------------------------------------------------- git


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


def git_changes(
    tools: Tools,
    git_dir: Path,
    repository: str,
    moves: Sequence[tuple[str, str | None, str]],
    known: Sequence[str],
) -> list[Change]:
    """Changes for branch moves ``(branch, old or None, new)``, oldest first per branch.

    An updated branch lists ``old..new``; a new branch lists what no ``known`` head has, so
    that history it shares with other branches is not reported again under its name. A branch that moved without new commits
    (created on, or reset to, a known commit) reports its head, so that it still gets built.
    """
    gd = ["--git-dir", str(git_dir)]
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
                new,
                *(f"^{e}" for e in excludes),
            ],
        )
        if not res.ok:
            raise RuntimeError(f"git rev-list failed: {res.reason()}")
        shas = res.stdout.decode().split() or [new]
        per_branch.append((branch, shas))
    wanted = list(dict.fromkeys(sha for _, shas in per_branch for sha in shas))
    if not wanted:
        return []
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
    lines = "".join(f"{s} {info[s][0][0]}\n" if info[s][0] else f"{s}\n" for s in wanted)
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


# --------------------------------------------------------------------------- hg


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


def _hg_new_revset(old_heads: Sequence[str]) -> str:
    known = "+".join(f"present({n})" for n in old_heads if _HEX.match(n))
    new = f"all() - ::({known})" if known else "all()"
    return f"last(sort({new}, rev), {MAX_CHANGES_PER_BRANCH})"


# --------------------------------------------------------------------------- bzr


_BZR_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([+-]\d{4})")


def _parse_bzr_log(text: str, repository: str) -> list[Change]:
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
            elif section in ("added", "removed", "modified", "renamed", "kind changed"):
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


# --------------------------------------------------------------------------- backends


class _Backend:
    """What differs between VCSes: commands, ref state and how changes are listed."""

    vcs = ""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools

    def run(self, args: Sequence[str]) -> Result:
        return self.tools.run(self.vcs, args)

    def state_file(self, path: Path) -> Path:
        raise NotImplementedError

    def clone(self, url: str, path: Path) -> Result:
        raise NotImplementedError

    def fetch(self, url: str, path: Path) -> Result:
        raise NotImplementedError

    def reachable(self, url: str) -> bool:
        raise NotImplementedError

    def state(self, path: Path) -> dict[str, Any] | None:
        raise NotImplementedError

    def changes(
        self, path: Path, repository: str, old: dict[str, Any], new: dict[str, Any]
    ) -> list[Change]:
        raise NotImplementedError


class _Git(_Backend):
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


class _Hg(_Backend):
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
        return hg_changes(self.tools, path, repository, _hg_new_revset(old.get("heads", [])))


class _Bzr(_Backend):
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
            ["log", "--long", "-v", "--show-ids", "-n1", "--forward", "-r", f"{first}..", str(path)]
        )
        if not res.ok:
            raise RuntimeError(f"brz log failed: {res.reason()}")
        return _parse_bzr_log(res.stdout.decode("utf-8", "replace"), repository)


_BACKENDS: dict[str, type[_Backend]] = {"git": _Git, "hg": _Hg, "bzr": _Bzr}


# --------------------------------------------------------------------------- update


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, path)


def _move_aside(root: Path, path: Path) -> Path:
    trash = root / TRASH_NAME
    trash.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = Path(tempfile.mkdtemp(prefix=f"{stamp}-{path.parent.name}-", dir=trash)) / path.name
    os.replace(path, target)
    return target


def _prune_trash(root: Path, max_age: float = TRASH_MAX_AGE) -> None:
    trash = root / TRASH_NAME
    if not trash.is_dir():
        return
    limit = time.time() - max_age
    for entry in trash.iterdir():
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < limit:
                shutil.rmtree(entry)


def _update_one(
    backend: _Backend,
    remote: Remote,
    root: Path,
    fetch_url: str,
    sink: Callable[[Sequence[Change]], object] | None,
) -> RemoteStatus:
    started = time.monotonic()
    path = mirror_path(root, remote)

    def status(
        ok: bool, action: str, reason: str = "", changes: Sequence[Change] = ()
    ) -> RemoteStatus:
        return RemoteStatus(
            remote, path, ok, action, reason, tuple(changes), time.monotonic() - started
        )

    def clone() -> Result:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.clone-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        res = backend.clone(fetch_url, tmp)
        if res.ok:
            os.replace(tmp, path)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        return res

    def fetch() -> tuple[str, Any]:
        """("ok", new state), ("corrupt", None) when the mirror is to blame, or ("failed", why)."""
        res = backend.fetch(fetch_url, path)
        if res.ok:
            after = backend.state(path)
            return ("ok", after) if after is not None else ("corrupt", None)
        if backend.state(path) is None:
            return "corrupt", None
        if not backend.reachable(fetch_url):
            return "failed", res.reason()
        if backend.fetch(fetch_url, path).ok:  # a reachable source: rule out a transient error
            after = backend.state(path)
            return ("ok", after) if after is not None else ("corrupt", None)
        return "corrupt", None

    def reclone() -> tuple[str, Any]:
        """Set the damaged mirror aside and clone again: ("", state) or (why it failed, None)."""
        _move_aside(root, path)
        res = clone()
        if not res.ok:
            return f"re-clone failed: {res.reason()}", None
        state = backend.state(path)
        return ("", state) if state is not None else ("mirror unreadable after re-cloning", None)

    saved: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    after: Any = None
    if path.exists():
        action = "updated"
        saved = _load_state(backend.state_file(path))
        before = saved if saved is not None else backend.state(path)
        outcome, after = fetch() if before is not None else ("corrupt", None)
        if outcome == "failed":
            return status(False, "failed", after)
        if outcome == "corrupt":
            action = "recloned"
            why, after = reclone()
            if why:
                return status(False, "failed", why)
    else:
        action = "cloned"
        res = clone()
        after = backend.state(path) if res.ok else None
        if after is None:
            return status(False, "failed", f"clone failed: {res.reason()}")
    try:
        changes = backend.changes(path, remote.url, before, after) if before is not None else []
    except RuntimeError as exc:
        if action != "updated":
            return status(False, "failed", str(exc).splitlines()[0])
        # refs read fine but objects are missing or damaged: the mirror is corrupt after all
        assert before is not None  # an update always has a "before" state
        action = "recloned"
        why, after = reclone()
        if why:
            return status(False, "failed", why)
        try:
            changes = backend.changes(path, remote.url, before, after)
        except RuntimeError as exc:
            return status(False, "failed", str(exc).splitlines()[0])
    if sink is not None and changes:
        try:
            sink(changes)
        except Exception as exc:  # not recorded as seen: they come again next run
            why = f"changes not spooled: {type(exc).__name__}: {exc}"
            return status(False, "failed", why.splitlines()[0])
    if after != saved:
        _save_state(backend.state_file(path), after)
    return status(True, action, "", changes)


def update_mirrors(
    remotes: Iterable[Remote],
    root: Path,
    *,
    jobs: int = 4,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[RemoteStatus], None] | None = None,
    wait: bool | float = False,
    rules: Sequence[RewriteRule] = (),
    sink: Callable[[Sequence[Change]], object] | None = None,
    executables: Mapping[str, str] | None = None,
) -> MirrorReport:
    """Clone or update the mirror of every remote, ``jobs`` at a time, under one lock.

    A freshly cloned mirror only records a baseline (no changes), like GitPoller's first poll.
    ``rules`` rewrite the URL actually fetched (the mirror and its changes stay keyed by the
    remote's own URL). ``sink`` receives each remote's changes before its new refs are recorded:
    if it raises, the remote is reported failed and its changes come again next run.
    Raises MirrorsLocked when another run holds ``root/.update-mirrors.lock``.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    unique = list(dict.fromkeys(remotes))
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    tools = Tools(timeout=timeout, executables=executables or {})
    backends = {vcs: cls(tools) for vcs, cls in _BACKENDS.items()}
    results: dict[Remote, RemoteStatus] = {}
    with exclusive_lock(root / LOCK_NAME, wait=wait, what="update-mirrors run"):
        _prune_trash(root)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(
                    _update_one, backends[r.vcs], r, root, rewrite_url(r.url, rules), sink
                ): r
                for r in unique
            }
            for future in as_completed(futures):
                remote = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    result = RemoteStatus(
                        remote,
                        mirror_path(root, remote),
                        False,
                        "failed",
                        f"{type(exc).__name__}: {exc}".splitlines()[0],
                    )
                results[remote] = result
                if progress is not None:
                    progress(result)
    return MirrorReport(tuple(results[r] for r in unique))


# --------------------------------------------------------------------------- remotes file


def load_remotes(path: Path) -> list[Remote]:
    """Read a JSON list of ``{"vcs": ..., "url": ...}`` objects."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{'vcs': ..., 'url': ...}} objects")
    remotes = []
    for index, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or not {"vcs", "url"} <= entry.keys():
            raise ValueError(f"{path}: entry {index}: expected an object with 'vcs' and 'url'")
        try:
            remotes.append(Remote(str(entry["vcs"]), str(entry["url"])))
        except ValueError as exc:
            raise ValueError(f"{path}: entry {index}: {exc}") from None
    return remotes
