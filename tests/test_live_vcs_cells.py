"""A live cell for each buildout source type that the other live tests leave out: ``bzr``
(Breezy), ``gittag`` and ``hgtag`` (the tag given as the ``buildout-tag`` property of a forced
build), and an ``hg`` buildout that is polled (``poll = true``): a new Mercurial commit builds
with no hook involved. (``git``, ``hg`` in a subdirectory and ``standalone`` are in
test_live_matrix.py; ``archive`` in the releases tests.)

One real master in hook mode (a ``change-hook-users`` secret, so no pollers but the ones
``poll = true`` asks for), one real worker, real repositories. Each buildout's test step prints
its ``release.txt``, so the log shows which revision was built. Each test drives its own cell
and only counts builds of that cell, so the tests pass alone and in any order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.core.vcs import codebase_name
from anybox_ci.devtools.localmaster import Master, WorkerProcess, git

pytestmark = pytest.mark.live

BIN = Path(sys.executable).parent
HOOK_USER, HOOK_PASSWORD = "anybox-ci", "hook-Vcs-pw-2468"
WORKER_PASSWORD = "w1-Vcs-pw-1357"
BUILDOUT = "[buildout]\nparts =\n"
DEV_ENV = {"BRZ_EMAIL": "Dev <dev@example.com>", "HGUSER": "Dev <dev@example.com>"}


def _tool(name: str) -> str:
    """This venv's ``hg`` and ``brz`` (Mercurial and Breezy are test dependencies)."""
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed"
    return found


def _run(*argv: str, cwd: Path) -> str:
    env = dict(os.environ, **DEV_ENV, HGPLAIN="1")
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout.strip()


def hg(repo: Path, *args: str) -> str:
    return _run(_tool("hg"), *args, cwd=repo)


def brz(repo: Path, *args: str) -> str:
    return _run(_tool("brz"), *args, cwd=repo)


def _write(repo: Path, release: str) -> None:
    (repo / "buildout.cfg").write_text(BUILDOUT)
    (repo / "release.txt").write_text(f"release {release}\n")


@dataclass
class Repos:
    bzr: Path
    gittag: Path
    hgtag: Path
    hgpoll: Path


def _make_repos(root: Path) -> Repos:
    repos = Repos(root / "bzr", root / "gittag", root / "hgtag", root / "hgpoll")
    # bzr: one revision now, more pushed by the tests
    repos.bzr.mkdir(parents=True)
    brz(repos.bzr, "init", "-q", ".")
    _write(repos.bzr, "bzr-1")
    brz(repos.bzr, "add", "-q")
    brz(repos.bzr, "commit", "-q", "-m", "bzr 1")
    # gittag: v1.0 tagged (annotated, as releases are), then the branch moves on
    repos.gittag.mkdir()
    git(repos.gittag, "init", "-q", "-b", "main")
    _write(repos.gittag, "git-1.0")
    git(repos.gittag, "add", "-A")
    git(repos.gittag, "commit", "-q", "-m", "release 1.0")
    git(repos.gittag, "tag", "-a", "v1.0", "-m", "1.0")
    _write(repos.gittag, "git-2.0.dev")
    git(repos.gittag, "commit", "-q", "-am", "towards 2.0")
    # hgtag: the same in Mercurial (a tag is a commit of .hgtags)
    repos.hgtag.mkdir()
    hg(repos.hgtag, "init")
    _write(repos.hgtag, "hg-1.0")
    hg(repos.hgtag, "commit", "-q", "-A", "-m", "release 1.0")
    hg(repos.hgtag, "tag", "v1.0")
    _write(repos.hgtag, "hg-2.0.dev")
    hg(repos.hgtag, "commit", "-q", "-m", "towards 2.0")
    # hgpoll: a polled Mercurial buildout
    repos.hgpoll.mkdir()
    hg(repos.hgpoll, "init")
    _write(repos.hgpoll, "hgpoll-1")
    hg(repos.hgpoll, "commit", "-q", "-A", "-m", "hgpoll 1")
    return repos


@dataclass
class VcsMaster:
    master: Master
    repos: Repos
    root: Path
    secret_file: Path

    def update_mirrors(self) -> int:
        return update_mirrors_main(
            ["--master", str(self.master.basedir), "--root", str(self.root / "mirrors"),
             "--notify", self.master.url, "--user", HOOK_USER,
             "--secret-file", str(self.secret_file)]
        )  # fmt: skip

    def new_build(self, builder: str, before: int, timeout: float = 300) -> dict[str, Any]:
        """Wait for build number ``before + 1`` of ``builder`` to finish; return it."""
        master = self.master
        master.wait(
            lambda: len(master.builds(builder)) > before and master.builds(builder)[-1]["complete"],
            timeout,
            f"a new build of {builder}",
        )
        builds = master.builds(builder)
        assert len(builds) == before + 1, f"{builder}: {len(builds) - before} new builds"
        return builds[-1]

    def force(self, builder: str, **params: Any) -> dict[str, Any]:
        before = len(self.master.builds(builder))
        self.master.wait_buildsets([self.master.force(builder, **params)], timeout=300)
        return self.new_build(builder, before)

    def test_output(self, build: dict[str, Any]) -> str:
        return self.master.step_log(build["buildid"], "test")


@pytest.fixture(scope="module")
def vcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcsMaster]:
    root = tmp_path_factory.mktemp("vcscells")
    repos = _make_repos(root / "repos")
    manifest = f"""
[DEFAULT]
db-steps =
post-buildout-steps = test-command
test-command = cat release.txt

[bzrbo]
buildout = bzr file://{repos.bzr} buildout.cfg

[gittagbo]
buildout = gittag file://{repos.gittag} buildout.cfg

[hgtagbo]
buildout = hgtag file://{repos.hgtag} buildout.cfg

[hgpoll]
buildout = hg file://{repos.hgpoll} default buildout.cfg
poll = true
"""
    workers = "[w1]\npassword = secret:worker-w1\n"
    master = Master(
        root / "master",
        extra_config="c['configurators'] = [AnyboxConfigurator(basedir, poll_interval=2)]\n",
    )
    master.create(
        manifest,
        workers,
        secrets={"worker-w1": WORKER_PASSWORD, "change-hook-users": f"{HOOK_USER}:{HOOK_PASSWORD}"},
    )
    secret_file = root / "hook-secret"
    secret_file.write_text(HOOK_PASSWORD)
    secret_file.chmod(0o600)
    worker = WorkerProcess(root / "w1", "w1", WORKER_PASSWORD, master.pb_port)
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")
        yield VcsMaster(master, repos, root, secret_file)
    finally:
        worker.stop()
        master.stop()


def got_revisions(build: dict[str, Any]) -> list[str]:
    """``got_revision``: one value, or one per codebase."""
    got = build["properties"]["got_revision"][0]
    return list(got.values()) if isinstance(got, dict) else [got]


def test_only_the_polled_buildout_has_a_poller(vcs: VcsMaster) -> None:
    """Hook mode: no pollers, but the HgPoller that ``poll = true`` asks for."""
    names = [s["name"] for s in vcs.master.get("changesources")["changesources"]]
    assert len(names) == 1 and names[0].startswith(f"file://{vcs.repos.hgpoll}"), names


def test_bzr_buildout_builds_a_pushed_revision(vcs: VcsMaster) -> None:
    """bzr has no poller: update-mirrors sees the push and the hook builds that revision."""
    builder = "bzrbo"
    assert vcs.update_mirrors() == 0  # the mirror's baseline (or nothing new)
    before = len(vcs.master.builds(builder))
    release = f"bzr-{before + 2}"
    _write(vcs.repos.bzr, release)
    brz(vcs.repos.bzr, "commit", "-q", "-m", release)
    revno, revid = brz(vcs.repos.bzr, "revision-info").split()
    assert vcs.update_mirrors() == 0
    build = vcs.new_build(builder, before)
    assert build["results"] == 0, build["state_string"]
    assert got_revisions(build) == [revid]
    assert f"release {release}" in vcs.test_output(build)
    fetch = next(s for s in vcs.master.steps(build["buildid"]) if s["name"] == "fetch_buildout")
    assert fetch["state_string"] == f"bzr revno {revno} ({revid})"


def test_bzr_buildout_forced_builds_the_branch_tip(vcs: VcsMaster) -> None:
    build = vcs.force("bzrbo")
    assert build["results"] == 0, build["state_string"]
    tip = brz(vcs.repos.bzr, "revision-info").split()[1]
    assert got_revisions(build) == [tip]


def test_gittag_buildout_builds_the_tag_given_as_property(vcs: VcsMaster) -> None:
    tagged = git(vcs.repos.gittag, "rev-parse", "v1.0^{commit}")
    assert tagged != git(vcs.repos.gittag, "rev-parse", "HEAD")
    build = vcs.force("gittagbo", **{"buildout-tag": "v1.0"})
    assert build["results"] == 0, build["state_string"]
    assert build["properties"]["buildout-tag"][0] == "v1.0"
    assert "release git-1.0" in vcs.test_output(build)
    assert tagged in got_revisions(build)
    # a tag that does not exist fails the fetch, saying which
    missing = vcs.force("gittagbo", **{"buildout-tag": "v9.9"})
    assert missing["results"] == 2, missing["state_string"]
    assert "v9.9" in vcs.master.step_log(missing["buildid"], "fetch_buildout")


def test_hgtag_buildout_builds_the_tag_given_as_property(vcs: VcsMaster) -> None:
    tagged = hg(vcs.repos.hgtag, "log", "-r", "v1.0", "--template", "{node}")
    build = vcs.force("hgtagbo", **{"buildout-tag": "v1.0"})
    assert build["results"] == 0, build["state_string"]
    assert "release hg-1.0" in vcs.test_output(build)
    assert got_revisions(build) == [tagged]
    assert build["properties"]["buildout-tag"][0] == "v1.0"


def test_polled_hg_buildout_builds_a_new_commit_without_a_hook(vcs: VcsMaster) -> None:
    master, repo = vcs.master, vcs.repos.hgpoll
    builder = "hgpoll"
    url = f"file://{repo}"
    # The poller's first poll only records where the branch is. Once its clone holds our
    # current tip, that poll has pulled: any commit made after is new to it.
    tip = hg(repo, "log", "-r", "tip", "--template", "{node}")
    clones = Path(master.basedir) / "pollers"
    master.wait(
        lambda: any(
            (clone / ".hg").is_dir()
            and tip in hg(clone, "log", "-r", "tip", "--template", "{node}")
            for clone in clones.glob("hg-*")
        ),
        120,
        "the poller's first poll",
    )
    before = len(master.builds(builder))
    _write(repo, "hgpoll-2")
    hg(repo, "commit", "-q", "-m", "hgpoll 2")
    node = hg(repo, "log", "-r", "tip", "--template", "{node}")
    build = vcs.new_build(builder, before, timeout=180)
    assert build["results"] == 0, build["state_string"]
    assert got_revisions(build) == [node]
    assert "release hgpoll-2" in vcs.test_output(build)
    changes = master.get("changes")["changes"]
    polled = [c for c in changes if c["revision"] == node]
    assert len(polled) == 1, changes
    assert polled[0]["repository"] == url and polled[0]["branch"] == "default"
    assert polled[0]["codebase"] == codebase_name(url, "default")
