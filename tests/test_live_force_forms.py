"""Operators at scale, live: per-buildout force forms, the admins' "force everything
matching" form, the matrix page's results from the master's database, and the badges.

A real master made from master.cfg.sample (htpasswd login: ``admin``, and ``dev`` of the
``developers`` group that may force), one real worker over PB on one real PostgreSQL
server, and the sample buildouts in local git repositories: ``passing`` and ``failing``
get a cell each, ``restricted`` (which needs wkhtmltopdf) stays unmatched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.core.selection import FORCE_MATCHING_SCHEDULER
from anybox_ci.devtools.localmaster import (
    Master,
    WorkerProcess,
    make_sample_repo,
    offer_line,
    sample_manifest,
)
from anybox_ci.www.passwords import hash_password
from tests.test_htpasswd import Client

pytestmark = pytest.mark.live

PAGE = "plugins/wsgi_dashboards/anybox-matrix/index.html"
BADGES = "plugins/wsgi_dashboards/anybox-matrix/badges/"
PASSWORDS = {"admin": "Adm1n-force-Secret", "dev": "Dev-force-Secret-9"}
WORKER_PASSWORD = "w1-force-Secret-77"
BUILD_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Any]
) -> Iterator[tuple[Master, int, dict[str, Path]]]:
    major = min(pg_clusters)
    root = tmp_path_factory.mktemp("forceforms")
    repos = {n: make_sample_repo(n, root / "repos") for n in ("passing", "failing", "restricted")}
    workers = (
        f"[w1]\npassword = secret:worker-w1\ncapability =\n    {offer_line(pg_clusters[major])}\n"
    )
    master = Master(root / "master")
    master.create(
        sample_manifest(repos, build_for=f"postgresql == {major}"),
        workers,
        secrets={"worker-w1": WORKER_PASSWORD},
    )
    (master.basedir / "htpasswd").write_text(
        "".join(f"{u}:{hash_password(p, rounds=4)}\n" for u, p in PASSWORDS.items())
    )
    (master.basedir / "htgroups").write_text("developers: dev\n")
    worker = WorkerProcess(root / "w1", "w1", WORKER_PASSWORD, master.pb_port)
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "the worker")
        yield master, major, repos
    finally:
        worker.stop()
        master.stop()


def _client(master: Master, user: str) -> Client:
    client = Client(master.url)
    assert client.login(user, PASSWORDS[user]) == 200
    return client


def _force(client: Client, scheduler: str, **params: Any) -> tuple[int, Any]:
    body = {"jsonrpc": "2.0", "method": "force", "id": 1, "params": params}
    status, answer = client.request(f"/api/v2/forceschedulers/{scheduler}", data=body)
    return status, json.loads(answer) if answer.startswith(b"{") else answer


def test_forms_per_buildout_and_the_admins_matching_form(
    site: tuple[Master, int, dict[str, Path]],
) -> None:
    master, major, repos = site
    passing, failing = f"passing-pg{major}", f"failing-pg{major}"
    ids = master.builder_ids()

    # -- each buildout's form: its own builders, its own repository only ---------------------
    forms = {f["name"]: f for f in master.get("forceschedulers")["forceschedulers"]}
    assert sorted(forms) == ["force-failing", "force-passing", FORCE_MATCHING_SCHEDULER]
    assert forms["force-passing"]["builder_names"] == [passing]
    shown = json.dumps(forms["force-passing"])
    assert str(repos["passing"]) in shown and str(repos["failing"]) not in shown
    assert sorted(forms[FORCE_MATCHING_SCHEDULER]["builder_names"]) == [failing, passing]

    dev, admin = _client(master, "dev"), _client(master, "admin")
    # a buildout's form does not force another buildout's builder
    status, answer = _force(dev, "force-passing", builderid=str(ids[failing]))
    assert status == 400 and "not a builder of this force form" in json.dumps(answer), answer
    # a developer may force a buildout, not everything matching
    status, answer = _force(dev, FORCE_MATCHING_SCHEDULER, builderid=str(ids[passing]), match="*")
    assert status == 403, answer
    # a selector that is neither a tag nor a capability filter is refused, nothing is built
    status, answer = _force(admin, FORCE_MATCHING_SCHEDULER, match="pg1; rm -rf /")
    assert status == 400 and "refused" in json.dumps(answer), answer
    assert master.builds(passing) == [] and master.builds(failing) == []

    # -- the admin forces every cell of one PostgreSQL version ---------------------------------
    status, answer = _force(
        admin, FORCE_MATCHING_SCHEDULER, builderid=str(ids[passing]), match=f"pg{major}"
    )
    assert status == 200, answer
    brids = answer["result"][1]
    assert sorted(int(b) for b in brids) == sorted([ids[passing], ids[failing]])
    bsids = {
        master.get(f"buildrequests/{r}")["buildrequests"][0]["buildsetid"] for r in brids.values()
    }
    assert len(bsids) == 2  # one buildset per buildout, with that buildout's sources
    master.wait_buildsets(bsids, BUILD_TIMEOUT)
    for bsid in bsids:
        stamps = master.get(f"buildsets/{bsid}")["buildsets"][0]["sourcestamps"]
        assert len(stamps) == 1 and stamps[0]["branch"] == "main", stamps
    [good], [bad] = master.builds(passing), master.builds(failing)
    assert (good["results"], bad["results"]) == (0, 2)
    assert good["properties"]["owner"][0] == "admin"

    # -- the matrix page reads the results from the master's database --------------------------
    anonymous = Client(master.url)  # the sample lets anyone read
    status, body = anonymous.request(PAGE)
    page = body.decode()
    assert status == 200, page[:300]
    assert re.search(rf"<td class='cell r-success' data-cell='{passing}'", page)
    assert re.search(rf"<td class='cell r-failure' data-cell='{failing}'", page)
    assert f"#/builders/{ids[passing]}/builds/{good['number']}'>#{good['number']} success<" in page
    assert "wkhtmltopdf" in page  # the unmatched buildout's reason
    status, body = anonymous.request(PAGE + "?result=failure")
    assert status == 200
    rows = re.findall(r"data-buildout='([^']*)'", body.decode())
    assert rows == ["failing"]

    # -- badges ---------------------------------------------------------------------------------
    for path, state in (
        ("passing.svg", "success"),
        ("failing.svg", "failure"),
        (f"passing/{passing}.svg", "success"),
    ):
        status, body = anonymous.request(BADGES + path)
        assert status == 200 and f">{state}</text>".encode() in body, (path, body[:300])
    assert anonymous.request(BADGES + "restricted.svg")[0] == 404  # no cell, no badge
    assert anonymous.request(BADGES + "nope.svg")[0] == 404
    assert "Traceback" not in master.log(), master.log_tail(60)
