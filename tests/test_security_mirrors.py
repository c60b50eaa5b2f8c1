"""D3: one bad repository never stops ``update-mirrors --master`` from mirroring the others.

A master folder whose manifests watch a good repository and a bad one (a URL that would be
read as an option, or a discovered URL that is not even valid Unicode): the bad one is
reported on one line and skipped, the good one is mirrored, and the exit code is 1 (some
failed), not 2 (nothing done).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anybox_ci.changes.layout import Remote, mirror_path
from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.core.loader import load
from tests.test_mirrors import make_repo


def _master(tmp_path: Path, manifest: str) -> Path:
    master = tmp_path / "master"
    (master / "buildouts").mkdir(parents=True)
    (master / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (master / "workers.cfg").write_text("[w1]\npassword = pw\ncapability = postgresql 15\n")
    return master


def test_d3_a_bad_repository_is_skipped_and_the_others_are_mirrored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_repo(tmp_path / "repos" / "good", "git")
    other = make_repo(tmp_path / "repos" / "other", "git")
    master = _master(
        tmp_path,
        f"[DEFAULT]\nbuild-for = postgresql\n\n"
        f"[good]\nbuildout = git file://{good} main buildout.cfg\n\n"
        f"[bad]\nbuildout = git file://{other} main buildout.cfg\n"
        "watch = git -oProxyCommand=touch%20pwned main\n",
    )
    root = tmp_path / "mirrors"
    code = update_mirrors_main(["--root", str(root), "--master", str(master)])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert mirror_path(root, Remote("git", f"file://{good}")).is_dir()
    problems = [line for line in err.splitlines() if "-oProxyCommand" in line]
    assert len(problems) == 1 and problems[0].startswith("update-mirrors: error: "), err
    assert "failed" in out and "Traceback" not in err
    assert not list(tmp_path.rglob("pwned"))


def test_d3_a_discovered_url_that_is_not_unicode_breaks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_repo(tmp_path / "repos" / "good", "git")
    master = _master(
        tmp_path,
        f"[good]\nbuildout = git file://{good} main buildout.cfg\nauto-watch = true\n"
        "build-for = postgresql\n",
    )
    watch_dir = master / "anybox-ci" / "watch"
    watch_dir.mkdir(parents=True)
    # json.dumps writes a lone surrogate as \ud800, which json.loads reads back as is
    source = {"vcs": "git", "url": f"file://{good}-\ud800", "branch": "main",
              "pin": {"kind": "developer", "section": "sources", "name": "x"}}  # fmt: skip
    (watch_dir / "good.json").write_text(json.dumps({"sources": [source]}))
    loaded = load(master)  # used to raise UnicodeEncodeError: the master could not configure
    assert not loaded.diagnostics.errors
    assert any("not valid Unicode" in d.message for d in loaded.diagnostics.warnings)
    root = tmp_path / "mirrors"
    assert update_mirrors_main(["--root", str(root), "--master", str(master)]) == 0
    assert mirror_path(root, Remote("git", f"file://{good}")).is_dir()
    assert "Traceback" not in capsys.readouterr().err
