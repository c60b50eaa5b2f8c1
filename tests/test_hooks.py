"""Push hooks on real git and hg repositories: real pushes, real hook runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from anybox_ci.changes.pushhooks import (
    BEGIN,
    END,
    HG_HOOK_KEY,
    install_hooks,
    install_hooks_main,
    notify_push_command,
    notify_push_main,
)
from anybox_ci.changes.spool import Spool
from tests.test_mirrors import AUTHOR, ENV, TOOL, commit, make_repo, run
from tests.test_notify import Recorder

HOSTILE_URL = "ssh://git.example.com/erp.git?$(touch pwned)`touch pwned2`';touch pwned3"


def spooled(spool_dir: Path) -> list[tuple[str, str, str, tuple[str, ...]]]:
    spool = Spool(spool_dir)
    changes = [Spool.load(p)[1] for p in spool.pending()]
    return [(c.repository, c.branch, c.revision, c.files) for c in changes]


def push(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "-q", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    )


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(bare repository, a working clone of it)."""
    src = make_repo(tmp_path / "seed", "git")
    bare = tmp_path / "hosted" / "erp.git"
    run(tmp_path, "git", "clone", "-q", "--bare", str(src), str(bare))
    work = tmp_path / "work"
    run(tmp_path, "git", "clone", "-q", str(bare), str(work))
    yield bare, work


def test_git_push_spools_every_new_commit_of_every_branch(
    tmp_path: Path, bare: tuple[Path, Path]
) -> None:
    repo, work = bare
    spool_dir = tmp_path / "spool"
    hook = install_hooks(repo, "git", notify_push_command(repository=HOSTILE_URL, spool=spool_dir))
    assert hook == repo / "hooks" / "post-receive" and os.access(hook, os.X_OK)

    rev1 = commit(work, "git", {"lib/a.py": "1"}, "one")
    rev2 = commit(work, "git", {"b c.txt": "2"}, "two")
    run(work, "git", "checkout", "-q", "-b", "feature")
    rev3 = commit(work, "git", {"f": "3"}, "three")
    run(work, "git", "tag", "v1")
    result = push(work, "origin", "main", "feature", "v1")
    assert "anybox-ci: 3 changes, 3 spooled, 0 delivered, 3 still spooled" in result.stderr
    assert spooled(spool_dir) == [
        (HOSTILE_URL, "main", rev1, ("lib/a.py",)),
        (HOSTILE_URL, "main", rev2, ("b c.txt",)),
        (HOSTILE_URL, "feature", rev3, ("f",)),
    ]
    change = Spool.load(Spool(spool_dir).pending()[0])[1]
    assert (change.author, change.comments, change.vcs) == (AUTHOR, "one", "git")
    assert not [p for p in tmp_path.rglob("pwned*")]  # the URL never reached a shell

    push(work, "origin", "--delete", "feature")  # deletions are not changes
    assert len(spooled(spool_dir)) == 3


def test_git_push_of_badly_named_branches_spools_only_the_good_ones(
    tmp_path: Path, bare: tuple[Path, Path]
) -> None:
    repo, work = bare
    spool_dir = tmp_path / "spool"
    install_hooks(repo, "git", notify_push_command(repository="r", spool=spool_dir))
    rev = commit(work, "git", {"a": "1"}, "one")
    result = push(work, "origin", "main", "HEAD:refs/heads/-rf", "HEAD:refs/heads/@")
    assert [(c[1], c[2]) for c in spooled(spool_dir)] == [("main", rev)]
    warnings = [ln for ln in result.stderr.splitlines() if "warning: skipped branch" in ln]
    assert len(warnings) == 2 and "'-rf'" in warnings[0] + warnings[1]


def test_git_hook_delivers_to_the_master_at_push_time(
    tmp_path: Path, bare: tuple[Path, Path]
) -> None:
    repo, work = bare
    rec = Recorder()
    try:
        secret = tmp_path / "secret"
        secret.write_text("pw")
        command = notify_push_command(
            repository="https://forge/erp.git", spool=tmp_path / "spool", notify_url=rec.url,
            user="hook", secret_file=secret, project="erp", codebase="erp",
        )  # fmt: skip
        install_hooks(repo, "git", command)
        rev = commit(work, "git", {"x": "1"}, "x")
        result = push(work, "origin", "main")
        assert "1 delivered, 0 still spooled" in result.stderr
        assert [r["form"]["revision"] for r in rec.requests] == [rev]
        assert "project" not in rec.requests[0]["form"]
    finally:
        rec.close()
    assert "pw" not in (repo / "hooks" / "post-receive").read_text().replace("push", "")


def test_git_hook_refresh_is_idempotent_and_keeps_the_users_hook(
    tmp_path: Path, bare: tuple[Path, Path]
) -> None:
    repo, work = bare
    log = tmp_path / "user-hook.log"
    hook = repo / "hooks" / "post-receive"
    user_part = f'while read old new ref; do echo "$ref" >> {log}; done\n'
    hook.write_text("#!/bin/bash\n" + user_part)
    hook.chmod(0o755)

    command = notify_push_command(repository="https://forge/erp.git", spool=tmp_path / "spool")
    install_hooks(repo, "git", command)
    first = hook.read_text()
    assert first.startswith("#!/bin/bash\n" + BEGIN) and first.endswith(user_part)
    install_hooks(repo, "git", command)
    assert hook.read_text() == first

    other = notify_push_command(repository="https://forge/other.git", spool=tmp_path / "sp2")
    install_hooks(repo, "git", other)
    text = hook.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "other.git" in text and "forge/erp.git" not in text and text.endswith(user_part)

    commit(work, "git", {"y": "1"}, "y")
    push(work, "origin", "main")
    assert log.read_text() == "refs/heads/main\n"  # the user's part still saw the refs
    assert len(spooled(tmp_path / "sp2")) == 1


def test_non_shell_hook_is_left_alone(tmp_path: Path, bare: tuple[Path, Path]) -> None:
    repo, _ = bare
    hook = repo / "hooks" / "post-receive"
    hook.write_text("#!/usr/bin/env python3\nprint('mine')\n")
    with pytest.raises(ValueError, match="not a shell script"):
        install_hooks(repo, "git", notify_push_command(repository="r", spool=tmp_path / "s"))
    assert hook.read_text() == "#!/usr/bin/env python3\nprint('mine')\n"


def test_bad_hook_commands_and_repositories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NUL or line break"):
        install_hooks(tmp_path, "git", ["notify", "--repository", "x\ny"])
    with pytest.raises(ValueError, match="not a git repository"):
        install_hooks(tmp_path, "git", ["notify"])
    with pytest.raises(ValueError, match="not a Mercurial repository"):
        install_hooks(tmp_path, "hg", ["notify"])
    with pytest.raises(ValueError, match="git and hg"):
        install_hooks(tmp_path, "bzr", ["notify"])


def test_hg_push_spools_changes_and_hgrc_refresh_is_idempotent(tmp_path: Path) -> None:
    hosted = make_repo(tmp_path / "hosted", "hg")
    hgrc = hosted / ".hg" / "hgrc"
    hgrc.write_text(
        "[ui]\nusername = Server\n\n[hooks]\nincoming.mine = true\n"
        f"{HG_HOOK_KEY} = old command\n  continued\n\n[web]\npush_ssl = false\n"
    )
    spool_dir = tmp_path / "spool dir's"
    command = notify_push_command(repository=HOSTILE_URL, spool=spool_dir)
    install_hooks(hosted, "hg", command)
    text = hgrc.read_text()
    assert text.count(HG_HOOK_KEY) == 1 and "old command" not in text
    assert "incoming.mine = true" in text and "push_ssl = false" in text
    install_hooks(hosted, "hg", command)
    assert hgrc.read_text() == text

    work = tmp_path / "work"
    run(tmp_path, TOOL["hg"], "clone", "-q", str(hosted), str(work))
    rev1 = commit(work, "hg", {"a": "1"}, "default work")
    run(work, TOOL["hg"], "branch", "-q", "stable")
    rev2 = commit(work, "hg", {"b": "2"}, "stable work")
    out = subprocess.run(
        [TOOL["hg"], "push", "--new-branch"], cwd=work, env=ENV, capture_output=True, text=True
    )
    assert "2 changes, 2 spooled" in out.stdout + out.stderr, out
    assert spooled(spool_dir) == [
        (HOSTILE_URL, "default", rev1, ("a",)),
        (HOSTILE_URL, "stable", rev2, ("b",)),
    ]
    assert not [p for p in tmp_path.rglob("pwned*")]


def test_hgrc_without_hooks_section_gets_one(tmp_path: Path) -> None:
    hosted = make_repo(tmp_path / "hosted", "hg")
    (hosted / ".hg" / "hgrc").write_text("[paths]\ndefault = /elsewhere\n")
    install_hooks(hosted, "hg", ["notify", "--spool", "/s"])
    assert (hosted / ".hg" / "hgrc").read_text() == (
        "[paths]\ndefault = /elsewhere\n\n[hooks]\n"
        f"{HG_HOOK_KEY} = notify --spool /s --vcs hg --repo-path {hosted}\n"
    )


def test_notify_push_reads_post_receive_lines(
    tmp_path: Path, bare: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    repo, work = bare
    old = run(work, "git", "rev-parse", "HEAD")
    new = commit(work, "git", {"z": "1"}, "z")
    push(work, "origin", "main")  # no hook installed: we replay what it would read
    zero = "0" * 40
    lines = (
        f"{old} {new} refs/heads/main\n{zero} {new} refs/tags/v2\n{new} {zero} refs/heads/gone\n"
    )
    monkeypatch.setattr(sys, "stdin", _Stdin(lines))
    argv = ["--vcs", "git", "--repository", "r", "--repo-path", str(repo),
            "--spool", str(tmp_path / "s")]  # fmt: skip
    assert notify_push_main(argv) == 0
    assert [c[2] for c in spooled(tmp_path / "s")] == [new]
    monkeypatch.setattr(sys, "stdin", _Stdin(lines))
    assert notify_push_main(argv) == 0  # the same push again: nothing new is spooled
    assert "1 changes, 0 spooled" in capsys.readouterr().out
    assert notify_push_main(["--vcs", "svn"]) == 2
    assert notify_push_main(argv + ["--notify", "http://127.0.0.1:9/"]) == 0
    out = capsys.readouterr().out
    assert "still spooled (no hook secret" in out  # spooled first, delivered later


def test_install_hooks_cli(tmp_path: Path, bare: tuple[Path, Path]) -> None:
    repo, _ = bare
    argv = ["--vcs", "git", "--repository", "https://forge/erp.git", "--spool",
            str(tmp_path / "s"), str(repo)]  # fmt: skip
    assert install_hooks_main(argv) == 0
    assert install_hooks_main(argv) == 0
    assert (repo / "hooks" / "post-receive").read_text().count(BEGIN) == 1
    assert install_hooks_main(["--vcs", "git", "--repository", "r", "--spool", "s",
                               str(tmp_path)]) == 1  # fmt: skip


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text
