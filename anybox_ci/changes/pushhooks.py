"""Push hooks for repositories hosted on the master machine: notify at push time, not at poll.

``install_hooks`` puts a small fixed block into a git ``post-receive`` hook, or a
``changegroup.anybox_ci`` entry into an hg repository's ``.hg/hgrc``. Both run
``notify-push``, which turns the pushed refs into changes, spools them and delivers them. The
only data written into shell code are argv elements quoted with ``shlex.quote``; the hook
secret stays in its file. Refreshing is idempotent, and a user's own hook content outside the
marked block is kept (and still receives the pushed refs on stdin).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from anybox_ci.changes.delivery import SECRET_ENV, deliver, read_secret
from anybox_ci.changes.git import git_changes, git_refs
from anybox_ci.changes.hg import hg_changes
from anybox_ci.changes.locking import MirrorsLocked
from anybox_ci.changes.protocol import Change, acceptable
from anybox_ci.changes.spool import Spool
from anybox_ci.changes.tools import Tools

BEGIN = "# >>> anybox-ci notify-push (managed by 'anybox-ci install-hooks'; edits are lost) >>>"
END = "# <<< anybox-ci notify-push <<<"
HG_HOOK_KEY = "changegroup.anybox_ci"
HOOK_VCS = ("git", "hg")
_SH_SHELLS = frozenset({"sh", "bash", "dash", "ksh", "zsh", "busybox"})
_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_ZERO = re.compile(r"0+\Z")
_HG_SECTION = re.compile(r"\[([^\[\]]+)\]")
_HG_ITEM = re.compile(r"([^=\s][^=]*?)\s*=")


def notify_push_command(
    *,
    repository: str,
    spool: str | os.PathLike[str],
    notify_url: str | None = None,
    user: str | None = None,
    secret_file: str | os.PathLike[str] | None = None,
    project: str = "",
    codebase: str = "",
    program: Sequence[str] | None = None,
) -> list[str]:
    """The argv a hook runs; ``program`` defaults to this Python running this module, so the
    hook works whether or not the ``anybox-ci`` script is on the pusher's PATH.

    ``project`` and ``codebase`` are ignored: changes carry neither (the master gives each
    watched repository and branch its codebase, and refuses a change naming another).
    """
    del project, codebase
    argv = list(program or [sys.executable, "-m", "anybox_ci.changes.pushhooks", "notify-push"])
    argv += ["--repository", repository, "--spool", os.fspath(spool)]
    if notify_url:
        argv += ["--notify", notify_url]
    if user:
        argv += ["--user", user]
    if secret_file:
        argv += ["--secret-file", os.fspath(secret_file)]
    return argv


# --------------------------------------------------------------------------- installation


def _check_argv(argv: Sequence[str]) -> None:
    if not argv:
        raise ValueError("the hook command is empty")
    for arg in argv:
        if any(c in arg for c in "\0\r\n"):
            raise ValueError(f"hook command argument {arg!r} contains a NUL or line break")


def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.anybox-ci-{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _git_block(command: Sequence[str]) -> str:
    quoted = shlex.join(command)
    return "\n".join(
        [
            BEGIN,
            "# Runs first, then hands the pushed refs on stdin to the rest of this hook.",
            'if anybox_ci_refs=$(mktemp "${TMPDIR:-/tmp}/anybox-ci-refs.XXXXXX"); then',
            '    cat >"$anybox_ci_refs"',
            f'    {quoted} <"$anybox_ci_refs" ||',
            '        echo "anybox-ci: notify-push failed with status $?" >&2',
            '    exec <"$anybox_ci_refs"',
            '    rm -f "$anybox_ci_refs"',
            "fi",
            END,
        ]
    )


def _without_block(text: str) -> str:
    lines = text.splitlines(keepends=True)
    out, inside = [], False
    for line in lines:
        if line.rstrip("\n") == BEGIN:
            inside = True
        elif inside and line.rstrip("\n") == END:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def _is_sh(shebang: str) -> bool:
    words = shebang[2:].split()
    if not words:
        return False
    program = Path(words[0]).name
    if program == "env" and len(words) > 1:
        program = Path(words[1]).name
    return program in _SH_SHELLS


def _install_git(repo_path: Path, command: Sequence[str]) -> Path:
    res = subprocess.run(
        ["git", "-C", str(repo_path), "rev-parse", "--absolute-git-dir", "--git-path", "hooks"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise ValueError(f"{repo_path}: not a git repository")
    git_dir, hooks = res.stdout.splitlines()[:2]
    hooks_dir = Path(hooks) if Path(hooks).is_absolute() else Path(repo_path, hooks)
    hook = hooks_dir / "post-receive"
    block = _git_block([*command, "--vcs", "git", "--repo-path", git_dir])
    existing = hook.read_text() if hook.exists() else ""
    rest = _without_block(existing)
    if not rest.strip():
        text = f"#!/bin/sh\n{block}\n"
    elif rest.startswith("#!"):
        shebang, _, body = rest.partition("\n")
        if not _is_sh(shebang):
            raise ValueError(
                f"{hook}: existing hook is not a shell script ({shebang}); "
                "call it from a shell post-receive hook, then run install-hooks again"
            )
        text = f"{shebang}\n{block}\n{body}"
    else:
        text = f"#!/bin/sh\n{block}\n{rest}"
    hooks_dir.mkdir(parents=True, exist_ok=True)
    mode = (hook.stat().st_mode & 0o7777 if hook.exists() else 0o755) | 0o111
    if text != existing or not os.access(hook, os.X_OK):
        _write_atomic(hook, text, mode)
    return hook


def _set_hg_hook(text: str, key: str, value: str) -> str:
    """``text`` (an hgrc) with ``[hooks] key = value`` set once, everything else untouched."""
    out: list[str] = []
    section, skipping, inserted = "", False, False
    for line in text.splitlines():
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue  # continuation line of the entry being replaced
        skipping = False
        header = _HG_SECTION.match(line)
        if header:
            section = header[1].strip()
            out.append(line)
            if section == "hooks" and not inserted:
                out.append(f"{key} = {value}")
                inserted = True
            continue
        item = _HG_ITEM.match(line)
        if section == "hooks" and item and item[1] == key:
            skipping = True
            continue
        out.append(line)
    if not inserted:
        if out and out[-1].strip():
            out.append("")
        out += ["[hooks]", f"{key} = {value}"]
    return "\n".join(out) + "\n"


def _install_hg(repo_path: Path, command: Sequence[str]) -> Path:
    dot_hg = repo_path / ".hg"
    if not dot_hg.is_dir():
        raise ValueError(f"{repo_path}: not a Mercurial repository")
    hgrc = dot_hg / "hgrc"
    full = [*command, "--vcs", "hg", "--repo-path", str(repo_path.absolute())]
    existing = hgrc.read_text() if hgrc.exists() else ""
    text = _set_hg_hook(existing, HG_HOOK_KEY, shlex.join(full))  # hg runs it with sh -c
    if text != existing:
        _write_atomic(hgrc, text, hgrc.stat().st_mode & 0o7777 if hgrc.exists() else 0o644)
    return hgrc


def install_hooks(repo_path: str | os.PathLike[str], vcs: str, command_argv: Sequence[str]) -> Path:
    """Install or refresh the push hook of a git or hg repository; returns the file written.

    ``--vcs VCS --repo-path PATH`` are appended to ``command_argv`` (see
    ``notify_push_command``).
    """
    if vcs not in HOOK_VCS:
        raise ValueError(f"push hooks exist for git and hg, not {vcs!r}")
    _check_argv([*command_argv, os.fspath(repo_path)])
    path = Path(repo_path)
    return _install_git(path, command_argv) if vcs == "git" else _install_hg(path, command_argv)


# --------------------------------------------------------------------------- notify-push


def git_push_changes(tools: Tools, git_dir: Path, repository: str, refs_input: str) -> list[Change]:
    """Changes from post-receive's ``OLD NEW REF`` lines (branches only; deletions ignored)."""
    moves: list[tuple[str, str | None, str]] = []
    for line in refs_input.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("refs/heads/"):
            continue
        old, new, ref = parts
        if not (_HEX.match(old) and _HEX.match(new)) or _ZERO.match(new):
            continue
        moves.append((ref.removeprefix("refs/heads/"), None if _ZERO.match(old) else old, new))
    if not moves:
        return []
    pushed = {branch for branch, _, _ in moves}
    heads = git_refs(tools, git_dir) or {}
    known = [sha for branch, sha in heads.items() if branch not in pushed]
    known += [old for _, old, _ in moves if old]
    known += [new for _, old, new in moves if old]  # reported under the existing branch
    return git_changes(tools, git_dir, repository, moves, sorted(set(known)))


def hg_push_changes(
    tools: Tools, repo: Path, repository: str, environ: Mapping[str, str]
) -> list[Change]:
    """Changes of the changesets a changegroup hook announces (``HG_NODE``..``HG_NODE_LAST``)."""
    first = environ.get("HG_NODE", "")
    last = environ.get("HG_NODE_LAST") or first
    if not (_HEX.match(first) and _HEX.match(last)):
        raise ValueError("HG_NODE is not set: run notify-push from an hg changegroup hook")
    return hg_changes(tools, repo, repository, f"{first}:{last}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _ignored_options(parser: argparse.ArgumentParser) -> None:
    """``--project`` and ``--codebase``, still accepted (hooks installed earlier pass them)."""
    parser.add_argument("--project", default="", help=argparse.SUPPRESS)
    parser.add_argument("--codebase", default="", help=argparse.SUPPRESS)


def _warn_ignored(prog: str, args: argparse.Namespace) -> None:
    # The master gives each watched repository and branch its codebase, and changes carry no
    # project: the hook refuses any other, as a copy of a change that would build nothing.
    for option in ("project", "codebase"):
        if getattr(args, option):
            print(f"{prog}: warning: --{option} is ignored", file=sys.stderr)


def notify_push_main(argv: list[str] | None = None) -> int:
    """``anybox-ci notify-push``: run by push hooks; spools first, so nothing is lost."""
    parser = _Parser(
        prog="anybox-ci notify-push", description=notify_push_main.__doc__, allow_abbrev=False
    )
    parser.add_argument("--vcs", required=True, choices=HOOK_VCS)
    parser.add_argument("--repository", required=True, help="URL the manifests watch")
    parser.add_argument("--repo-path", type=Path, default=Path("."))
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--notify", metavar="URL", help="master base URL")
    parser.add_argument("--user", default="anybox-ci")
    parser.add_argument("--secret-file", help=f"else ${SECRET_ENV}")
    _ignored_options(parser)
    parser.add_argument("--timeout", type=float, default=5.0, help="HTTP timeout (seconds)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    prog = parser.prog
    _warn_ignored(prog, args)
    tools = Tools(timeout=120)
    try:
        if args.vcs == "git":
            refs = sys.stdin.read()
            changes = git_push_changes(tools, args.repo_path, args.repository, refs)
        else:
            changes = hg_push_changes(tools, args.repo_path, args.repository, os.environ)
        changes, warnings = acceptable(changes)
        for warning in warnings:
            print(f"{prog}: warning: {warning}", file=sys.stderr)
        spool = Spool(args.spool)
        spooled = spool.append(changes)
    except (OSError, ValueError, RuntimeError, MirrorsLocked) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    delivered, problem = 0, ""
    if args.notify:
        try:
            secret = read_secret(args.secret_file)
            report = deliver(spool, args.notify, args.user, secret, args.timeout)
            delivered, problem = report.delivered, report.error
            if report.rejected:
                problem = f"{report.rejected} refused, kept in {spool.rejected_dir}"
        except (ValueError, MirrorsLocked) as exc:
            problem = str(exc)
    print(
        f"anybox-ci: {len(changes)} changes, {spooled} spooled, {delivered} delivered, "
        f"{len(spool.pending())} still spooled" + (f" ({problem})" if problem else "")
    )
    return 0


def install_hooks_main(argv: list[str] | None = None) -> int:
    """``anybox-ci install-hooks``: install or refresh the push hooks of local repositories."""
    parser = _Parser(
        prog="anybox-ci install-hooks", description=install_hooks_main.__doc__, allow_abbrev=False
    )
    parser.add_argument("--vcs", required=True, choices=HOOK_VCS)
    parser.add_argument("--repository", required=True, help="URL the manifests watch")
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--notify", metavar="URL")
    parser.add_argument("--user")
    parser.add_argument("--secret-file", type=Path)
    _ignored_options(parser)
    parser.add_argument("repo_path", type=Path)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    command = notify_push_command(
        repository=args.repository,
        spool=args.spool.absolute(),
        notify_url=args.notify,
        user=args.user,
        secret_file=args.secret_file.absolute() if args.secret_file else None,
    )
    _warn_ignored(parser.prog, args)
    try:
        written = install_hooks(args.repo_path, args.vcs, command)
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{parser.prog}: {written} is up to date")
    return 0


def _module_main(argv: list[str]) -> int:
    commands = {"notify-push": notify_push_main, "install-hooks": install_hooks_main}
    if not argv or argv[0] not in commands:
        print(
            "usage: python -m anybox_ci.changes.pushhooks {notify-push|install-hooks} ...",
            file=sys.stderr,
        )
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(_module_main(sys.argv[1:]))
