"""D2: what a repository says it uses (auto-watch) never makes the master fetch any URL.

A buildout's ``buildout.cfg`` is repository content: through auto-watch, the sources it
names end up in the discovery file, then in the watches, then in ``update-mirrors
--master``'s fetches. A discovered source must be on the origin of one of the buildout's own
repositories, or under a prefix the admin allows in ``auto-watch-allow.cfg``; an internal
address is dropped with a warning naming the discovery file, and never contacted.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.core.discovered import ALLOW_FILE, allowed_discoveries, parse_discovered
from anybox_ci.core.loader import load
from anybox_ci.core.model import Watch
from anybox_ci.core.vcs import codebase_name
from tests.test_mirrors import make_repo


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_error(404)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def internal() -> Iterator[tuple[str, list[str]]]:
    """An "internal" HTTP service that records every request made to it."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _master_dir(tmp_path: Path, sources: list[dict[str, object]]) -> tuple[Path, Path, Path]:
    erp = make_repo(tmp_path / "repos" / "erp", "git")
    lib = make_repo(tmp_path / "repos" / "lib", "git")
    master = tmp_path / "master"
    (master / "buildouts").mkdir(parents=True)
    (master / "buildouts" / "MANIFEST.cfg").write_text(
        f"[erp]\nbuildout = git file://{erp} main buildout.cfg\nauto-watch = true\n"
        "build-for = postgresql\n"
    )
    (master / "workers.cfg").write_text("[w1]\npassword = pw\ncapability = postgresql 15\n")
    watch_dir = master / "anybox-ci" / "watch"
    watch_dir.mkdir(parents=True)
    sources = [{"vcs": "git", "url": f"file://{lib}", "branch": "main",
                "pin": {"kind": "developer", "section": "sources", "name": "lib"}}, *sources]  # fmt: skip
    (watch_dir / "erp.json").write_text(json.dumps({"sources": sources}))
    return master, erp, lib


def test_d2_an_internal_url_named_by_a_repository_is_never_fetched(
    tmp_path: Path, internal: tuple[str, list[str]]
) -> None:
    base, seen = internal
    bad = f"{base}/internal.git"
    pin = {"kind": "developer", "section": "sources", "name": "internal"}
    master, _, lib = _master_dir(
        tmp_path, [{"vcs": "git", "url": bad, "branch": "main", "pin": pin}]
    )

    loaded = load(master)
    urls = [w.url for w in loaded.watches]
    assert f"file://{lib}" in urls  # the same origin as the buildout's own repository: kept
    assert bad not in urls
    assert codebase_name(bad, "main") not in loaded.pins["erp"]
    [warning] = [d for d in loaded.diagnostics.warnings if bad in d.message]
    assert warning.path == str(master / "anybox-ci" / "watch" / "erp.json")
    assert "\n" not in str(warning)

    assert update_mirrors_main(["--root", str(tmp_path / "mirrors"), "--master", str(master)]) == 0
    assert seen == []  # the internal service was never contacted


def test_d2_admin_allow_list(tmp_path: Path) -> None:
    sources = [
        {"vcs": "git", "url": "https://github.com/OCA/web.git", "branch": "17.0"},
        {"vcs": "git", "url": "https://github.com.evil.example/OCA/x.git", "branch": "17.0"},
        {"vcs": "git", "url": "https://github.com@10.0.0.1/OCA/x.git", "branch": "17.0"},
        {"vcs": "git", "url": "http://10.0.0.1/x.git", "branch": "main"},
    ]
    master, _, _ = _master_dir(tmp_path, sources)
    (master / ALLOW_FILE).write_text("# OCA addons\nhttps://github.com\n")
    urls = [w.url for w in load(master).watches]
    assert "https://github.com/OCA/web.git" in urls
    assert not any("evil" in u or "10.0.0.1" in u for u in urls), urls


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://forge.example.com/lib.git", True),
        ("https://FORGE.example.com:443/lib.git", True),
        ("https://forge.example.com:8443/lib.git", False),  # another port
        ("http://forge.example.com/lib.git", False),  # another scheme
        ("https://forge.example.com@127.0.0.1/lib.git", False),  # the host is 127.0.0.1
        ("https://forge.example.com\\@127.0.0.1/lib.git", False),  # parsers disagree: refused
        ("https://a@b@forge.example.com/lib.git", False),
        ("ext::sh", False),  # git's command transport
        ("git@forge.example.com:lib.git", False),  # ssh is another scheme
        ("http://169.254.169.254/latest/meta-data", False),
    ],
)
def test_d2_origin_rule(url: str, kept: bool) -> None:
    own = [Watch("git", "https://forge.example.com/erp.git", "main")]
    found = parse_discovered(json.dumps({"sources": [{"vcs": "git", "url": url, "branch": "x"}]}))
    result, warnings = allowed_discoveries(found, own)
    assert (bool(result), len(warnings)) == (kept, 0 if kept else 1)
