"""One branch rule: the manifest, the change hook, auto-watch and update-mirrors agree.

Every name of ``NAMES`` goes through the four doors a branch name can come in by:
(a) a manifest ``watch = git URL NAME`` line, (b) the ``anybox`` change hook, (c) an
auto-watch discovery file and (d) a branch of that name in a mirrored git repository,
spooled or skipped by ``update-mirrors``. For (d) the branch is created with ``git branch``
or, for names that command refuses but a hostile remote can still have (``-rf``, ``HEAD``),
with ``git update-ref``; names git refuses altogether cannot reach update-mirrors.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.changes.protocol import Change, change_form
from anybox_ci.changes.spool import Spool
from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.core.discovered import parse_discovered
from anybox_ci.core.loader import load
from anybox_ci.www.change_hook import AnyboxHookHandler, KnownRepositories
from tests.test_mirrors import commit, make_repo, run

URL = "https://forge.example.com/erp.git"
LONG_255 = ("p" * 99 + "/") * 2 + "p" * 55
LONG_256 = ("q" * 99 + "/") * 2 + "q" * 56

# name -> accepted; one table for the four doors
NAMES: dict[str, bool] = {
    "main": True,
    "feature/x": True,
    "17.0": True,
    "release-1.2": True,
    "v1.2": True,
    "café": True,
    "ünïcode": True,
    "a@b": True,
    "x.lock.d": True,
    LONG_255: True,
    LONG_256: False,
    "HEAD": False,
    "@": False,
    "a/.hidden": False,
    ".hidden": False,
    "x.lock/y": False,
    "x.lock": False,
    "-rf": False,
    "--upload-pack=touch": False,
    "a..b": False,
    "ma in": False,
    "tab\there": False,
    "$(touch pwned)": False,
    "x~1": False,
    "x^2": False,
    "x:y": False,
    "x?": False,
    "x*": False,
    "x[1": False,
    "x\\y": False,
    "x@{u}": False,
    "x.": False,
    "x/": False,
    "/x": False,
    "a//b": False,
    "zero\u200bwidth": False,
    "no\u00a0break": False,
    "": False,
}
assert len(LONG_255) == 255 and len(LONG_256) == 256


def manifest_accepts(tmp_path: Path, name: str) -> bool:
    """(a) ``watch = git URL NAME`` in a manifest section."""
    (tmp_path / "buildouts").mkdir()
    (tmp_path / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (tmp_path / "buildouts" / "MANIFEST.cfg").write_text(
        f"[erp]\nbuildout = standalone b.cfg\nwatch = git {URL} {name}\n", encoding="utf-8"
    )
    (tmp_path / "workers.cfg").write_text("[w1]\npassword = pw\n")
    loaded = load(tmp_path)
    return not [d for d in loaded.diagnostics.errors if d.section == "erp"]


def hook_accepts(name: str) -> bool:
    """(b) the ``anybox`` change hook, for a repository that watches that very name."""
    registry = KnownRepositories()
    registry.set({URL: [name]})
    handler = AnyboxHookHandler(None, {"registry": registry})
    change = Change(URL, name, "a" * 40, "Ada <ada@example.com>", "c", ("a.py",), 1.0, "git")
    chdict: dict[str, Any] = dict(change_form(change.change_id, change))
    chdict["files"] = json.loads(chdict["files"])
    chdict["properties"] = json.loads(chdict["properties"])
    try:
        handler.validate(chdict)
    except ValueError:
        return False
    return True


def discovery_accepts(name: str) -> bool:
    """(c) a source in the auto-watch discovery file."""
    source = {"vcs": "git", "url": URL, "branch": name, "pin": None}
    try:
        parse_discovered(json.dumps({"sources": [source]}))
    except ValueError:
        return False
    return True


def _create_branch(repo: Path, name: str, sha: str) -> bool:
    """Create branch ``name`` at ``sha`` as git allows it; whether it now exists."""
    for argv in (
        ["git", "branch", "--", name, sha],
        ["git", "update-ref", f"refs/heads/{name}", sha],
    ):
        with contextlib.suppress(subprocess.CalledProcessError):
            run(repo, *argv)
            break
    refs = run(repo, "git", "for-each-ref", "--format=%(refname)", "refs/heads/")
    return f"refs/heads/{name}" in refs.splitlines()


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bool], list[str]]:
    """(d) name -> spooled, for the names git let us create; and update-mirrors' warnings."""
    base = tmp_path_factory.mktemp("branch-rule")
    src = make_repo(base / "src", "git")
    remotes = base / "remotes.json"
    remotes.write_text(json.dumps([{"vcs": "git", "url": str(src)}]))
    argv = ["--root", str(base / "m"), "--remotes-file", str(remotes), "--spool", str(base / "s")]
    assert update_mirrors_main(argv) == 0  # the baseline: nothing spooled yet
    head = commit(src, "git", {"new.txt": "new\n"}, "new on main")  # main moves
    created = {n for n in NAMES if n == "main" or (n and _create_branch(src, n, head))}
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert update_mirrors_main(argv) == 0  # skipped branches warn, they do not fail
    spool = Spool(base / "s")
    spooled = {Spool.load(p)[1].branch for p in spool.pending()}
    assert spooled <= created
    return {n: n in spooled for n in created}, err.getvalue().splitlines()


@pytest.mark.parametrize("name", list(NAMES))
def test_the_four_doors_agree(
    name: str, tmp_path: Path, mirrored: tuple[dict[str, bool], list[str]]
) -> None:
    verdicts = {
        "manifest": manifest_accepts(tmp_path, name),
        "change hook": hook_accepts(name),
        "auto-watch": discovery_accepts(name),
    }
    spooled, _ = mirrored
    if name in spooled:
        verdicts["update-mirrors"] = spooled[name]
    assert verdicts == dict.fromkeys(verdicts, NAMES[name]), name


def test_git_lets_hostile_names_reach_update_mirrors(
    mirrored: tuple[dict[str, bool], list[str]],
) -> None:
    """The table is worth its salt: refused names git accepts do reach the mirror."""
    spooled, _ = mirrored
    for name in ("-rf", "HEAD", "@", "--upload-pack=touch", LONG_256, "zero\u200bwidth"):
        assert spooled.get(name) is False, name


def test_each_skipped_branch_gets_one_warning_line(
    mirrored: tuple[dict[str, bool], list[str]],
) -> None:
    spooled, lines = mirrored
    skipped = [n for n, ok in spooled.items() if not ok]
    warnings = [ln for ln in lines if ": warning: " in ln]
    assert len(warnings) == len(skipped) and all("skipped branch" in w for w in warnings)
    for name in skipped:
        assert sum(ascii(name[:100]) in w for w in warnings) == 1, name
    assert not [ln for ln in lines if ": warning: " not in ln]
