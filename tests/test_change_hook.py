"""The ``anybox`` change-hook dialect: unit checks, then a real Buildbot master over HTTP.

The live tests start ``buildbot create-master``/``start`` with a minimal master.cfg that
enables ``{'anybox': {}}`` behind ``change_hook_auth``, post to it with ``delivery.deliver``
(or raw HTTP for malformed input), and read ``/api/v2/changes`` to see exactly what was added.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.changes.delivery import deliver
from anybox_ci.changes.protocol import Change, change_form
from anybox_ci.changes.pushhooks import install_hooks, notify_push_command
from anybox_ci.changes.spool import Spool
from anybox_ci.core.vcs import check_branch as check_branch_name
from anybox_ci.core.vcs import check_revision
from anybox_ci.devtools.localmaster import Master, tool_env
from anybox_ci.www.change_hook import (
    KNOWN_REPOSITORIES,
    AnyboxHookHandler,
    KnownRepositories,
)
from tests.test_mirrors import ENV, commit, make_repo, run

BAD_BRANCHES = [
    "$(touch pwned)", "a..b", "-rf", "x.lock", "a/.hidden", "a b", "x~1", "x^2", "x:y",
    "x?", "x*", "x[1", "x\\y", "x@{u}", "@", "HEAD", "x/", "/x", "a//b", "x.", "tab\there",
    "nl\nhere", "del\x7f", "",
]  # fmt: skip
GOOD_BRANCHES = ["main", "feature/x-1", "release-16.0", "v1.2", "a@b", "ünïcode", "x.lock.d"]


def make_change(repository: str, n: int = 1, branch: str = "main", vcs: str = "git") -> Change:
    return Change(
        repository=repository,
        branch=branch,
        revision=f"{n:040x}",
        author="Ada <ada@example.com>",
        comments=f"change {n}",
        files=("a.py", f"dir/{n}.txt"),
        when=1_700_000_000.0 + n,
        vcs=vcs,
    )


# --------------------------------------------------------------------------- unit


@pytest.mark.parametrize("name", BAD_BRANCHES)
def test_bad_branch_names(name: str) -> None:
    assert check_branch_name(name)


@pytest.mark.parametrize("name", GOOD_BRANCHES)
def test_good_branch_names(name: str) -> None:
    assert check_branch_name(name) is None


def test_branch_rules_agree_with_git(tmp_path: Path) -> None:
    for name in BAD_BRANCHES + GOOD_BRANCHES:
        if "\n" in name or "\x7f" in name or name in ("", "HEAD", "@"):
            continue  # git's own argv/branch handling differs for these
        ok = subprocess.run(
            ["git", "check-ref-format", "--branch", name], capture_output=True
        ).returncode == 0 and not name.startswith("-")
        assert ok == (check_branch_name(name) is None), name


def test_revisions() -> None:
    assert check_revision("git", "a" * 40) is None
    assert check_revision("git", "a" * 64) is None
    assert check_revision("git", "A" * 40)
    assert check_revision("git", "a" * 12)
    assert check_revision("hg", "0123456789ab") is None
    assert check_revision("hg", "g" * 40)
    assert check_revision("bzr", "ada@example.com-20240101120000-abcdef") is None
    assert check_revision("bzr", "with space")
    assert check_revision("bzr", "-x")
    assert check_revision("bzr", "null:")


def test_validate_without_a_master() -> None:
    registry = KnownRepositories()
    registry.set({"https://f/erp.git": ["main"], "https://f/b": [""]})
    handler = AnyboxHookHandler(None, {"registry": registry})
    change = make_change("https://f/erp.git")
    chdict: dict[str, Any] = {**change_form(change.change_id, change)}
    chdict["files"] = json.loads(chdict["files"])
    chdict["properties"] = json.loads(chdict["properties"])
    assert handler.validate(chdict) == (change.change_id, "git")
    bzr = Change(**{**change.__dict__, "repository": "https://f/b", "branch": "",
                    "revision": "ada@x-2024-abc", "vcs": "bzr"})  # fmt: skip
    bzr_dict: dict[str, Any] = {**change_form(bzr.change_id, bzr)}
    bzr_dict["files"], bzr_dict["properties"] = [], json.loads(bzr_dict["properties"])
    assert handler.validate(bzr_dict) == (bzr.change_id, "bzr")
    for key, value, message in [
        ("branch", "dev", "branch 'dev' of repository 'https://f/erp.git' is not watched"),
        ("repository", "https://f/x.git", "unknown repository 'https://f/x.git'"),
        ("revision", "b" * 40, "anybox_ci_change_id does not match"),
        ("files", "a.py", "files must be a JSON list of strings"),
        ("properties", {"evil": 1}, "unexpected properties"),
    ]:
        with pytest.raises(ValueError, match=message):
            handler.validate({**chdict, key: value})


def test_known_repositories_swap_atomically() -> None:
    registry = KnownRepositories()
    assert registry.branches("r") is None
    registry.set({"r": ["main", "dev"]})
    assert registry.branches("r") == frozenset({"main", "dev"})
    registry.set({})
    assert registry.branches("r") is None


def test_custom_class_is_found_without_the_entry_point() -> None:
    from buildbot.www.change_hook import ChangeHookResource

    resource = ChangeHookResource(
        master=None, dialects={"anybox": {"custom_class": AnyboxHookHandler}}
    )
    handler = resource.makeHandler("anybox")
    assert isinstance(handler, AnyboxHookHandler) and handler.registry is KNOWN_REPOSITORIES


# --------------------------------------------------------------------------- live master

USER, SECRET = "anybox-hook", "Hook-s3cret-42"
FORGE = "https://forge.example.com/"
REPOS = {
    "order": ["main"],
    "restart": ["main"],
    "replay": ["main"],
    "concurrent": ["main"],
    "secret": ["main"],
    "bad": ["main", "$(touch pwned)", "a..b"],  # watched, yet still refused
    "branches": ["main"],
    "push": ["main"],
}
MASTER_CFG = """\
import json, os
from buildbot.plugins import schedulers, util, worker
from twisted.cred import strcred
from anybox_ci.www.change_hook import KNOWN_REPOSITORIES

with open(os.path.join(basedir, 'known.json')) as fh:
    KNOWN_REPOSITORIES.set(json.load(fh))

c = BuildmasterConfig = {{}}
c['title'] = 'hook test'
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['buildbotNetUsageData'] = None
# Buildbot wants one worker and one builder; nothing ever builds here.
c['protocols'] = {{'pb': {{'port': 'tcp:{pb_port}:interface=127.0.0.1'}}}}
c['workers'] = [worker.Worker('idle', 'idle-pw')]
c['builders'] = [util.BuilderConfig('idle', workernames=['idle'], factory=util.BuildFactory())]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['idle'])]
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['www'] = {{
    'port': 'tcp:{port}:interface=127.0.0.1',
    'change_hook_dialects': {{'anybox': {{}}}},
    'change_hook_auth': [strcred.makeChecker('file:' + os.path.join(basedir, 'hook.passwd'))],
}}
"""


class HookMaster(Master):
    """A master with the ``anybox`` dialect, and what the tests ask of it."""

    def set_known(self, known: dict[str, list[str]]) -> None:
        (self.basedir / "known.json").write_text(json.dumps(known))

    def changes(self, repository: str) -> list[dict[str, Any]]:
        data = self.get("changes")["changes"]
        return sorted(
            (c for c in data if c["repository"] == repository), key=lambda c: c["changeid"]
        )

    def hook(self, fields: dict[str, str], secret: str = SECRET) -> tuple[int, str]:
        code, body = self.post("change_hook/anybox", fields=fields, auth=(USER, secret))
        return code, body.decode()


def hook_env(base: Path) -> dict[str, str]:
    """The master's environment, with the ``anybox`` webhook entry point visible."""
    env = tool_env()
    if not entry_points(group="buildbot.webhooks", name="anybox"):
        # Until pyproject.toml declares it, a test-only distribution declares the entry point.
        extra = base / "site"
        info = extra / "anybox_ci_hook_test-0.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: anybox-ci-hook-test\nVersion: 0\n"
        )
        (info / "entry_points.txt").write_text(
            "[buildbot.webhooks]\nanybox = anybox_ci.www.change_hook:AnyboxHookHandler\n"
        )
        env["PYTHONPATH"] = str(extra)  # makes the buildbot.webhooks entry point visible
    return env


@contextlib.contextmanager
def hook_master(
    base: Path, known: dict[str, list[str]], extra_config: str = ""
) -> Iterator[HookMaster]:
    """A running master with the ``anybox`` hook behind ``change_hook_auth`` (USER/SECRET)."""
    live = HookMaster(base / "master", env=hook_env(base), extra_config=extra_config)
    live.create(config=MASTER_CFG.format(port=live.www_port, pb_port=live.pb_port))
    (live.basedir / "hook.passwd").write_text(f"{USER}:{SECRET}\n")
    live.set_known(known)
    with live.running():
        yield live


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookMaster]:
    known = {FORGE + name: branches for name, branches in REPOS.items()}
    with hook_master(tmp_path_factory.mktemp("hookmaster"), known) as live:
        yield live


def repo(name: str) -> str:
    return FORGE + name


@pytest.mark.live
def test_changes_are_added_in_order_with_their_details(master: HookMaster, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    sent = [make_change(repo("order"), n) for n in (3, 1, 2)]
    spool.append(sent)
    report = deliver(spool, master.url, USER, SECRET)
    assert (report.delivered, report.remaining, report.error) == (3, 0, "")
    added = master.changes(repo("order"))
    assert [c["revision"] for c in added] == [c.revision for c in sent]
    first = added[0]
    assert (first["branch"], first["author"], first["comments"]) == ("main", sent[0].author,
                                                                     "change 3")  # fmt: skip
    assert sorted(first["files"]) == sorted(sent[0].files)
    assert first["when_timestamp"] == int(sent[0].when)
    assert first["properties"]["anybox_ci_change_id"] == [sent[0].change_id, "Change"]
    assert first["properties"]["anybox_ci_vcs"] == ["git", "Change"]


@pytest.mark.live
def test_master_down_changes_stay_spooled_then_arrive_exactly_once(
    master: HookMaster, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(repo("restart"), n) for n in (1, 2)])
    master.stop()
    try:
        report = deliver(spool, master.url, USER, SECRET, timeout=3)
        assert (report.delivered, report.remaining) == (0, 2)
        assert "cannot reach" in report.error
        spool.append([make_change(repo("restart"), 3)])  # more work while the master is down
    finally:
        master.start()
    assert deliver(spool, master.url, USER, SECRET).delivered == 3
    assert deliver(spool, master.url, USER, SECRET).delivered == 0
    assert [c["revision"] for c in master.changes(repo("restart"))] == [
        f"{n:040x}" for n in (1, 2, 3)
    ]


@pytest.mark.live
def test_replay_after_a_lost_acknowledgement_adds_nothing(
    master: HookMaster, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(repo("replay"), 1)])
    (path,) = spool.pending()
    saved = path.read_bytes()
    assert deliver(spool, master.url, USER, SECRET).delivered == 1
    path.write_bytes(saved)  # as if the master's answer had been lost: the file is still here
    report = deliver(spool, master.url, USER, SECRET)
    assert (report.delivered, report.remaining) == (1, 0)  # acknowledged...
    assert len(master.changes(repo("replay"))) == 1  # ...but not added twice


@pytest.mark.live
def test_concurrent_replays_add_one_change(master: HookMaster) -> None:
    change = make_change(repo("concurrent"), 7)
    fields = change_form(change.change_id, change)
    answers: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: answers.append(master.hook(fields)))
               for _ in range(6)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in answers] == [200] * 6  # Buildbot writes the body first
    assert sorted(body for _, body in answers) == ["1 change found"] + ["no change found"] * 5
    assert len(master.changes(repo("concurrent"))) == 1


@pytest.mark.live
def test_wrong_secret_is_refused_and_adds_nothing(master: HookMaster, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(repo("secret"))])
    report = deliver(spool, master.url, USER, "wrong-secret")
    assert (report.delivered, report.remaining) == (0, 1)
    assert report.error.startswith("HTTP 401") and "wrong-secret" not in report.error
    change = make_change(repo("secret"))
    assert master.hook(change_form(change.change_id, change), secret="")[0] == 401
    assert master.changes(repo("secret")) == []


@pytest.mark.live
@pytest.mark.parametrize("branch", ["$(touch pwned)", "a..b", "-x", "x.lock", "x y", "x\ny"])
def test_bad_branch_is_refused_with_a_clear_message(
    master: HookMaster, tmp_path: Path, branch: str
) -> None:
    change = make_change(repo("bad"), branch=branch)
    code, body = master.hook(change_form(change.change_id, change))
    assert code == 400
    assert body.startswith(f"invalid branch name {ascii(branch)}: ")
    assert "\n" not in body
    spool = Spool(tmp_path / "spool")
    spool.append([change])
    report = deliver(spool, master.url, USER, SECRET)
    assert (report.delivered, report.rejected, report.remaining) == (0, 1, 0)
    assert master.changes(repo("bad")) == []
    assert not list(master.basedir.rglob("pwned"))


@pytest.mark.live
def test_unknown_repository_unwatched_branch_and_bad_fields_are_refused(
    master: HookMaster,
) -> None:
    cases: list[tuple[Change, dict[str, str], str]] = []
    unknown = make_change(FORGE + "nobody-watches-this")
    cases.append((unknown, {}, "unknown repository 'https://forge.example.com/nobody-watches"))
    dev = make_change(repo("branches"), branch="dev")
    cases.append((dev, {}, "branch 'dev' of repository"))
    good = make_change(repo("branches"))
    cases.append((good, {"revision": "not-hex"}, "invalid git revision 'not-hex'"))
    cases.append((good, {"revision": "f" * 40}, "anybox_ci_change_id does not match"))
    cases.append((good, {"files": "{oops"}, "malformed change"))
    cases.append((good, {"properties": '{"anybox_ci_vcs": "git"}'}, "does not match the change"))
    cases.append((good, {"properties": '{"x": 1}'}, "unexpected properties"))
    for change, override, message in cases:
        code, body = master.hook({**change_form(change.change_id, change), **override})
        assert (code, message in body) == (400, True), (body, message)
    assert master.changes(repo("branches")) == []
    assert master.changes(FORGE + "nobody-watches-this") == []


@pytest.mark.live
def test_reconfig_refreshes_the_watched_repositories(master: HookMaster) -> None:
    change = make_change(FORGE + "added-later")
    fields = change_form(change.change_id, change)
    assert master.hook(fields)[0] == 400
    master.set_known({FORGE + "added-later": ["main"], **{repo(n): b for n, b in REPOS.items()}})
    master.reconfig()
    deadline = time.monotonic() + 15
    while master.hook(fields)[0] != 200:
        assert time.monotonic() < deadline, master.log_tail()
        time.sleep(0.2)
    assert len(master.changes(FORGE + "added-later")) == 1


@pytest.mark.live
def test_push_to_a_hosted_repository_reaches_the_master(master: HookMaster, tmp_path: Path) -> None:
    seed = make_repo(tmp_path / "seed", "git")
    hosted = tmp_path / "hosted.git"
    run(tmp_path, "git", "clone", "-q", "--bare", str(seed), str(hosted))
    work = tmp_path / "work"
    run(tmp_path, "git", "clone", "-q", str(hosted), str(work))
    secret = tmp_path / "hook-secret"
    secret.write_text(SECRET)
    install_hooks(hosted, "git", notify_push_command(
        repository=repo("push"), spool=tmp_path / "spool", notify_url=master.url, user=USER,
        secret_file=secret))  # fmt: skip
    rev = commit(work, "git", {"pushed.txt": "1"}, "pushed")
    started = time.monotonic()
    subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, env=ENV, check=True,
                   capture_output=True)  # fmt: skip
    elapsed = time.monotonic() - started
    added = master.changes(repo("push"))
    assert [(c["revision"], c["files"]) for c in added] == [(rev, ["pushed.txt"])]
    assert elapsed < 5, f"push with notification took {elapsed:.2f} s"
    shutil.rmtree(tmp_path / "work")
