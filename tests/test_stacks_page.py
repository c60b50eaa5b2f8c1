"""The Stacks page and its JSON API (a ``wsgi_dashboards`` page of the web UI).

The stacks live in a real SQLite database, written through :mod:`anybox_ci.stacks`' own
store API (candidates recorded, domains frozen, stacks promoted). The page is served as
Buildbot's ``wsgi_dashboards`` plugin serves it (``buildbot_api`` with the master), and its
read check is Buildbot's own ``Authz`` (``authz_config``) resolving real data API endpoints;
the login is the session cookie the web UI's login sets (a JWT signed with the site's
secret). tests/test_live_stacks.py reads the same API from a running master.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from buildbot.data.connector import DataConnector
from buildbot.www.auth import SESSION_SECRET_ALGORITHM, build_cookie_name
from twisted.internet import defer

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.stacks.model import Pin
from anybox_ci.stacks.store import StackStore
from anybox_ci.www.authz import authz_config
from anybox_ci.www.stacks_page import StacksPage

A, B, C = "a" * 40, "b" * 40, "c" * 40
CORE_ARCHIVE, CORE_SHA = "releases/core-1.0.1.tar.gz", "e" * 64
#: untrusted values, as a build's repository or a force form could make them
EVIL_AUTHOR = "<script>alert('who')</script>"
EVIL_VERSION = "2.0.1<img src=x onerror=alert(1)>"
EVIL_REVISION = "<b>" + "d" * 37
SECRET = "session-secret-of-the-site-0123456789"


def pin(codebase: str, revision: str) -> Pin:
    return Pin(codebase, f"file:///repos/{codebase}", "main", revision)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StackStore]:
    """erp: stack 1 (stable), 2 (web changed, by a hostile author), 3 (core changed, testing);
    crm: no configured domain, one stack; ops: configured, no stack yet."""
    s = StackStore.open("sqlite:///state.sqlite", tmp_path)
    s.record_candidate("core", [pin("core", A)], "1.0.0", now=1)
    s.record_candidate("web", [pin("web", A)], "2.0.0", now=2)
    assert s.freeze("erp", ["core", "web"], "alice").number == 1
    s.promote("erp", 1, "stable", "alice")
    s.record_candidate("web", [pin("web", EVIL_REVISION)], EVIL_VERSION, now=3)
    assert s.freeze("erp", ["core", "web"], EVIL_AUTHOR).number == 2
    s.record_candidate("core", [pin("core", B)], "1.0.1", CORE_ARCHIVE, CORE_SHA, now=4)
    assert s.freeze("erp", ["core", "web"], "bob").number == 3
    s.record_candidate("site", [pin("site", C)], "0.1", now=5)
    s.freeze("crm", ["site"], "carol")
    yield s
    s.close()


def _master(authz: Any = None) -> SimpleNamespace:
    """What the plugin hands the page: the master, its web server's authz and site."""
    data = DataConnector()  # Buildbot's endpoints, for the authz rules to match against
    master = SimpleNamespace(
        data=data,
        www=SimpleNamespace(authz=authz, site=SimpleNamespace(session_secret=SECRET)),
        config=SimpleNamespace(buildbotURL="http://ci.example.com/"),
    )
    if authz is not None:
        authz.setMaster(master)
    return master


def _now(function: Any, *args: Any) -> Any:
    """The page's ``run_in_reactor``, here without a reactor thread: the rules answer at once."""
    found: list[Any] = []
    defer.maybeDeferred(function, *args).addBoth(found.append)
    (result,) = found
    if isinstance(result, Exception) or hasattr(result, "raiseException"):
        result.raiseException()
    return result


def served(store: StackStore, authz: Any = None, domains: tuple[str, ...] = ("erp", "ops")) -> Any:
    app = StacksPage(domains)
    app.buildbot_api = SimpleNamespace(master=_master(authz))
    app.store_override = store
    app.run_in_reactor = _now
    return app


def call(
    app: StacksPage, path: str = "/index.html", query: str = "", method: str = "GET", **env: Any
) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, **env}
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def api(app: StacksPage, path: str, query: str = "") -> Any:
    status, headers, body = call(app, path, query)
    assert status.startswith("200") and headers["Content-Type"] == "application/json", body
    return json.loads(body)


def rows(page: str) -> list[tuple[str, str, str, str]]:
    """(stack, channels, frozen by, changed from previous) of each row of the page."""
    return re.findall(
        r"<tr><td>(\d+)</td><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td><td>.*?</td>"
        r"<td>(.*?)</td></tr>",
        page,
    )


# ---------------------------------------------------------------- content


def test_page_shows_the_newest_stacks_their_channel_and_what_changed(store: StackStore) -> None:
    status, headers, body = call(served(store))
    page = body.decode()
    assert status.startswith("200") and headers["Content-Type"].startswith("text/html")
    # every domain: configured ones (even without a stack) and those of the database
    assert re.findall(r"<h2>([^<]*)</h2>", page) == ["crm", "erp", "ops"]
    erp = page.split("<h2>erp</h2>")[1].split("<h2>")[0]
    assert "channels: stable: 1, testing: 3" in erp
    assert rows(erp) == [
        ("3", "testing", "bob", f"~ core 1.0.0 -&gt; 1.0.1<br>    core: {A[:12]} -&gt; {B[:12]}"
         f"<br>    artefact: (none) -&gt; {CORE_SHA[:12]}"),
        ("2", "-", re.sub("'", "&#x27;", EVIL_AUTHOR.replace("<", "&lt;").replace(">", "&gt;")),
         "~ web 2.0.0 -&gt; 2.0.1&lt;img src=x onerror=alert(1)&gt;<br>"
         f"    web: {A[:12]} -&gt; &lt;b&gt;{'d' * 9}"),
        ("1", "stable", "alice", "-"),
    ]  # fmt: skip
    assert "<code>1.0.1</code>" in erp and "<code>1.0.0</code>" not in erp.split("<tr>")[2]
    assert "<h2>ops</h2><p>channels: none</p><p>No stack yet.</p>" in page


def test_api_gives_the_same_newest_first_with_the_previous_stack(store: StackStore) -> None:
    app = served(store)
    (erp,) = api(app, "/api/stacks", "domain=erp")["domains"]
    assert erp["channels"] == {"stable": 1, "testing": 3}
    assert [(s["number"], s["channels"], s["previous"]) for s in erp["stacks"]] == [
        (3, ["testing"], 2),
        (2, [], 1),
        (1, ["stable"], None),
    ]
    three = erp["stacks"][0]
    assert [c["buildout"] for c in three["changes"]] == ["core"]
    (change,) = three["changes"]
    assert change["before"]["revisions"][0]["revision"] == A
    assert change["after"]["revisions"][0]["revision"] == B
    assert erp["stacks"][1]["frozen_by"] == EVIL_AUTHOR  # data, kept as it is, in JSON
    # the newest N: the last one shown still says what changed from the one before it
    (erp,) = api(app, "/api/stacks", "domain=erp&limit=2")["domains"]
    assert [s["number"] for s in erp["stacks"]] == [3, 2]
    assert erp["stacks"][1]["previous"] == 1
    assert [c["buildout"] for c in erp["stacks"][1]["changes"]] == ["web"]
    every = api(app, "/api/stacks")["domains"]
    assert [d["domain"] for d in every] == ["crm", "erp", "ops"]
    assert every[2] == {"domain": "ops", "channels": {}, "stacks": []}


def test_one_stack_its_export_and_candidates(store: StackStore) -> None:
    app = served(store)
    one = api(app, "/api/stacks/erp/1")
    assert (one["number"], one["channels"], one["frozen_by"]) == (1, ["stable"], "alice")
    assert {m["buildout"]: m["release_version"] for m in one["members"]} == {
        "core": "1.0.0",
        "web": "2.0.0",
    }
    exported = api(app, "/api/stacks/erp/3/export")
    revisions = {m["buildout"]: m["revisions"][0]["revision"] for m in exported["members"]}
    assert revisions == {"core": B, "web": EVIL_REVISION}
    status, headers, body = call(app, "/api/stacks/erp/3/export", "format=buildout")
    assert status.startswith("200") and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert "[versions]\ncore = 1.0.1\n" in text
    assert f"core = git file:///repos/core branch=main rev={B}" in text
    status, _, body = call(app, "/api/stacks/erp/3/export", "format=<x>")
    assert status.startswith("400") and b"<x>" not in body
    found = api(app, "/api/candidates/web")
    assert [c["release_version"] for c in found["candidates"]] == [EVIL_VERSION, "2.0.0"]
    (core,) = [c for c in api(app, "/api/candidates/core")["candidates"] if c["artefact"]]
    assert (core["release_version"], core["artefact"], core["artefact_sha256"]) == (
        "1.0.1",
        CORE_ARCHIVE,
        CORE_SHA,
    )


def test_untrusted_values_are_escaped_or_served_as_data(store: StackStore) -> None:
    app = served(store)
    page = call(app)[2].decode()
    for raw in (EVIL_AUTHOR, "<img", "<b>", "onerror=alert(1)>"):
        assert raw not in page
    assert "&lt;script&gt;alert(&#x27;who&#x27;)&lt;/script&gt;" in page
    assert "<code>2.0.1&lt;img src=x onerror=alert(1)&gt;</code>" in page
    # the JSON answers carry the same values, never as HTML
    for path in ("/api/stacks", "/api/stacks/erp/2", "/api/stacks/erp/2/export"):
        status, headers, body = call(app, path)
        assert headers["Content-Type"] == "application/json", path
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = call(app, "/api/stacks/erp/2/export", "format=buildout")
    assert headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "path, query",
    [
        ("/api/stacks/nope/1", ""),
        ("/api/stacks/erp/99", ""),
        ("/api/stacks/ops/1", ""),
        ("/api/stacks/erp/99/export", ""),
        ("/api/stacks", "domain=nope"),
        ("/api/stacks", "domain=erp&domain=%3Cscript%3E"),
        ("/api/stacks/<script>/1", ""),
        ("/api/stacks/erp/1/other", ""),
        ("/api/stacks/erp/²", ""),
        ("/api/stacks/erp/" + "9" * 5000, ""),
        ("/api/stacks/erp", ""),
        ("/api/nothing", ""),
        ("/../../etc/passwd", ""),
    ],
)
def test_unknown_domain_stack_or_page_is_a_one_line_404(
    store: StackStore, path: str, query: str
) -> None:
    status, headers, body = call(served(store), path, query)
    assert status.startswith("404"), (status, body)
    assert headers["Content-Type"].startswith("text/plain")
    assert body.count(b"\n") == 1 and b"<" not in body and b"Traceback" not in body


@pytest.mark.parametrize("limit", ["-1", "0", "x", "501", "1e3"])
def test_bad_limits_are_refused(store: StackStore, limit: str) -> None:
    """A negative SQL LIMIT would be no limit at all (SQLite)."""
    status, _, body = call(served(store), "/api/stacks", f"limit={limit}")
    assert status.startswith("400") and body.count(b"\n") == 1


def test_read_only_and_a_broken_database_is_one_line(tmp_path: Path, store: StackStore) -> None:
    app = served(store)
    assert call(app, method="POST")[0].startswith("405")
    assert call(app, "/api/stacks", method="DELETE")[0].startswith("405")
    (tmp_path / "dir.sqlite").mkdir()
    broken = served(StackStore.open("sqlite:///dir.sqlite", tmp_path))
    status, _, body = call(broken, "/api/stacks")
    assert status.startswith("500") and body == b"stacks: unavailable\n"  # no SQL, no path


# ---------------------------------------------------------------- who may read


def session(user: str) -> dict[str, str]:
    """The cookie the web UI's login sets: a JWT of the user's details, signed by the site."""
    token = jwt.encode(
        {"user_info": {"username": user, "anonymous": False}},
        SECRET,
        algorithm=SESSION_SECRET_ALGORITHM,
    )
    return {"HTTP_COOKIE": f"{build_cookie_name(False, []).decode()}={token}"}


def test_anonymous_read_off_refuses_anonymous_visitors(store: StackStore) -> None:
    authz = authz_config(admins=["alice"], anonymous_read=False, force_roles=[])
    app = served(store, authz)
    forged = jwt.encode(
        {"user_info": {"username": "bob"}}, "not-the-secret-of-this-site-0123456789", "HS256"
    )
    cookie = build_cookie_name(False, []).decode()
    for env in ({}, {"HTTP_COOKIE": f"{cookie}={forged}"}, {"HTTP_COOKIE": f"{cookie}=x.y.z"}):
        for path in (
            "/index.html",
            "/api/stacks",
            "/api/stacks/erp/1/export",
            "/api/candidates/web",
        ):
            status, _, body = call(app, path, **env)
            assert status.startswith("403"), (path, env)
            assert b"erp" not in body and b"alice" not in body and body.count(b"\n") == 1
    status, _, body = call(app, **session("bob"))
    assert status.startswith("200") and b"<h2>erp</h2>" in body
    status, _, body = call(app, "/api/stacks/erp/1", **session("bob"))
    assert status.startswith("200") and json.loads(body)["frozen_by"] == "alice"


def test_anonymous_read_on_lets_anybody_read(store: StackStore) -> None:
    authz = authz_config(admins=["alice"], anonymous_read=True, force_roles=[])
    app = served(store, authz)
    status, _, body = call(app)
    assert status.startswith("200") and b"<h2>erp</h2>" in body
    assert api(app, "/api/stacks/erp/3")["number"] == 3


def test_page_outside_a_master_shows_nothing(store: StackStore) -> None:
    app = StacksPage(["erp"])
    app.store_override = store
    status, _, body = call(app)
    assert status.startswith("403") and b"erp" not in body


# ---------------------------------------------------------------- from the manifest


def test_configurator_adds_the_page_for_the_manifest_domains(tmp_path: Path) -> None:
    (tmp_path / "buildouts").mkdir()
    (tmp_path / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (tmp_path / "buildouts" / "MANIFEST.cfg").write_text(
        "[core]\nbuildout = standalone b.cfg\nbuild-for = postgresql 15\n\n"
        "[domain:shop]\nmembers = core\nacceptance-steps = members\n"
    )
    (tmp_path / "workers.cfg").write_text(
        "[w1]\npassword = secret:w1\ncapability = postgresql 15\n"
    )
    config: dict[str, Any] = {"www": {"port": 8010}}
    AnyboxConfigurator(tmp_path).configure(config)
    dashboards = {d["name"]: d for d in config["www"]["plugins"]["wsgi_dashboards"]}
    app = dashboards["anybox-stacks"]["app"]
    assert isinstance(app, StacksPage) and app.domains == ["shop"]
    app.buildbot_api = SimpleNamespace(master=_master())
    app.store_override = StackStore.open("sqlite:///state.sqlite", tmp_path)
    status, _, body = call(app)
    assert status.startswith("200") and b"<h2>shop</h2>" in body and b"No stack yet" in body
