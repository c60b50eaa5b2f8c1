"""Commit statuses on the path users take: a manifest's ``commit-status`` line, through the
configurator, update-mirrors and the master's ``anybox`` change hook, to the forge's API.

The forge is a test double, the one this module needs: :class:`RecordingForge`, a local HTTP
server that records each request and answers like GitHub, GitLab or Gitea, whose status APIs
cannot be reached offline. Everything else is real: a master made from master.cfg.sample in
hook mode (no pollers), a worker over PB, two PostgreSQL versions, git repositories named by
forge URLs (``https://forge.example/acme/NAME.git``) that ``update-mirrors`` mirrors (its
``--rewrite-file`` reads them from local folders) and that builds fetch from the mirrors (the
master's ``url-rewrites.cfg``), exactly as a site with a GitHub organisation would run it.

Buildouts (each cell's test fails while the flag file FLAGS/<cell> exists):

- ``erp``: GitHub, two cells (the two newest PostgreSQL versions), a watch line on a second
  repository (``addons``), so its builds have two codebases;
- ``crm``: GitLab, one cell, also watching ``addons``; ``shop``: Gitea, one cell;
- ``misc``: no ``commit-status`` line: nothing may be posted for it.

Scenario, run once by the module fixture: push to every buildout repository with erp's newest
cell failing; rebuild that cell once the flag is gone; push to ``addons``.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from anybox_ci.devtools.localmaster import Master, WorkerProcess, git, offer_line
from anybox_ci.render.reporters import aggregate_context

pytestmark = pytest.mark.live

FORGE_HOST = "https://forge.example/"
HOOK_USER, HOOK_PASSWORD = "anybox-ci", "hook-Secret-4321"
WORKER_PASSWORD = "w1-Status-pw-77"
TOKENS = {
    "github": "ghp-" + "1a2b3c" * 6,
    "gitlab": "glpat-" + "4d5e6f" * 6,
    "gitea": "gitea-" + "7a8b9c" * 6,
}
#: GitLab project ids, as the recording forge answers its project look-ups
GITLAB_IDS = {"acme/crm": 101, "acme/addons": 102}
REPOS = ("erp", "crm", "shop", "misc", "addons")


# -- the recording forge --------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str  # percent-decoded
    headers: dict[str, str]  # names in lower case
    body: Any


class RecordingForge:
    """Records every request; answers status posts with 201 and GitLab project look-ups."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        forge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real forges (treq pools connections)

            def _record(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                path = urllib.parse.unquote(self.path)
                with forge.lock:
                    forge.requests.append(
                        Recorded(
                            self.command,
                            path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                return path

            def _answer(self, code: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = self._record()
                name = path.removeprefix("/api/v4/projects/")
                if name in GITLAB_IDS:
                    self._answer(200, {"id": GITLAB_IDS[name], "path_with_namespace": name})
                else:
                    self._answer(404, {"message": "404 Project Not Found"})

            def do_POST(self) -> None:
                self._record()
                self._answer(201, {"id": len(forge.requests)})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the master resetting its kept-alive connections when it stops

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)

    def posts(self) -> list[Recorded]:
        return [r for r in self.snapshot() if r.method == "POST" and isinstance(r.body, dict)]

    def states(self, path: str, context: str, key: str = "context") -> list[str]:
        """The states posted to ``path`` under ``context``, in arrival order."""
        return [
            r.body["state"] for r in self.posts() if r.path == path and r.body.get(key) == context
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def github_path(repo: str, sha: str) -> str:
    return f"/repos/acme/{repo}/statuses/{sha}"


def gitea_path(repo: str, sha: str) -> str:
    return f"/api/v1/repos/acme/{repo}/statuses/{sha}"


def gitlab_path(repo: str, sha: str) -> str:
    return f"/api/v4/projects/{GITLAB_IDS[f'acme/{repo}']}/statuses/{sha}"


def collapse(states: list[str], pending: tuple[str, ...] = ("pending",)) -> list[str]:
    """Repeated states once, the forge's in-progress states as ``pending``."""
    out: list[str] = []
    for state in states:
        shown = "pending" if state in pending else state
        if not out or out[-1] != shown:
            out.append(shown)
    return out


# -- the scenario -----------------------------------------------------------------------------------


@dataclass
class StatusRun:
    master: Master
    forge: RecordingForge
    lo: int
    hi: int
    shas: dict[str, str] = field(default_factory=dict)  # repository -> pushed revision
    rebuilt: dict[str, Any] = field(default_factory=dict)  # the rebuild of erp-pg<hi>

    @property
    def erp_cells(self) -> list[str]:
        return [f"erp-pg{self.lo}", f"erp-pg{self.hi}"]


def _make_repo(path: Path, buildout: str) -> None:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "buildout.cfg").write_text(buildout)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")


def _push(repo: Path, text: str) -> str:
    """A commit in the upstream repository, as a developer's push; its sha."""
    (repo / "CHANGES.txt").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", text)
    return git(repo, "rev-parse", "HEAD")


def _buildsets_of(master: Master, sha: str) -> list[int]:
    return [
        bs["bsid"]
        for bs in master.get("buildsets")["buildsets"]
        if any(ss["revision"] == sha for ss in bs["sourcestamps"])
    ]


def _wait_built(master: Master, shas: list[str], count: int) -> None:
    """Wait for ``count`` buildsets holding these revisions, then for all to complete."""
    master.wait(
        lambda: sum(len(_buildsets_of(master, sha)) for sha in shas) >= count,
        120,
        f"{count} buildsets for {shas}",
    )
    ids = [bsid for sha in shas for bsid in _buildsets_of(master, sha)]
    master.wait_buildsets(ids, timeout=600)


def _wait_state(run: StatusRun, what: str, check: Callable[[], bool]) -> None:
    def recorded() -> str:
        return "\n".join(f"{r.method} {r.path} {r.body}" for r in run.forge.snapshot())

    try:
        run.master.wait(check, 120, what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n--- recorded ---\n{recorded()}") from None


@pytest.fixture(scope="module")
def status_run(
    tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Any]
) -> Iterator[StatusRun]:
    majors = sorted(pg_clusters)
    if len(majors) < 2:
        pytest.fail(f"needs two PostgreSQL versions, ANYBOX_CI_PG_VERSIONS gave {majors}")
    lo, hi = majors[-2], majors[-1]
    root = tmp_path_factory.mktemp("commitstatus")
    flags = root / "flags"
    flags.mkdir()
    upstream = root / "forge"
    for name in REPOS:
        _make_repo(upstream / "acme" / f"{name}.git", "[buildout]\nparts =\n")
    mirrors = root / "mirrors"
    forge = RecordingForge()
    check = (
        "python3 -c \"import os, sys; p = os.path.join(sys.argv[1], sys.argv[2] + '-pg' + "
        "os.environ['PG_VERSION']); print('cell', 'fails' if os.path.exists(p) else 'passes'); "
        f'sys.exit(os.path.exists(p))" {flags}'
    )
    manifest = f"""
[DEFAULT]
post-buildout-steps = test-command

[erp]
buildout = git {FORGE_HOST}acme/erp.git main buildout.cfg
watch = git {FORGE_HOST}acme/addons.git main
build-for = postgresql >= {lo}
test-command = {check} erp
commit-status = github {forge.url} github-token

[crm]
buildout = git {FORGE_HOST}acme/crm.git main buildout.cfg
watch = git {FORGE_HOST}acme/addons.git main
build-for = postgresql == {hi}
test-command = {check} crm
commit-status = gitlab {forge.url} secret:gitlab-token

[shop]
buildout = git {FORGE_HOST}acme/shop.git main buildout.cfg
build-for = postgresql == {hi}
test-command = {check} shop
commit-status = gitea {forge.url} gitea-token

[misc]
buildout = git {FORGE_HOST}acme/misc.git main buildout.cfg
build-for = postgresql == {hi}
test-command = {check} misc
"""
    workers = f"""
[w1]
password = secret:worker-w1
db_prefix = cstatus
capability =
    {offer_line(pg_clusters[lo])}
    {offer_line(pg_clusters[hi])}
"""
    master = Master(root / "master")
    master.create(
        manifest,
        workers,
        secrets={
            "worker-w1": WORKER_PASSWORD,
            "change-hook-users": f"{HOOK_USER}:{HOOK_PASSWORD}",
            **{f"{forge_name}-token": token for forge_name, token in TOKENS.items()},
        },
    )
    # builds fetch from the mirrors; update-mirrors fetches "the forge" from local folders
    (master.basedir / "url-rewrites.cfg").write_text(
        f"{FORGE_HOST} -> file://{mirrors}/git/forge.example/\n"
    )
    upstream_rules = root / "upstream-rewrites.cfg"
    upstream_rules.write_text(f"{FORGE_HOST} -> file://{upstream}/\n")
    secret_file = root / "hook-secret"
    secret_file.write_text(HOOK_PASSWORD)
    secret_file.chmod(0o600)

    def update_mirrors() -> None:
        code = update_mirrors_main(
            ["--master", str(master.basedir), "--root", str(mirrors), "--rewrite-file",
             str(upstream_rules), "--notify", master.url, "--user", HOOK_USER,
             "--secret-file", str(secret_file)]
        )  # fmt: skip
        assert code == 0, "update-mirrors failed"

    worker = WorkerProcess(root / "w1", "w1", WORKER_PASSWORD, master.pb_port)
    run = StatusRun(master, forge, lo, hi)
    repo = {name: upstream / "acme" / f"{name}.git" for name in REPOS}
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")
        update_mirrors()  # the baseline: mirrors made, no change
        assert master.get("changes")["changes"] == []

        # 1. a push to each buildout's repository; erp's newest cell fails
        (flags / f"erp-pg{hi}").touch()
        for name in ("erp", "crm", "shop", "misc"):
            run.shas[name] = _push(repo[name], f"{name}: change 1")
        update_mirrors()
        _wait_built(master, [run.shas[n] for n in ("erp", "crm", "shop", "misc")], 4)
        erp = github_path("erp", run.shas["erp"])
        agg = aggregate_context("erp")
        _wait_state(run, "erp failure", lambda: "failure" in forge.states(erp, agg))

        # 2. the failing cell rebuilt (the UI's rebuild button): same sourcestamps
        (flags / f"erp-pg{hi}").unlink()
        failed = master.builds(f"erp-pg{hi}")[-1]
        bsid, _ = master.rpc(f"builds/{failed['buildid']}", "rebuild")
        master.wait_buildsets([bsid], timeout=600)
        run.rebuilt = master.builds(f"erp-pg{hi}")[-1]
        _wait_state(run, "erp success", lambda: forge.states(erp, agg)[-1:] == ["success"])

        # 3. a push to the second codebase, watched by erp and crm
        run.shas["addons"] = _push(repo["addons"], "addons: change 1")
        update_mirrors()
        _wait_built(master, [run.shas["addons"]], 2)

        # every status that must come, in its final state (posts follow the build events)
        finals = [
            (erp, cell, "context", "success") for cell in run.erp_cells
        ] + [
            (github_path("addons", run.shas["addons"]), c, "context", "success")
            for c in [*run.erp_cells, agg]
        ] + [
            (gitlab_path(r, run.shas[r]), c, "name", "success")
            for r in ("crm", "addons")
            for c in (f"crm-pg{hi}", aggregate_context("crm"))
        ] + [
            (gitea_path("shop", run.shas["shop"]), c, "context", "success")
            for c in (f"shop-pg{hi}", aggregate_context("shop"))
        ]  # fmt: skip
        for path, context, key, state in finals:
            _wait_state(
                run,
                f"{state} for {context} at {path}",
                lambda: forge.states(path, context, key)[-1:] == [state],  # noqa: B023
            )
        yield run
    finally:
        worker.stop()
        master.stop()
        forge.close()


# -- the checks ---------------------------------------------------------------------------------------


def test_each_cell_and_the_aggregate_report_on_the_pushed_sha(status_run: StatusRun) -> None:
    run = status_run
    path = github_path("erp", run.shas["erp"])
    lo_cell, hi_cell = run.erp_cells
    assert collapse(run.forge.states(path, lo_cell)) == ["pending", "success"]
    # the failing cell, then its rebuild: pending again, then success
    assert collapse(run.forge.states(path, hi_cell)) == ["pending", "failure", "pending", "success"]
    agg = aggregate_context("erp")
    assert collapse(run.forge.states(path, agg)) == ["pending", "failure", "pending", "success"]
    failure = next(r for r in run.forge.posts() if r.path == path and r.body["state"] == "failure"
                   and r.body["context"] == agg)  # fmt: skip
    assert hi_cell in failure.body["description"]
    # statuses link to the build on this master
    for posted in run.forge.posts():
        if posted.path == path:
            assert posted.body["target_url"].startswith(run.master.url), posted.body


def test_the_rebuild_kept_the_revision(status_run: StatusRun) -> None:
    run = status_run
    rebuilt = run.rebuilt
    assert rebuilt["results"] == 0, rebuilt["state_string"]
    got = rebuilt["properties"]["got_revision"][0]
    assert run.shas["erp"] in (got.values() if isinstance(got, dict) else [got])


def test_a_change_of_the_second_codebase_reports_on_its_repository(
    status_run: StatusRun,
) -> None:
    run = status_run
    sha = run.shas["addons"]
    path = github_path("addons", sha)
    contexts = {r.body["context"] for r in run.forge.posts() if r.path == path}
    assert contexts == {*run.erp_cells, aggregate_context("erp")}
    for context in contexts:
        assert collapse(run.forge.states(path, context)) == ["pending", "success"], context
    # GitHub got statuses for exactly two commits: erp's push and the addons push
    github = {r.path for r in run.forge.posts() if r.path.startswith("/repos/")}
    assert github == {github_path("erp", run.shas["erp"]), path}


def test_gitlab_and_gitea_buildouts_report_in_their_forges_terms(status_run: StatusRun) -> None:
    run = status_run
    crm_cell, shop_cell = f"crm-pg{run.hi}", f"shop-pg{run.hi}"
    for repo in ("crm", "addons"):
        path = gitlab_path(repo, run.shas[repo])
        for context in (crm_cell, aggregate_context("crm")):
            states = run.forge.states(path, context, key="name")
            assert collapse(states, ("pending", "running")) == ["pending", "success"], states
            assert "running" in states  # GitLab tells running from pending
        ref = {r.body.get("ref") for r in run.forge.posts() if r.path == path}
        assert ref == {"main"}
    path = gitea_path("shop", run.shas["shop"])
    for context in (shop_cell, aggregate_context("shop")):
        assert collapse(run.forge.states(path, context)) == ["pending", "success"]


def test_no_status_without_a_commit_status_line_nor_without_a_revision(
    status_run: StatusRun,
) -> None:
    run = status_run
    posts = run.forge.posts()
    assert posts
    assert not [r.path for r in posts if run.shas["misc"] in r.path]
    contexts = {r.body.get("context") or r.body.get("name") for r in posts}
    assert contexts == {
        *run.erp_cells,
        f"crm-pg{run.hi}",
        f"shop-pg{run.hi}",
        aggregate_context("erp"),
        aggregate_context("crm"),
        aggregate_context("shop"),
    }
    # a codebase that did not change has no revision: GitHub and Gitea post nothing for it
    assert not [r.path for r in posts if r.path.endswith(("/None", "/")) and "/v4/" not in r.path]


def test_gitlab_posts_nothing_for_a_codebase_without_a_revision(status_run: StatusRun) -> None:
    paths = {r.path for r in status_run.forge.snapshot() if r.path.startswith("/api/v4/")}
    assert not [path for path in paths if path.endswith(("/None", "/"))], sorted(paths)


def test_each_forge_gets_its_own_token_and_nothing_else_does(status_run: StatusRun) -> None:
    run = status_run
    recorded = run.forge.snapshot()
    for r in recorded:
        if r.path.startswith("/api/v4/"):
            assert r.headers.get("private-token") == TOKENS["gitlab"], r.path
            assert "authorization" not in r.headers
        elif r.path.startswith("/api/v1/"):
            assert r.headers.get("authorization") == f"token {TOKENS['gitea']}", r.path
        else:
            assert r.headers.get("authorization") == f"token {TOKENS['github']}", r.path
    master = run.master
    seen = [master.raw("builds?property=*"), master.log().encode()]
    for build in master.get("builds")["builds"]:
        for step in master.steps(build["buildid"]):
            for log in master.get(f"steps/{step['stepid']}/logs")["logs"]:
                seen.append(master.raw(f"logs/{log['logid']}/raw"))
    assert any(b"cell passes" in blob for blob in seen)  # the logs were really read
    for token in TOKENS.values():
        assert not [blob for blob in seen if token.encode() in blob]
        assert not [r for r in recorded if token in json.dumps(r.body) or token in r.path]
