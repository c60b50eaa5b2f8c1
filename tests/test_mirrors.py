"""Mirrors of real git, hg and bzr repositories, and the changes their updates reveal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anybox_ci.changes.layout import Remote, mirror_path
from anybox_ci.changes.locking import MirrorsLocked
from anybox_ci.changes.protocol import Change
from anybox_ci.changes.tools import Tools
from anybox_ci.changes.update import (
    BACKENDS,
    EXIT_LOCKED,
    LOCK_NAME,
    TRASH_NAME,
    update_mirrors,
)
from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.core.rewrites import RewriteRule, parse_rewrite_rules, rewrite_url
from anybox_ci.core.vcs import redact_url

BIN = Path(sys.executable).parent
AUTHOR = "Ada Lovelace <ada@example.com>"
ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="Ada Lovelace",
    GIT_AUTHOR_EMAIL="ada@example.com",
    GIT_COMMITTER_NAME="Ada Lovelace",
    GIT_COMMITTER_EMAIL="ada@example.com",
    HGUSER=AUTHOR,
    HGPLAIN="1",
    BRZ_EMAIL=AUTHOR,
    PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
)
TOOL = {"git": "git", "hg": str(BIN / "hg"), "bzr": str(BIN / "brz")}


def run(cwd: Path, *argv: str) -> str:
    return subprocess.run(
        argv, cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path, vcs: str) -> Path:
    """A repository with one commit of ``README``."""
    path.mkdir(parents=True)
    if vcs == "git":
        run(path, "git", "init", "-q", "-b", "main")
    elif vcs == "hg":
        run(path, TOOL["hg"], "init")
    else:
        run(path, TOOL["bzr"], "init", "-q")
    commit(path, vcs, {"README": "hello\n"}, "initial")
    return path


def commit(repo: Path, vcs: str, files: dict[str, str], message: str) -> str:
    """Write ``files``, commit them, return the new revision id."""
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    if vcs == "git":
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", message)
        return run(repo, "git", "rev-parse", "HEAD")
    if vcs == "hg":
        run(repo, TOOL["hg"], "addremove", "-q")
        run(repo, TOOL["hg"], "commit", "-m", message)
        return run(repo, TOOL["hg"], "log", "-r", ".", "-T", "{node}")
    run(repo, TOOL["bzr"], "add", "-q")
    run(repo, TOOL["bzr"], "commit", "-q", "-m", message)
    return run(repo, TOOL["bzr"], "revision-info").split()[1]


def by_revision(changes: list[Change]) -> dict[str, Change]:
    return {c.revision: c for c in changes}


# --------------------------------------------------------------------------- layout


def test_mirror_path_is_readable_for_plain_https_urls(tmp_path: Path) -> None:
    root = tmp_path / "m"
    assert mirror_path(root, Remote("git", "https://github.com/anybox/erp.git")) == (
        root / "git" / "github.com" / "anybox" / "erp.git"
    )
    assert mirror_path(root, Remote("hg", "https://hg.example.com/a/b")) == (
        root / "hg" / "hg.example.com" / "a" / "b"
    )


def test_mirror_paths_never_collide_and_stay_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "m"
    urls = [
        "https://github.com/anybox/erp.git",
        "https://github.com/anybox/erp",
        "https://github.com/anybox/erp.git/",
        "http://github.com/anybox/erp.git",
        "ssh://git@github.com/anybox/erp.git",
        "git@github.com:anybox/erp.git",
        "https://user@github.com/anybox/erp.git",
        "https://github.com:443/anybox/erp.git",
        "https://GitHub.com/anybox/erp.git",
        "https://github.com/anybox/erp%2Egit",
        "https://github.com/anybox/e%20rp.git",
        "https://github.com/anybox/e+rp.git",
        "https://github.com/anybox/../erp.git",
        "https://github.com/anybox//erp.git",
        "file:///srv/git/erp.git",
        "/srv/git/erp.git",
        "/srv/git/erp",
        "../relative/erp.git",
        "https://github.com/",
    ]
    paths: dict[Path, list[tuple[str, str]]] = {}
    for url in urls:
        for vcs in ("git", "hg"):
            path = mirror_path(root, Remote(vcs, url))
            assert path == mirror_path(root, Remote(vcs, url))  # deterministic
            relative = path.relative_to(root)
            assert relative.parts[0] == vcs
            for part in relative.parts:
                assert re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*", part), (url, part)
                assert len(part) < 100
            paths.setdefault(path, []).append((vcs, url))
    assert all(len(v) == 1 for v in paths.values()), [v for v in paths.values() if len(v) > 1]


def test_remote_refuses_unknown_vcs_and_dangerous_urls() -> None:
    for vcs, url in [("svn", "https://x/y"), ("git", ""), ("git", "-oProxyCommand=x"),
                     ("git", "https://x/y\n"), ("hg", " https://x/y")]:  # fmt: skip
        with pytest.raises(ValueError):
            Remote(vcs, url)


def test_urls_and_paths_come_after_a_double_dash(tmp_path: Path) -> None:
    """Every command of the backends puts its URL or mirror path where no option can be."""
    log = tmp_path / "argv.log"
    fake = tmp_path / "fake-vcs"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\nsys.exit(1)\n"
    )
    fake.chmod(0o755)
    tools = Tools(timeout=30, executables=dict.fromkeys(("git", "hg", "bzr"), str(fake)))
    url, path = "https://forge.example.com/r", tmp_path / "mirror"
    for vcs, cls in BACKENDS.items():
        backend = cls(tools)
        backend.clone(url, path)
        backend.fetch(url, path)
        backend.reachable(url)
        if vcs == "bzr":
            with pytest.raises(RuntimeError):
                backend.changes(path, url, {"revid": "a"}, {"revno": "3", "revid": "b"})
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    checked = 0
    for argv in calls:
        # a URL is always positional; a mirror path too, unless an option (-R, -d) takes it
        where = [argv.index(url)] if url in argv else []
        if str(path) in argv and argv[argv.index(str(path)) - 1] not in ("--git-dir", "-R", "-d"):
            where.append(argv.index(str(path)))
        for index in where:
            assert "--" in argv[:index], argv
            checked += 1
    assert checked == 3 * 4 + 1  # clone (URL, path), fetch, reachable of each; bzr log


def test_redact_url_masks_passwords_only() -> None:
    assert redact_url("https://bob:s3cret@host/x.git") == "https://bob:***@host/x.git"
    assert redact_url("https://bob@host/x.git") == "https://bob@host/x.git"
    assert redact_url("git@host:x.git") == "git@host:x.git"


# --------------------------------------------------------------------------- rewrite rules


def test_rewrite_rules_longest_prefix_wins() -> None:
    rules = parse_rewrite_rules(
        """
        # comments and blank lines are fine
        https://github.com/ -> https://mirror.example.com/github/
        https://github.com/anybox/ -> file:///srv/mirrors/anybox/

        """
    )
    assert rules == [
        RewriteRule("https://github.com/", "https://mirror.example.com/github/"),
        RewriteRule("https://github.com/anybox/", "file:///srv/mirrors/anybox/"),
    ]
    assert rewrite_url("https://github.com/anybox/erp.git", rules) == (
        "file:///srv/mirrors/anybox/erp.git"
    )
    assert rewrite_url("https://github.com/odoo/odoo.git", rules) == (
        "https://mirror.example.com/github/odoo/odoo.git"
    )
    assert rewrite_url("https://gitlab.com/x.git", rules) == "https://gitlab.com/x.git"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "https://a/ -> https://b/\n  just-one-url\n",
            "rules.txt:2: expected 'PREFIX -> REPLACEMENT'",
        ),
        ("-> https://b/", "rules.txt:1: expected"),
        ("https://a/ ->", "rules.txt:1: expected"),
        ("https://a/ -> https://b/ -> https://c/", "rules.txt:1: expected"),
        ("https://a/ x -> https://b/", "rules.txt:1: URLs in rewrite rules cannot contain spaces"),
        ("https://a/ -> https://b/\nhttps://a/ -> https://c/", "already has a rule on line 1"),
    ],
)
def test_bad_rewrite_lines_are_refused_with_their_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rewrite_rules(text, "rules.txt")


def test_rewrite_rules_change_what_is_fetched_not_the_identity(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "real" / "erp.git", "git")
    remote = Remote("git", "https://forge.invalid/team/erp.git")
    rules = [RewriteRule("https://forge.invalid/team/", f"{tmp_path}/real/")]
    root = tmp_path / "mirrors"
    assert update_mirrors([remote], root, rules=rules).statuses[0].ok
    rev = commit(src, "git", {"a": "1"}, "work")
    report = update_mirrors([remote], root, rules=rules)
    assert [(c.repository, c.revision) for c in report.changes] == [(remote.url, rev)]
    assert mirror_path(root, remote) == root / "git" / "forge.invalid" / "team" / "erp.git"


# --------------------------------------------------------------------------- changes


def test_fresh_git_mirror_is_a_baseline_then_new_commits_become_changes(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", "git")
    remote = Remote("git", str(src))
    root = tmp_path / "mirrors"

    first = update_mirrors([remote], root)
    assert [(s.ok, s.action, s.changes) for s in first.statuses] == [(True, "cloned", ())]
    assert (mirror_path(root, remote) / "HEAD").exists()

    before = time.time()
    rev1 = commit(src, "git", {"lib/a.py": "1\n", "docs/with space.txt": "x"}, "add lib\n\nbody")
    rev2 = commit(src, "git", {"lib/a.py": "2\n"}, "change lib")
    run(src, "git", "checkout", "-q", "-b", "feature")
    rev3 = commit(src, "git", {"feature.txt": "f"}, "feature work")
    run(src, "git", "checkout", "-q", "main")

    report = update_mirrors([remote], root)
    assert report.statuses[0].action == "updated"
    assert [(c.branch, c.revision) for c in report.changes] == [
        ("feature", rev3),  # only what the new branch adds to known history
        ("main", rev1),
        ("main", rev2),
    ]
    change = by_revision(report.changes)[rev1]
    assert change == Change(
        repository=str(src),
        branch="main",
        revision=rev1,
        author=AUTHOR,
        comments="add lib\n\nbody",
        files=("docs/with space.txt", "lib/a.py"),
        when=change.when,
        vcs="git",
    )
    assert before - 5 <= change.when <= time.time() + 5
    assert by_revision(report.changes)[rev2].files == ("lib/a.py",)

    assert update_mirrors([remote], root).changes == []  # nothing new, nothing reported


def test_git_branch_created_on_known_commit_and_merge_commits(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", "git")
    remote = Remote("git", str(src))
    root = tmp_path / "mirrors"
    update_mirrors([remote], root)
    head = run(src, "git", "rev-parse", "HEAD")
    run(src, "git", "branch", "release")  # a new branch, no new commit: still worth a build
    run(src, "git", "checkout", "-q", "-b", "topic")
    topic = commit(src, "git", {"t": "t"}, "topic")
    run(src, "git", "checkout", "-q", "main")
    commit(src, "git", {"m": "m"}, "main")
    run(src, "git", "merge", "-q", "--no-edit", "topic")
    merge = run(src, "git", "rev-parse", "HEAD")
    report = update_mirrors([remote], root)
    changes = {(c.branch, c.revision): c for c in report.changes}
    assert ("release", head) in changes
    assert ("topic", topic) in changes
    assert changes[("main", merge)].files == ("t",)  # compared with the first parent


def test_hg_named_branches_become_changes(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", "hg")
    remote = Remote("hg", str(src))
    root = tmp_path / "mirrors"
    assert update_mirrors([remote], root).changes == []
    rev1 = commit(src, "hg", {"a.txt": "1"}, "default work")
    run(src, TOOL["hg"], "branch", "-q", "stable")
    rev2 = commit(src, "hg", {"b.txt": "2"}, "stable work")
    report = update_mirrors([remote], root)
    assert [(c.branch, c.revision, c.files, c.author, c.vcs) for c in report.changes] == [
        ("default", rev1, ("a.txt",), AUTHOR, "hg"),
        ("stable", rev2, ("b.txt",), AUTHOR, "hg"),
    ]
    assert report.changes[0].comments == "default work"
    assert update_mirrors([remote], root).changes == []


def test_bzr_revisions_become_changes(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", "bzr")
    remote = Remote("bzr", str(src))
    root = tmp_path / "mirrors"
    assert update_mirrors([remote], root).changes == []
    rev1 = commit(src, "bzr", {"a.txt": "1"}, "first\nsecond line")
    rev2 = commit(src, "bzr", {"b c.txt": "2", "a.txt": "3"}, "more")
    report = update_mirrors([remote], root)
    assert [(c.revision, c.files, c.author, c.vcs) for c in report.changes] == [
        (rev1, ("a.txt",), AUTHOR, "bzr"),
        (rev2, ("b c.txt", "a.txt"), AUTHOR, "bzr"),
    ]
    assert report.changes[0].comments == "first\nsecond line"
    assert report.changes[0].when > 0
    assert update_mirrors([remote], root).changes == []


def test_changes_come_again_when_the_sink_failed(tmp_path: Path) -> None:
    """Refs are recorded only after the changes were handed over: nothing is lost."""
    src = make_repo(tmp_path / "src", "git")
    remote = Remote("git", str(src))
    root = tmp_path / "mirrors"
    update_mirrors([remote], root)
    rev = commit(src, "git", {"x": "1"}, "x")

    def broken_sink(changes: object) -> None:
        raise OSError("disk full")

    report = update_mirrors([remote], root, sink=broken_sink)
    assert not report.statuses[0].ok
    assert "disk full" in report.statuses[0].reason
    received: list[Change] = []
    report = update_mirrors([remote], root, sink=received.extend)
    assert report.statuses[0].ok and [c.revision for c in received] == [rev]


# --------------------------------------------------------------------------- failures


def test_corrupt_git_mirror_is_set_aside_and_recloned_without_losing_changes(
    tmp_path: Path,
) -> None:
    src = make_repo(tmp_path / "src", "git")
    remote = Remote("git", str(src))
    root = tmp_path / "mirrors"
    update_mirrors([remote], root)
    path = mirror_path(root, remote)

    rev = commit(src, "git", {"a": "1"}, "while the mirror was broken")
    (path / "HEAD").write_text("garbage\n")  # git no longer recognises the repository
    report = update_mirrors([remote], root)
    status = report.statuses[0]
    assert (status.ok, status.action) == (True, "recloned")
    assert [c.revision for c in report.changes] == [rev]
    assert len(list((root / TRASH_NAME).iterdir())) == 1
    assert run(path, "git", "rev-parse", "main") == rev

    rev2 = commit(src, "git", {"b": "2"}, "objects damaged")
    for f in (path / "objects").rglob("*"):  # refs still readable, objects garbage
        if f.is_file() and f.parent.name != "info":
            f.unlink()  # a local clone hard-links objects: never write through to the source
            f.write_bytes(b"garbage")
    report = update_mirrors([remote], root)
    status = report.statuses[0]
    assert (status.ok, status.action) == (True, "recloned"), status.reason
    assert [c.revision for c in report.changes] == [rev2]


def test_corrupt_hg_mirror_is_recloned(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", "hg")
    remote = Remote("hg", str(src))
    root = tmp_path / "mirrors"
    update_mirrors([remote], root)
    rev = commit(src, "hg", {"a": "1"}, "new")
    (mirror_path(root, remote) / ".hg" / "store" / "00changelog.i").write_bytes(b"garbage")
    report = update_mirrors([remote], root)
    assert (report.statuses[0].ok, report.statuses[0].action) == (True, "recloned")
    assert [c.revision for c in report.changes] == [rev]


def test_unreachable_remote_fails_alone_and_keeps_its_mirror(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", "git")
    remote = Remote("git", str(src))
    root = tmp_path / "mirrors"
    update_mirrors([remote], root)
    src.rename(tmp_path / "gone")
    report = update_mirrors([remote], root)
    status = report.statuses[0]
    assert not status.ok and status.action == "failed"
    assert "\n" not in status.reason and status.reason
    assert mirror_path(root, remote).exists()  # an outage is not a corruption
    assert not (root / TRASH_NAME).exists() or not list((root / TRASH_NAME).iterdir())


def _slow_git(tmp_path: Path) -> Path:
    """A git wrapper that logs its start and end, to observe the parallelism."""
    log = tmp_path / "calls.log"
    script = tmp_path / "slow-git"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "start $(date +%s.%N)" >> "{log}"\n'
        "sleep 0.3\n"
        'git "$@"; rc=$?\n'
        f'echo "end $(date +%s.%N)" >> "{log}"\n'
        "exit $rc\n"
    )
    script.chmod(0o755)
    return script


def _max_overlap(log: Path) -> int:
    events = []
    for line in log.read_text().splitlines():
        kind, stamp = line.split()
        events.append((float(stamp), 1 if kind == "start" else -1))
    current = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        current += delta
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("jobs", [1, 3])
def test_fetches_run_in_parallel_with_bounded_concurrency(tmp_path: Path, jobs: int) -> None:
    remotes = [Remote("git", str(make_repo(tmp_path / f"r{i}", "git"))) for i in range(6)]
    slow = _slow_git(tmp_path)
    report = update_mirrors(remotes, tmp_path / "m", jobs=jobs, executables={"git": str(slow)})
    assert all(s.ok for s in report.statuses)
    assert _max_overlap(tmp_path / "calls.log") == jobs


def test_cli_updates_in_parallel_one_unreachable_exits_1_with_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repos = [make_repo(tmp_path / f"repo{i}", "git") for i in range(3)]
    hg_repo = make_repo(tmp_path / "hgrepo", "hg")
    entries = [{"vcs": "git", "url": str(r)} for r in repos]
    entries += [
        {"vcs": "hg", "url": str(hg_repo)},
        {"vcs": "git", "url": "https://bob:hunter2@127.0.0.1:9/nowhere.git"},
    ]
    remotes_file = tmp_path / "remotes.json"
    remotes_file.write_text(json.dumps(entries))
    argv = ["--root", str(tmp_path / "m"), "--remotes-file", str(remotes_file), "--jobs", "4"]

    assert update_mirrors_main(argv) == 1
    out, err = capsys.readouterr()
    assert out.strip() == (
        "update-mirrors: 4 ok, 1 failed, 0 changes, 0 delivered, 0 still spooled"
    )
    assert "FAILED git https://bob:***@127.0.0.1:9/nowhere.git: clone failed:" in err
    assert "hunter2" not in out + err

    commit(repos[1], "git", {"n": "1"}, "new")
    assert update_mirrors_main(argv) == 1
    out, _ = capsys.readouterr()
    assert "4 ok, 1 failed, 1 changes" in out

    remotes_file.write_text(json.dumps(entries[:4]))
    assert update_mirrors_main(argv) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: --root"),
        (["--root", "R", "--remotes-file", "missing.json"], "missing.json: No such file"),
        (["--root", "R", "--remotes-file", "{bad}"], "not valid JSON"),
        (["--root", "R", "--remotes-file", "{ok}", "--jobs", "0"], "--jobs must be at least 1"),
        (["--root", "R", "--remotes-file", "{ok}", "--rewrite-file", "{rules}"], "rules.txt:1:"),
        (["--root", "R", "--remotes-file", "{entry}"], "entry 1: unsupported vcs 'svn'"),
        (["--root", "R", "--remotes-file", "{ok}", "--notify", "ftp://x"], "notify URL must be"),
        (["--root", "R", "--remotes-file", "{ok}", "--notify", "http://m/"], "no hook secret"),
        (["--root", "R", "--remotes-file", "{ok}", "--secret", "s"], "unrecognized arguments"),
    ],
)
def test_cli_bad_arguments_give_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANYBOX_CI_HOOK_SECRET", raising=False)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "ok.json").write_text("[]")
    (tmp_path / "entry.json").write_text('[{"vcs": "svn", "url": "x"}]')
    (tmp_path / "rules.txt").write_text("nonsense\n")
    files = {
        "{bad}": "bad.json",
        "{ok}": "ok.json",
        "{entry}": "entry.json",
        "{rules}": "rules.txt",
    }
    assert update_mirrors_main([files.get(a, a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("update-mirrors: error: ") and message in err


# --------------------------------------------------------------------------- lock


def test_lock_prevents_a_concurrent_second_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "m"
    root.mkdir()
    remotes_file = tmp_path / "remotes.json"
    remotes_file.write_text(
        json.dumps([{"vcs": "git", "url": str(make_repo(tmp_path / "r", "git"))}])
    )
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\n"
         "f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); time.sleep(60)\n",
         str(root / LOCK_NAME)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        argv = ["--root", str(root), "--remotes-file", str(remotes_file)]
        assert update_mirrors_main(argv) == EXIT_LOCKED
        err = capsys.readouterr().err
        assert "another update-mirrors run holds" in err and "--wait" in err
        started = time.monotonic()
        with pytest.raises(MirrorsLocked):
            update_mirrors([], root, wait=0.5)
        assert time.monotonic() - started >= 0.5
        assert not any(p.name != LOCK_NAME for p in root.iterdir())  # nothing was touched
    finally:
        holder.kill()
        holder.wait()
    assert update_mirrors_main(argv + ["--wait"]) == 0
