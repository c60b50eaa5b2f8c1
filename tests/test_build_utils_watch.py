"""Tests of build_utils/watch.py on buildout configs with extends, += / -=, macros, mr.developer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from build_utils import watch
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return ship(tmp_path, "watch")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip())
    return path


@pytest.fixture
def buildout(tmp_path: Path) -> Path:
    directory = tmp_path / "erp"
    write(
        directory / "base" / "odoo.cfg",
        """
        [urls]
        oca = https://github.com/OCA

        [odoo]
        recipe = anybox.recipe.odoo:server
        version = git https://github.com/odoo/odoo.git odoo 16.0 depth=1
        addons = git ${urls:oca}/web.git parts/web 16.0
                 git ${urls:oca}/server-tools.git parts/server-tools 16.0
                 hg https://hg.example.com/legacy parts/legacy default
                 local addons-custom
        """,
    )
    write(
        directory / "buildout.cfg",
        f"""
        [buildout]
        extends = base/odoo.cfg
        parts = odoo
        extensions = mr.developer
        auto-checkout = my.tool pinned.tool other.tool svn.tool local.tool
        sources = sources

        [odoo]
        addons += git ${{urls:oca}}/account-financial-tools.git parts/aft {SHA}
                  hg https://hg.example.com/pinned parts/pinned 0123456789ab
                  bzr lp:~anybox/openerp-web/trunk parts/bzr-web last:1
                  bzr lp:~anybox/openerp-web/stable parts/bzr-stable 42
                  git https://github.com/acme/reports.git parts/reports main revision=abc
                  git https://github.com/acme/frozen.git parts/frozen main
                  # commented-out: git https://example.com/nope.git parts/nope main
        addons -= git ${{urls:oca}}/server-tools.git parts/server-tools 16.0
        merges = git https://github.com/acme/web.git parts/web pr-123
        revisions = parts/frozen {SHA}

        [odoo-test]
        <= odoo
        addons = git https://github.com/acme/test-only.git parts/test-only 16.0-test

        [sources]
        my.tool = git https://github.com/acme/my.tool.git branch=develop
        pinned.tool = git https://github.com/acme/pinned.tool.git rev=1.2
        other.tool = hg https://hg.example.com/other.tool
        svn.tool = svn https://svn.example.com/svn.tool/trunk
        local.tool = fs local.tool
        unused.tool = git https://github.com/acme/unused.git
        """,
    )
    return directory


def _plain(sources: list[dict]) -> list[dict]:
    """The sources without their pinning metadata (tested on its own)."""
    return [{k: v for k, v in source.items() if k != "pin"} for source in sources]


EXPECTED_SOURCES = [
    {"vcs": "bzr", "url": "lp:~anybox/openerp-web/trunk", "branch": None},
    {"vcs": "git", "url": "https://github.com/OCA/web.git", "branch": "16.0"},
    {"vcs": "git", "url": "https://github.com/acme/my.tool.git", "branch": "develop"},
    {"vcs": "git", "url": "https://github.com/acme/test-only.git", "branch": "16.0-test"},
    {"vcs": "git", "url": "https://github.com/acme/web.git", "branch": "pr-123"},
    {"vcs": "git", "url": "https://github.com/odoo/odoo.git", "branch": "16.0"},
    {"vcs": "hg", "url": "https://hg.example.com/legacy", "branch": "default"},
    {"vcs": "hg", "url": "https://hg.example.com/other.tool", "branch": "default"},
]


def test_discover(buildout: Path) -> None:
    result = watch.discover(buildout, "buildout.cfg")
    assert _plain(result["sources"]) == EXPECTED_SOURCES
    assert result["errors"] == ["[sources] svn.tool: vcs 'svn' cannot be watched"]


def test_cli_output_is_deterministic(script: Path, buildout: Path, tmp_path: Path) -> None:
    outputs = []
    for name in ("a.json", "b.json"):
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                "--buildout-dir",
                str(buildout),
                "--config",
                "buildout.cfg",
            ]
            + ["--output", str(tmp_path / name)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert summary_of(proc.stdout).startswith("8 floating sources, 1 problem (first: ")
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    data = json.loads(outputs[0])
    assert _plain(data["sources"]) == EXPECTED_SOURCES
    assert list(data) == ["errors", "sources"]


def test_auto_checkout_star_and_absent(tmp_path: Path) -> None:
    cfg = """
        [buildout]
        {auto}
        [sources]
        a = git https://example.com/a.git
        b = bzr lp:b
        """
    write(tmp_path / "star.cfg", cfg.format(auto="auto-checkout = *"))
    write(tmp_path / "none.cfg", cfg.format(auto=""))
    write(tmp_path / "only.cfg", cfg.format(auto="auto-checkout = b"))
    expected = [
        {"vcs": "bzr", "url": "lp:b", "branch": None},
        {"vcs": "git", "url": "https://example.com/a.git", "branch": "master"},
    ]
    assert _plain(watch.discover(tmp_path, "star.cfg")["sources"]) == expected
    assert _plain(watch.discover(tmp_path, "none.cfg")["sources"]) == expected
    assert _plain(watch.discover(tmp_path, "only.cfg")["sources"]) == expected[:1]


def test_missing_file_is_not_fatal(script: Path, tmp_path: Path) -> None:
    out = tmp_path / "watch.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--buildout-dir", str(tmp_path), "--config", "nope.cfg"]
        + ["--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    data = json.loads(out.read_text())
    assert data == {"errors": [f"{tmp_path / 'nope.cfg'}: file not found"], "sources": []}
    assert summary_of(proc.stdout).startswith("0 floating sources, 1 problem (first: ")


def test_unparseable_and_remote_extends(script: Path, tmp_path: Path) -> None:
    write(tmp_path / "broken.cfg", "no section header here\n[odoo]\n")
    write(
        tmp_path / "buildout.cfg",
        """
        [buildout]
        extends = https://example.com/remote.cfg broken.cfg
        [odoo]
        recipe = anybox.recipe.openerp:server
        addons = bzr lp:openobject-addons/7.0 parts/addons last:1
                 git https://example.com/short.git
        """,
    )
    out = tmp_path / "watch.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--buildout-dir", str(tmp_path), "--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert _plain(data["sources"]) == [
        {"vcs": "bzr", "url": "lp:openobject-addons/7.0", "branch": None}
    ]
    errors = data["errors"]
    assert len(errors) == 3
    assert any("broken.cfg: cannot parse" in e for e in errors)
    assert any("remote extends not followed: https://example.com/remote.cfg" in e for e in errors)
    assert any("expected 'VCS URL TARGET REVISION'" in e for e in errors)


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path / "a.cfg", "[buildout]\nextends = b.cfg\n")
    write(
        tmp_path / "b.cfg", "[buildout]\nextends = a.cfg\n[sources]\nx = git https://e.com/x.git\n"
    )
    result = watch.discover(tmp_path, "a.cfg")
    assert _plain(result["sources"]) == [
        {"vcs": "git", "url": "https://e.com/x.git", "branch": "master"}
    ]
    assert any("extends cycle" in e for e in result["errors"])


def test_unwritable_output_fails(script: Path, tmp_path: Path) -> None:
    write(tmp_path / "buildout.cfg", "[buildout]\n")
    proc = subprocess.run(
        [sys.executable, str(script), "--buildout-dir", str(tmp_path)]
        + ["--output", str(tmp_path / "missing-dir" / "watch.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("cannot write ")


@pytest.mark.parametrize(
    ("vcs", "revision", "pinned"),
    [
        ("git", SHA, True),
        ("git", SHA[:12], False),
        ("git", "16.0", False),
        ("hg", SHA[:12], True),
        ("hg", SHA, True),
        ("hg", "default", False),
        ("bzr", "last:1", False),
        ("bzr", "revid:someone@example.com-20240101-abc", True),
        ("bzr", "42", True),
    ],
)
def test_is_pinned(vcs: str, revision: str, pinned: bool) -> None:
    assert watch.is_pinned(vcs, revision) is pinned


def test_sources_say_how_to_pin_them(tmp_path: Path) -> None:
    (tmp_path / "buildout.cfg").write_text(
        "[buildout]\nparts = openerp\n\n"
        "[openerp]\nrecipe = anybox.recipe.odoo:server\n"
        "addons = git https://e.com/a.git addons/a 17.0\n\n"
        "[sources]\nlib = git https://e.com/lib.git branch=main\n"
    )
    pins = {s["url"]: s["pin"] for s in watch.discover(tmp_path, "buildout.cfg")["sources"]}
    assert pins["https://e.com/a.git"] == {
        "kind": "recipe",
        "section": "openerp",
        "target": "addons/a",
    }
    assert pins["https://e.com/lib.git"]["kind"] == "developer"
    assert pins["https://e.com/lib.git"]["name"] == "lib"
