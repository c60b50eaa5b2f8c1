"""Virtual cells, live: ``virtual_builders=True`` through the shipped master.cfg.sample.

A real master (SQLite) with one real builder per buildout, two real workers over PB, each
on its own real PostgreSQL server, and the sample buildouts in local git repositories.
Each buildout has two cells, one per PostgreSQL version, so one per worker. It shows:

- only the real builders are registered at start; each cell appears as its own builder
  (Buildbot's virtual builder, tagged ``_virtual_`` and with the cell's tags) once it builds;
- a change posted to the hook builds every cell of the buildout, each on its own worker
  with its own PostgreSQL, each in a buildset of its own;
- the buildout's force form offers its cells, and forces only those chosen;
- the admins' "force everything matching" form forces the cells the tag selects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.changes.protocol import Change, change_form
from anybox_ci.core.selection import FORCE_MATCHING_SCHEDULER
from anybox_ci.devtools.localmaster import (
    Master,
    WorkerProcess,
    git,
    make_sample_repo,
    offer_line,
    sample_manifest,
)
from anybox_ci.render.cells import CELLS_PROP, real_builder_name
from anybox_ci.www.passwords import hash_password
from tests.test_htpasswd import Client

pytestmark = pytest.mark.live

HOOK_USER, HOOK_PASSWORD = "hook", "hook-Virtual-Secret-1"
PASSWORDS = {"admin": "Adm1n-virtual-Secret", "dev": "Dev-virtual-Secret-9"}
BUILD_TIMEOUT = 300.0


@dataclass
class Site:
    master: Master
    low: int
    high: int
    repos: dict[str, Path]

    def cells(self, buildout: str) -> list[str]:
        return [f"{buildout}-pg{self.low}", f"{buildout}-pg{self.high}"]

    def client(self, user: str) -> Client:
        client = Client(self.master.url)
        assert client.login(user, PASSWORDS[user]) == 200
        return client

    def force(self, user: str, scheduler: str, **params: Any) -> tuple[int, Any]:
        body = {"jsonrpc": "2.0", "method": "force", "id": 1, "params": params}
        status, answer = self.client(user).request(
            f"/api/v2/forceschedulers/{scheduler}", data=body
        )
        return status, json.loads(answer) if answer.startswith(b"{") else answer

    def builds_of_buildset(self, bsid: int) -> list[dict[str, Any]]:
        found = []
        for request in self.master.get(f"buildrequests?buildsetid={bsid}")["buildrequests"]:
            found += self.master.get(
                f"builds?buildrequestid={request['buildrequestid']}&property=*"
            )["builds"]
        return found

    def builder_name(self, builderid: int) -> str:
        return str(self.master.get(f"builders/{builderid}")["builders"][0]["name"])

    def worker_name(self, workerid: int) -> str:
        return str(self.master.get(f"workers/{workerid}")["workers"][0]["name"])

    def wait_new_buildsets(self, before: set[int], count: int) -> list[int]:
        new: list[int] = []

        def arrived() -> bool:
            nonlocal new
            new = sorted({b["bsid"] for b in self.master.get("buildsets")["buildsets"]} - before)
            return len(new) >= count

        self.master.wait(arrived, 60, f"{count} buildsets")
        self.master.wait_buildsets(new, BUILD_TIMEOUT)
        return new

    def buildsets(self) -> set[int]:
        return {b["bsid"] for b in self.master.get("buildsets")["buildsets"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Any]) -> Iterator[Site]:
    low, high = min(pg_clusters), max(pg_clusters)
    assert low != high, "two PostgreSQL versions are needed"
    root = tmp_path_factory.mktemp("virtual")
    repos = {n: make_sample_repo(n, root / "repos") for n in ("passing", "failing", "restricted")}
    workers = "".join(
        f"[{name}]\npassword = secret:worker-{name}\ncapability =\n    {offer_line(pg_clusters[v])}\n"
        for name, v in (("w-low", low), ("w-high", high))
    )
    master = Master(root / "master")
    master.env["ANYBOX_CI_VIRTUAL_BUILDERS"] = "1"
    passwords = {"w-low": "w-low-Secret-123", "w-high": "w-high-Secret-456"}
    master.create(
        sample_manifest(repos, build_for=f"postgresql >= {low}"),
        workers,
        secrets={
            **{f"worker-{n}": p for n, p in passwords.items()},
            "change-hook-users": f"{HOOK_USER}:{HOOK_PASSWORD}",
        },
    )
    (master.basedir / "htpasswd").write_text(
        "".join(f"{u}:{hash_password(p, rounds=4)}\n" for u, p in PASSWORDS.items())
    )
    (master.basedir / "htgroups").write_text("developers: dev\n")
    processes = [WorkerProcess(root / n, n, p, master.pb_port) for n, p in passwords.items()]
    try:
        master.start()
        for process in processes:
            process.start()
        master.wait(lambda: master.connected_workers() == set(passwords), 60, "the workers")
        yield Site(master, low, high, repos)
    finally:
        for process in processes:
            process.stop()
        master.stop()


def test_only_the_real_builders_are_registered_at_start(site: Site) -> None:
    names = set(site.master.builder_ids())
    assert {real_builder_name("passing"), real_builder_name("failing")} <= names
    # cells have not built yet: no builder of theirs exists
    assert not names & {*site.cells("passing"), *site.cells("failing")}
    forms = {f["name"]: f for f in site.master.get("forceschedulers")["forceschedulers"]}
    assert forms["force-passing"]["builder_names"] == [real_builder_name("passing")]
    shown = json.dumps(forms["force-passing"])
    assert all(cell in shown for cell in site.cells("passing"))
    assert "failing-pg" not in shown
    assert "Traceback" not in site.master.log(), site.master.log_tail(60)


def test_a_change_builds_every_cell_each_on_its_own_worker(site: Site) -> None:
    repo = site.repos["passing"]
    (repo / "release.txt").write_text(f"{time.time_ns()}\n")
    git(repo, "add", "release.txt")
    git(repo, "commit", "-q", "-m", "a change")
    revision = git(repo, "rev-parse", "HEAD").strip()
    change = Change(f"file://{repo}", "main", revision, "Dev <dev@example.com>", "a change",
                    ("release.txt",), time.time(), "git")  # fmt: skip
    before = site.buildsets()
    code, body = site.master.post(
        "change_hook/anybox",
        fields=change_form(change.change_id, change),
        auth=(HOOK_USER, HOOK_PASSWORD),
    )
    assert code == 200, body
    bsids = site.wait_new_buildsets(before, 2)
    assert len(bsids) == 2, bsids  # one buildset per cell
    builds = [b for bsid in bsids for b in site.builds_of_buildset(bsid)]
    seen = {
        site.builder_name(b["builderid"]): (site.worker_name(b["workerid"]), b["results"])
        for b in builds
    }
    low, high = site.cells("passing")
    assert seen == {low: ("w-low", 0), high: ("w-high", 0)}, seen
    for build in builds:
        props = build["properties"]
        cell = site.builder_name(build["builderid"])
        assert props["virtual_builder_name"][0] == cell
        assert props["testing_db"][0].endswith(f"-{cell}")  # a database per cell
        got = props["got_revision"][0]
        assert revision in (got.values() if isinstance(got, dict) else [got])
    # each cell is a builder of its own in the UI, with its tags
    builder = site.master.get(f"builders/{builds[0]['builderid']}")["builders"][0]
    assert "_virtual_" in builder["tags"] and "demo" in builder["tags"], builder


def test_the_force_form_forces_the_chosen_cells_only(site: Site) -> None:
    low, high = site.cells("passing")
    before = site.buildsets()
    status, answer = site.force(
        "dev",
        "force-passing",
        builderid=str(site.master.builder_ids()[real_builder_name("passing")]),
        **{CELLS_PROP: [high]},
    )
    assert status == 200, answer
    [bsid] = site.wait_new_buildsets(before, 1)
    [build] = site.builds_of_buildset(bsid)
    assert site.builder_name(build["builderid"]) == high
    assert site.worker_name(build["workerid"]) == "w-high"
    assert build["results"] == 0
    # a cell of another buildout is not a choice of this form
    status, answer = site.force(
        "dev",
        "force-passing",
        builderid=str(site.master.builder_ids()[real_builder_name("passing")]),
        **{CELLS_PROP: [site.cells("failing")[0]]},
    )
    assert status == 400, answer
    assert site.buildsets() == before | {bsid}


def test_the_admins_matching_form_forces_the_selected_cells(site: Site) -> None:
    before = site.buildsets()
    status, answer = site.force("admin", FORCE_MATCHING_SCHEDULER, match=f"pg{site.low}")
    assert status == 200, answer
    bsids = site.wait_new_buildsets(before, 2)
    builds = [b for bsid in bsids for b in site.builds_of_buildset(bsid)]
    seen = {site.builder_name(b["builderid"]): b["results"] for b in builds}
    assert seen == {f"passing-pg{site.low}": 0, f"failing-pg{site.low}": 2}, seen
    assert all(site.worker_name(b["workerid"]) == "w-low" for b in builds)
    assert "Traceback" not in site.master.log(), site.master.log_tail(60)
