"""D6: a user allowed to force builds cannot run commands on the worker.

A forced branch ``--upload-pack=CMD`` used to reach ``git fetch URL BRANCH`` on the worker.
The force form's branch, revision and tag fields now follow the ``core.vcs`` rules (a bad
value is a JSON-RPC error, no build is made), its repository is fixed (whatever is posted),
and the fetch step refuses any sourcestamp that fails the rules before a command runs.

Live: a real master and worker, forced through the JSON-RPC API as the web UI does. The
payload is a script that creates a marker file: it must never exist. The same master shows
D15 live: a watched URL's password never appears in ``/api/v2/forceschedulers``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from buildbot.schedulers.forcesched import ValidationError

from anybox_ci.core.model import Watch
from anybox_ci.core.vcs import codebase_name
from anybox_ci.devtools.localmaster import (
    Master,
    WorkerProcess,
    http_request,
    make_sample_repo,
    offer_line,
)
from anybox_ci.render.changes import CheckedParameter, force_scheduler
from anybox_ci.render.factory import SourceGuard

HOSTILE = ["--upload-pack=/tmp/evil.sh", "-u/tmp/evil.sh", "main\n--x", "a b", "..", "@{-1}"]


# ---------------------------------------------------------------- fields, without a master


def _fields(watch: Watch) -> dict[str, Any]:
    scheduler = force_scheduler(["b"], [watch])
    (codebase,) = scheduler._config_kwargs["codebases"]
    fields = {f.name: f for f in codebase.fields}
    (tag,) = scheduler._config_kwargs["properties"]
    fields["buildout-tag"] = tag
    return fields


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["branch", "revision", "buildout-tag"])
def test_force_fields_refuse_option_like_values(field: str, value: str) -> None:
    checked = _fields(Watch("git", "https://e.com/erp.git", "main"))[field]
    assert isinstance(checked, CheckedParameter)
    with pytest.raises(ValidationError, match="refused"):
        checked.parse_from_arg(value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("branch", "17.0"),
        ("branch", "feature/x"),
        ("revision", "0123456789abcdef0123456789abcdef01234567"),
        ("revision", "abc1234"),
        ("revision", "v1.2"),
        ("buildout-tag", "v1.2.3"),
        ("branch", ""),
    ],
)
def test_force_fields_accept_what_a_person_types(field: str, value: str) -> None:
    checked = _fields(Watch("git", "https://e.com/erp.git", "main"))[field]
    assert checked.parse_from_arg(value) == value


def test_fetch_guard_refuses_a_hostile_sourcestamp_before_any_command() -> None:
    """The last check: a sourcestamp that did not come through the form (a change, a
    rebuild of an old build) is refused by the fetch step's guard."""
    guard = SourceGuard({"erp": "git", "lib": "hg"})

    def build(*stamps: tuple[str, str, str]) -> Any:
        found = [SimpleNamespace(codebase=c, branch=b, revision=r) for c, b, r in stamps]
        return SimpleNamespace(getAllSourceStamps=lambda: found)

    assert guard.problems(build(("erp", "main", "a" * 40), ("lib", "default", ""))) == []
    assert guard.problems(build(("erp", "HEAD", None))) == []
    problems = guard.problems(build(("erp", "--upload-pack=/tmp/evil.sh", None)))
    assert problems and "refused" in problems[0]
    assert guard.problems(build(("lib", "default", "--config=hooks.x=y")))
    assert guard.problems(build(("other", None, "-u/tmp/x")))  # unknown codebase: git rules


@pytest.mark.parametrize(
    "value", [*HOSTILE, "pg99", "postgresql >= x", "", "a" * 300, ["pg15", "x"]]
)
def test_force_matching_refuses_anything_but_a_known_tag_or_filter(value: Any) -> None:
    from anybox_ci.core.selection import Target
    from anybox_ci.core.versions import Version
    from anybox_ci.render.changes import MatchingForceScheduler

    scheduler = MatchingForceScheduler.__new__(MatchingForceScheduler)
    scheduler.targets = (
        Target("erp-pg15", "erp", ("odoo", "pg15"), (("postgresql", Version.parse("15")),)),
    )
    if isinstance(value, list):
        assert scheduler.selection(value) == {"erp": ["erp-pg15"]}  # the first value only
        return
    with pytest.raises(ValidationError):
        scheduler.selection(value)


# ---------------------------------------------------------------- live


@pytest.mark.live
def test_forced_hostile_values_never_reach_a_command(
    tmp_path: Path, pg_clusters: dict[int, Any]
) -> None:
    cluster = pg_clusters[max(pg_clusters)]
    marker = tmp_path / "PWNED"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    erp = make_sample_repo("passing", tmp_path / "repos")
    url = f"file://{erp}"
    private = "https://ci:s3cret-token@127.0.0.1:9/private.git"
    manifest = f"""
[erp]
buildout = git {url} main buildout.cfg
watch = git {private} main
build-for = postgresql == {cluster.major}
post-buildout-steps = install-modules-test
odoo-addons = sample
"""
    workers = f"[w1]\npassword = secret:worker-w1\ncapability = {offer_line(cluster)}\n"
    master = Master(tmp_path / "master")
    # hook mode (a hook users file): no poller contacts the private URL
    master.create(
        manifest,
        workers,
        secrets={"worker-w1": "w1-pw-1234", "change-hook-users": "hook:hook-pw-1234"},
    )
    worker = WorkerProcess(tmp_path / "w1", "w1", "w1-pw-1234", master.pb_port)
    codebase = codebase_name(url, "main")
    builder = f"erp-pg{cluster.major}"
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")

        # D15: the force form shows the private URL masked
        shown = master.raw("forceschedulers").decode()
        assert "s3cret-token" not in shown
        assert "https://ci:***@127.0.0.1:9/private.git" in shown

        payload = f"--upload-pack={script}"
        builderid = str(master.builder_ids()[builder])
        for field in (f"{codebase}_branch", f"{codebase}_revision", "buildout-tag"):
            body = {
                "jsonrpc": "2.0",
                "method": "force",
                "id": 1,
                "params": {"builderid": builderid, field: payload},
            }
            status, answer = http_request(
                master.url + "api/v2/forceschedulers/force-erp", body=body
            )
            assert status == 400, answer
            assert "refused" in json.dumps(json.loads(answer)["error"]), answer
        assert master.builds(builder) == []  # no build was even requested

        # the repository field is fixed: a posted one is ignored, the build fetches the
        # manifest's repository and succeeds
        bsid = master.force(builder, **{f"{codebase}_repository": payload})
        master.wait_buildsets([bsid], 300)
        (build,) = master.builds(builder)
        assert build["results"] == 0, build["state_string"]
        buildset = master.get(f"buildsets/{bsid}")["buildsets"][0]
        stamps = {s["codebase"]: s["repository"] for s in buildset["sourcestamps"]}
        assert stamps[codebase] == url
        fetch_log = master.step_log(build["buildid"], f"fetch_buildout-{codebase}")
        assert "upload-pack" not in fetch_log
    finally:
        worker.stop()
        master.stop()
    assert not marker.exists()
