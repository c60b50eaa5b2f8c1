"""Commit statuses per buildout: one per cell, plus the aggregate ``anybox-ci/<buildout>``.

The forge is a test double: a small local HTTP server that records the requests and answers like
GitHub, Gitea or GitLab, whose commit status APIs cannot exist offline, so the test checks what a
real master sends them. It is one of the project's few doubles, each standing for something out
of reach (others: the recording hook server of test_notify.py, Buildbot's fake worker in the step
tests of test_render.py, the slow git wrapper of test_mirrors.py, the patched port function of
test_build_utils_ports.py). Everything else here is real: the live tests run a Buildbot master
process (``buildbot create-master`` + ``buildbot start``) with a local worker, a secrets folder
holding the token, and builds triggered through the ``/change_hook/base`` hook and the force
scheduler's JSON-RPC API.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from buildbot.plugins import util
from buildbot.process import results as buildbot_results
from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS

from anybox_ci.devtools.localmaster import Master
from anybox_ci.render.reporters import aggregate as pure
from anybox_ci.render.reporters import status_reporters
from anybox_ci.render.reporters.aggregate import (
    BuildoutCells,
    CellState,
    aggregate_context,
    revision_key,
    state_of_build,
)
from anybox_ci.render.reporters.forges import GiteaStatusPush

# -- pure parts ---------------------------------------------------------------------------------

REV: tuple[tuple[str, str, str], ...] = (("", "https://example.org/acme/erp.git", "a" * 40),)


def test_aggregate_pending_then_failure_then_success_on_rerun() -> None:
    cells = BuildoutCells(["erp-pg15", "erp-pg17"])
    assert cells.aggregate(REV) is None
    cells.update(REV, "erp-pg15", CellState(1))
    cells.update(REV, "erp-pg17", CellState(2))
    agg = cells.aggregate(REV)
    assert agg is not None and not agg.complete and not agg.started

    cells.update(REV, "erp-pg15", CellState(1, started=True))
    agg = cells.aggregate(REV)
    assert agg is not None and not agg.complete and agg.started

    cells.update(REV, "erp-pg15", CellState(1, started=True, complete=True, results=SUCCESS))
    cells.update(REV, "erp-pg17", CellState(2, started=True, complete=True, results=FAILURE))
    agg = cells.aggregate(REV)
    assert agg is not None and agg.complete and agg.results == FAILURE
    assert "erp-pg17 (failure)" in agg.description

    # A stale event for the same request does not bring the cell back.
    cells.update(REV, "erp-pg17", CellState(2))
    assert cells.cells(REV)["erp-pg17"].complete

    # A newer request for the cell (force, rebuild) makes the revision pending again.
    cells.update(REV, "erp-pg17", CellState(7))
    agg = cells.aggregate(REV)
    assert agg is not None and not agg.complete
    cells.update(REV, "erp-pg17", CellState(7, started=True, complete=True, results=WARNINGS))
    agg = cells.aggregate(REV)
    assert agg is not None and agg.complete and agg.results == WARNINGS
    assert agg.description == "all 2 cells passed"


def test_aggregate_ignores_other_builders_and_takes_worst() -> None:
    cells = BuildoutCells(["a", "b"])
    cells.update(REV, "other", CellState(1, complete=True, results=FAILURE))
    assert cells.aggregate(REV) is None
    cells.update(REV, "a", CellState(2, complete=True, results=EXCEPTION))
    cells.update(REV, "b", CellState(3, complete=True, results=CANCELLED))
    agg = cells.aggregate(REV)
    assert agg is not None and agg.results == CANCELLED


def test_aggregate_forgets_oldest_revisions() -> None:
    cells = BuildoutCells(["a"], max_revisions=2)
    revs = [(("", "r", str(i)),) for i in range(3)]
    for i, rev in enumerate(revs):
        cells.update(rev, "a", CellState(i))
    assert cells.aggregate(revs[0]) is None
    assert cells.aggregate(revs[2]) is not None


def test_revision_key_keeps_only_sourcestamps_with_a_revision() -> None:
    sourcestamps: list[dict[str, Any]] = [
        {"codebase": "addons", "repository": "r2", "revision": "b" * 40},
        {"codebase": "", "repository": "r1", "revision": "a" * 40},
        {"codebase": "other", "repository": "r3", "revision": None},
    ]
    assert revision_key(sourcestamps) == (("", "r1", "a" * 40), ("addons", "r2", "b" * 40))
    assert revision_key([{"codebase": "", "repository": "r", "revision": ""}]) == ()


def test_status_reporters_refuse_plain_tokens_and_unknown_forges() -> None:
    with pytest.raises(ValueError, match="secret"):
        status_reporters("github", "https://api.github.com", "ghp_plain", ["a"], "erp")
    with pytest.raises(ValueError, match="unknown forge"):
        status_reporters("bitbucket", "https://x", util.Secret("t"), ["a"], "erp")
    with pytest.raises(ValueError, match="no builders"):
        status_reporters("github", "https://x", util.Secret("t"), [], "erp")


def test_status_reporters_names_are_unique_per_buildout() -> None:
    token = util.Interpolate("%(secret:forge_token)s")
    erp = status_reporters("gitea", "https://gitea.example", token, ["erp-pg15"], "erp")
    crm = status_reporters("gitea", "https://gitea.example", token, ["crm-pg15"], "crm")
    names = [r.name for r in erp + crm]
    assert len(set(names)) == 4
    assert isinstance(erp[0], GiteaStatusPush)
    assert aggregate_context("erp") == "anybox-ci/erp"


# -- the recording forge --------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class RecordingForge:
    """Records every request; answers status posts with 201 and GitLab project look-ups."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        forge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real forges (treq pools connections)

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with forge.lock:
                    forge.requests.append(
                        Recorded(self.command, self.path, dict(self.headers.items()), body)
                    )

            def _answer(self, code: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._record()
                if self.path.startswith("/api/v4/projects/"):
                    self._answer(200, {"id": 42, "path_with_namespace": "acme/erp"})
                else:
                    self._answer(404, {"message": "not found"})

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

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- per-forge vocabulary -------------------------------------------------------------------------


@dataclass(frozen=True)
class Forge:
    name: str
    status_path: str  # with {sha}
    context_key: str
    success: str
    failure: str
    pending: tuple[str, ...]
    auth_header: str
    auth_prefix: str

    def statuses(self, recorded: list[Recorded], sha: str) -> list[Recorded]:
        path = self.status_path.format(sha=sha)
        return [r for r in recorded if r.method == "POST" and r.path == path]

    def states(self, recorded: list[Recorded], sha: str, context: str) -> list[str]:
        return [
            r.body["state"]
            for r in self.statuses(recorded, sha)
            if r.body.get(self.context_key) == context
        ]


FORGES = {
    "github": Forge(
        "github",
        "/repos/acme/erp/statuses/{sha}",
        "context",
        "success",
        "failure",
        ("pending",),
        "Authorization",
        "token ",
    ),
    "gitea": Forge(
        "gitea",
        "/api/v1/repos/acme/erp/statuses/{sha}",
        "context",
        "success",
        "failure",
        ("pending",),
        "Authorization",
        "token ",
    ),
    "gitlab": Forge(
        "gitlab",
        "/api/v4/projects/42/statuses/{sha}",
        "name",
        "success",
        "failed",
        ("pending", "running"),
        "Private-Token",  # GitLab's own header, not Authorization
        "",
    ),
}


def _collapse(states: list[str]) -> list[str]:
    out: list[str] = []
    for state in states:
        if not out or out[-1] != state:
            out.append(state)
    return out


# -- the live master ------------------------------------------------------------------------------

MASTER_CFG = """\
import sys
from buildbot.plugins import schedulers, secrets, steps, util, worker
from anybox_ci.render.reporters import status_reporters

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['title'] = 'statuses live test'
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['protocols'] = {{'null': {{}}}}
c['workers'] = [worker.LocalWorker('local1')]
c['secretsProviders'] = [secrets.SecretInAFile(dirname={secrets_dir!r})]

# A cell fails while the file FLAGS/<buildername> exists.
code = (
    'import os, sys; failing = os.path.exists(os.path.join(*sys.argv[1:]));'
    'print("cell says", "fail" if failing else "ok"); sys.exit(failing)'
)
factory = util.BuildFactory([
    steps.ShellCommand(
        name='test', command=[sys.executable, '-c', code, {flags!r}, util.Property('buildername')],
    ),
])

erp = ['erp-pg15', 'erp-pg17']
c['builders'] = [
    util.BuilderConfig(name=name, workernames=['local1'], factory=factory)
    for name in erp + ['crm-pg15']
]
c['schedulers'] = [
    schedulers.SingleBranchScheduler(
        name='erp', change_filter=util.ChangeFilter(project='acme/erp'),
        treeStableTimer=None, builderNames=erp),
    schedulers.SingleBranchScheduler(
        name='crm', change_filter=util.ChangeFilter(project='acme/crm'),
        treeStableTimer=None, builderNames=['crm-pg15']),
    schedulers.ForceScheduler(name='force', builderNames=erp + ['crm-pg15']),
]
c['services'] = status_reporters(
    {forge!r}, {base_url!r}, util.Secret('forge_token'), erp, 'erp')
c['www'] = {{'port': {port}, 'change_hook_dialects': {{'base': True}}}}
"""


def _change(master: Master, project: str, revision: str) -> None:
    form = {
        "repository": f"https://forge.example/{project}.git",
        "project": project,
        "branch": "main",
        "revision": revision,
        "author": "Dev <dev@example.org>",
        "comments": "a change",
        "files": json.dumps(["setup.py"]),
    }
    status, body = master.post("change_hook/base", fields=form)
    assert status == 200, body


def _wait(
    what: str,
    predicate: Callable[[], bool],
    master: Master,
    timeout: float = 60,
    extra: Callable[[], Any] = lambda: "",
) -> None:
    try:
        master.wait(predicate, timeout, what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{extra()}") from None


@pytest.fixture
def forge_server() -> Iterator[RecordingForge]:
    server = RecordingForge()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.live
@pytest.mark.parametrize("forge_name", ["github", "gitea", "gitlab"])
def test_live_statuses(tmp_path: Path, forge_server: RecordingForge, forge_name: str) -> None:
    forge = FORGES[forge_name]
    token = "tok-" + secrets.token_hex(16)
    flags = tmp_path / "flags"
    flags.mkdir()
    master = Master(tmp_path / "master")
    cfg = MASTER_CFG.format(
        port=master.www_port,
        secrets_dir=str(master.basedir / "secrets"),
        forge=forge_name,
        base_url=forge_server.url,
        flags=str(flags),
    )
    master.create(secrets={"forge_token": token}, config=cfg)
    aggregate = aggregate_context("erp")
    sha1, sha2 = "1" * 40, "2" * 40
    with master.running():

        def final(sha: str, state: str, count: int = 1) -> Callable[[], bool]:
            return lambda: (
                forge.states(forge_server.snapshot(), sha, aggregate).count(state) >= count
            )

        def recorded_text() -> str:
            return "\n".join(f"{r.method} {r.path} {r.body}" for r in forge_server.snapshot())

        # Revision 1: erp-pg17 fails.
        (flags / "erp-pg17").touch()
        _change(master, "acme/erp", sha1)
        _wait("aggregate failure", final(sha1, forge.failure), master, extra=recorded_text)
        # The same revision, erp-pg17 forced again: it passes now.
        (flags / "erp-pg17").unlink()
        master.force(
            "erp-pg17",
            reason="re-run",
            repository="https://forge.example/acme/erp.git",
            project="acme/erp",
            branch="main",
            revision=sha1,
        )
        _wait(
            "aggregate success after re-run",
            final(sha1, forge.success),
            master,
            extra=recorded_text,
        )
        # Revision 2 passes everywhere; crm builds too, without statuses.
        (flags / "crm-pg15").touch()
        _change(master, "acme/erp", sha2)
        _change(master, "acme/crm", sha2)
        _wait("aggregate success", final(sha2, forge.success), master, extra=recorded_text)
        _wait(
            "the crm build",
            lambda: any(b["complete"] for b in master.get("builders/crm-pg15/builds")["builds"]),
            master,
        )
        # Let the last events (crm, late cell statuses) be handled before looking.
        time.sleep(1)
        recorded = forge_server.snapshot()

        # One status per cell, pending first, then the cell's own result.
        pending = set(forge.pending)
        pg15 = forge.states(recorded, sha1, "erp-pg15")
        assert pg15[0] == "pending" and set(pg15[:-1]) <= pending, pg15
        assert pg15[-1] == forge.success, pg15
        pg17 = forge.states(recorded, sha1, "erp-pg17")
        assert pg17[0] == "pending" and forge.failure in pg17, pg17
        # ... failure, then the forced re-run: pending again, then success.
        after_failure = pg17[pg17.index(forge.failure) + 1 :]
        assert after_failure[0] == "pending" and after_failure[-1] == forge.success, pg17
        for cell in ("erp-pg15", "erp-pg17"):
            states = forge.states(recorded, sha2, cell)
            assert states[0] == "pending" and states[-1] == forge.success, (cell, states)

        # The aggregate, under its stable context: pending while cells run, failure once all
        # are done and one failed, pending again during the re-run, success at last.
        agg1 = _collapse([s if s not in pending else "pending" for s in
                          forge.states(recorded, sha1, aggregate)])  # fmt: skip
        assert agg1 == ["pending", forge.failure, "pending", forge.success], agg1
        agg2 = _collapse([s if s not in pending else "pending" for s in
                          forge.states(recorded, sha2, aggregate)])  # fmt: skip
        assert agg2 == ["pending", forge.success], agg2
        if forge_name == "gitlab":
            assert "running" in forge.states(recorded, sha1, aggregate)

        # Nothing but the erp cells and the erp aggregate; nothing for crm.
        contexts = {
            r.body.get(forge.context_key)
            for r in recorded
            if r.method == "POST" and isinstance(r.body, dict)
        }
        assert contexts == {"erp-pg15", "erp-pg17", aggregate}
        assert all("crm" not in r.path for r in recorded)
        for r in forge.statuses(recorded, sha1):
            assert r.body["target_url"].startswith(master.url)

        # The token is in the auth header of every request, and nowhere else.
        for r in recorded:
            assert r.headers.get(forge.auth_header) == forge.auth_prefix + token, r.headers
            assert token not in json.dumps(r.body)
            assert token not in r.path
        # ... not in build properties or logs, not in the master's log.
        seen = [master.raw("builds?property=*")]
        for build in master.get("builds")["builds"]:
            seen.append(master.raw(f"builds/{build['buildid']}/properties"))
            for step in master.get(f"builds/{build['buildid']}/steps")["steps"]:
                for log in master.get(f"steps/{step['stepid']}/logs")["logs"]:
                    seen.append(master.raw(f"logs/{log['logid']}/raw"))
        assert len(seen) > 10
        assert any(b"cell says" in blob for blob in seen)  # the logs were really read
        for blob in seen:
            assert token.encode() not in blob
        assert token not in master.log()
        assert "Traceback" not in master.log()


def test_results_codes_used_by_the_aggregate_are_buildbots() -> None:
    # RETRY means "queued again": the cell stays pending instead of counting as a result.
    state = state_of_build(3, {"complete": True, "results": RETRY, "started_at": 1})
    assert not state.complete and state.started
    state = state_of_build(3, {"complete": True, "results": SUCCESS, "started_at": 1})
    assert state.complete and state.results == SUCCESS

    # The pure module spells Buildbot's codes, names and "worst" order itself.
    for code, name in enumerate(buildbot_results.Results):
        assert getattr(pure, name.upper()) == code
        assert pure.RESULT_NAMES[code] == name
    codes = [*buildbot_results.ALL_RESULTS, None]
    for a in codes:
        for b in codes:
            assert pure.worst_result([a, b]) == buildbot_results.worst_status(a, b), (a, b)
