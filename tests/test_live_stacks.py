"""Stacks live: a real master, real workers and real git repositories, through the manifest.

Two light buildouts (``core`` and ``web``, each in its own repository) form ``[domain:erp]``,
whose acceptance rebuilds both at the stack's revisions and runs an install test on two
target workers (``linux`` offered by ``target-debian`` and ``target-ubuntu``). ``core`` makes
releases (``post-buildout-steps = packaging``): its archive is uploaded to the master's
``releases/`` with its SHA-256, which the stack records; the install targets take it from the
master, check that hash and extract it. ``web`` has no archive: it is checked out at its
pinned revision. Web's install check (``check_install.py``) reads core's extracted release
and is the one thing that differs between the targets: version 2 drops Ubuntu, so its install
test fails there on purpose.

The scenario, in order (one module-scoped master; each step waits on the REST API):
1. green builds of both members become *unstable* candidates; core's with its archive and
   the SHA-256 its build computed on the master;
2. acceptance freezes stack 1 (``stack show`` and ``export`` give core's archive and hash),
   the targets install it with the hash verified, it is promoted to *stable*;
3. a change to web reaches unstable; acceptance freezes stack 2: the Ubuntu target fails, the
   parent is red, *stable* stays on stack 1 and *testing* is 2;
4. ``anybox-ci stack list``, ``show 1`` and ``diff 1 2`` are printed (quoted in the closing
   note); an admin promotion through the CLI is recorded with its author;
5. core's archive is tampered with on the master: a rebuild of stack 1's Debian install
   turns red with the one-line hash mismatch, nothing extracted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.cli.stack import main as stack_main
from anybox_ci.core.selection import force_scheduler_name
from anybox_ci.devtools.localmaster import Master, WorkerProcess, git, http_request
from anybox_ci.render.cells import real_builder_name

pytestmark = pytest.mark.live

PASSWORDS = {"builder": "b-Stack-pw-1", "target-debian": "d-Stack-pw-2", "target-ubuntu": "u-pw-3"}
PAGE = "plugins/wsgi_dashboards/anybox-stacks/"
#: what web's install check reads of core's release, extracted from its archive
CORE_RELEASE = (
    "import sys\n"
    "open('core/anybox-ci-release.cfg').close()\n"
    "print('core release:', open('core/release.txt').read().strip(), 'with', sys.argv[1:])\n"
)
CHECK_V1 = CORE_RELEASE
CHECK_V2 = (
    CORE_RELEASE + "import os\n"
    "if os.environ['ANYBOX_CI_TARGET_WORKER'] == 'target-ubuntu':\n"
    "    sys.exit('web 2 does not install on Ubuntu')\n"
)
ARCHIVE = "releases/core-0.0.1.tar.gz"
FETCH_CORE = "fetch_core"


def _repo(root: Path, name: str, check: str | None = None, release: bool = False) -> Path:
    repo = root / name
    repo.mkdir(parents=True)
    if release:  # a develop egg: buildout writes .installed.cfg, which packaging reads
        (repo / "buildout.cfg").write_text("[buildout]\ndevelop = .\nparts =\n")
        (repo / "setup.py").write_text(
            f"from setuptools import setup\nsetup(name={name!r}, version='1', py_modules=[])\n"
        )
    else:
        (repo / "buildout.cfg").write_text("[buildout]\nparts =\n")
    (repo / "release.txt").write_text(f"{name} 1\n")
    if check is not None:
        (repo / "check_install.py").write_text(check)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"{name} 1")
    return repo


@dataclass
class Scenario:
    master: Master
    core: Path
    web: Path
    #: ``virtual_builders=True``: the members' cells are virtual builders (render.cells)
    virtual: bool = False

    def page(self, path: str) -> Any:
        status, body = http_request(self.master.url + PAGE + path)
        assert status == 200, body
        return json.loads(body)

    def newest_candidate(self, buildout: str) -> dict[str, Any] | None:
        found = self.page(f"api/candidates/{buildout}")["candidates"]
        return found[0] if found else None

    def build(self, builder: str, scheduler: str = "") -> dict[str, Any]:
        # a virtual cell is forced through its buildout's real builder
        forced = real_builder_name(builder) if self.virtual and not scheduler else builder
        bsid = self.master.force(forced, scheduler=scheduler or force_scheduler_name(builder))
        self.master.wait_buildsets([bsid], timeout=400)
        builds = self.master.get(f"buildsets/{bsid}")["buildsets"][0]
        assert builds["complete"]
        (build,) = [
            b for b in self.master.builds(builder) if b["buildrequestid"] in self._requests(bsid)
        ]
        return build

    def _requests(self, bsid: int) -> set[int]:
        found = self.master.get(f"buildrequests?buildsetid={bsid}")["buildrequests"]
        return {r["buildrequestid"] for r in found}

    def green_candidate(self, buildout: str, revision: str) -> dict[str, Any]:
        build = self.build(buildout)
        assert build["results"] == 0, build["state_string"]

        def recorded() -> bool:
            newest = self.newest_candidate(buildout)
            return newest is not None and newest["revisions"][0]["revision"] == revision

        self.master.wait(recorded, 60, f"the candidate of {buildout} at {revision}")
        found = self.newest_candidate(buildout)
        assert found is not None
        return found

    def step(self, build: dict[str, Any], name: str) -> dict[str, Any]:
        (found,) = [s for s in self.master.steps(build["buildid"]) if s["name"] == name]
        return found

    def installs(self, target: str) -> list[dict[str, Any]]:
        return sorted(self.master.builds(f"erp-install-{target}"), key=lambda b: b["number"])

    def channels(self) -> dict[str, int]:
        (domain,) = self.page("api/stacks?domain=erp")["domains"]
        return dict(domain["channels"])

    def stack_cli(self, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
        capsys.readouterr()
        code = stack_main(["--master", str(self.master.basedir), *args])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out


@pytest.fixture(scope="module", params=[False, True], ids=["cell-builders", "virtual-builders"])
def scenario(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Scenario]:
    virtual: bool = request.param
    root = tmp_path_factory.mktemp("stacks")
    core = _repo(root / "repos", "core", release=True)
    web = _repo(root / "repos", "web", CHECK_V1)
    manifest = f"""
[DEFAULT]
db-steps =
post-buildout-steps = test-command
test-command = cat release.txt

[core]
buildout = git file://{core} main buildout.cfg
post-buildout-steps = test-command
    packaging
packaging.upload-dir = releases

[web]
buildout = git file://{web} main buildout.cfg

[domain:erp]
members = core web
acceptance-steps = members
    install-test
install-test.targets = linux
install-test.command = python3 web/check_install.py core web
"""
    workers = (
        "[builder]\npassword = secret:worker-builder\n\n"
        "[target-debian]\npassword = secret:worker-target-debian\ncapability = linux 12\n"
        "build-only-if-requires = linux\n\n"
        "[target-ubuntu]\npassword = secret:worker-target-ubuntu\ncapability = linux 24.04\n"
        "build-only-if-requires = linux\n"
    )
    master = Master(root / "master")
    if virtual:
        master.env["ANYBOX_CI_VIRTUAL_BUILDERS"] = "1"
    master.create(manifest, workers, secrets={f"worker-{k}": v for k, v in PASSWORDS.items()})
    processes = [
        WorkerProcess(root / name, name, password, master.pb_port)
        for name, password in PASSWORDS.items()
    ]
    try:
        master.start()
        for p in processes:
            p.start()
        master.wait(lambda: master.connected_workers() == set(PASSWORDS), 90, "workers")
        yield Scenario(master, core, web, virtual)
    finally:
        for p in processes:
            p.stop()
        master.stop()


def test_stacks_from_unstable_to_stable_and_a_red_acceptance(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    core_1 = git(scenario.core, "rev-parse", "HEAD")
    web_1 = git(scenario.web, "rev-parse", "HEAD")
    core = scenario.green_candidate("core", core_1)
    web = scenario.green_candidate("web", web_1)
    # core's candidate is the archive its build uploaded, with the hash computed on the master
    on_master = scenario.master.basedir / ARCHIVE
    sha = hashlib.sha256(on_master.read_bytes()).hexdigest()
    (core_build,) = scenario.master.builds("core")
    assert core_build["properties"]["archive_sha256"][0] == sha
    assert (core["artefact"], core["artefact_sha256"]) == (ARCHIVE, sha)
    assert (web["artefact"], web["artefact_sha256"]) == ("", "")

    first = scenario.build("erp-acceptance", "stack-acceptance-erp")
    assert first["results"] == 0, first["state_string"]
    assert first["properties"]["anybox_ci_stack"][0] == 1
    assert scenario.channels() == {"testing": 1, "stable": 1}
    stack_1 = scenario.page("api/stacks/erp/1")
    assert {m["buildout"]: m["revisions"][0]["revision"] for m in stack_1["members"]} == {
        "core": core_1,
        "web": web_1,
    }
    # every target took core's archive from the master and verified its recorded hash
    for target in ("target-debian", "target-ubuntu"):
        (install,) = scenario.installs(target)
        assert install["results"] == 0, install["state_string"]
        fetched = scenario.step(install, FETCH_CORE)["state_string"]
        assert fetched.startswith("archive: ") and fetched.endswith("into core, sha256 verified")
        log = scenario.master.step_log(install["buildid"], "install_test")
        assert "core release: core 1 with ['core', 'web']" in log
    shown = scenario.stack_cli("show", "1", capsys=capsys)
    assert f"    artefact: {ARCHIVE} sha256={sha}" in shown

    released_at = on_master.stat().st_mtime_ns
    # a change to web reaches unstable; acceptance of stack 2 fails on one install target
    (scenario.web / "release.txt").write_text("web 2\n")
    (scenario.web / "check_install.py").write_text(CHECK_V2)
    git(scenario.web, "commit", "-q", "-am", "web 2: Ubuntu is not supported any more")
    web_2 = git(scenario.web, "rev-parse", "HEAD")
    scenario.green_candidate("web", web_2)

    second = scenario.build("erp-acceptance", "stack-acceptance-erp")
    assert second["results"] == 2, second["state_string"]
    assert second["properties"]["anybox_ci_stack"][0] == 2
    assert scenario.channels() == {"testing": 2, "stable": 1}
    installs = {
        name: scenario.installs(name)[-1]["results"] for name in ("target-debian", "target-ubuntu")
    }
    assert installs == {"target-debian": 0, "target-ubuntu": 2}
    # core's acceptance build tested it without releasing it: the recorded archive is untouched
    assert hashlib.sha256(on_master.read_bytes()).hexdigest() == sha
    assert on_master.stat().st_mtime_ns == released_at
    core_2 = [
        b
        for b in scenario.master.builds("core")
        if b["properties"].get("anybox_ci_stack", [None])[0] == 2
    ]
    assert core_2
    skipped = {s["name"]: s["results"] for s in scenario.master.steps(core_2[-1]["buildid"])}
    assert skipped["upload_package"] == 3 and skipped["archive_sha256"] == 3, skipped
    # the member builds of stack 2 ran at its pinned revisions
    web_builds = scenario.master.builds("web")
    pinned = [b for b in web_builds if b["properties"].get("anybox_ci_stack", [None])[0] == 2]
    assert pinned
    got = pinned[-1]["properties"]["got_revision"][0]
    assert (list(got.values()) if isinstance(got, dict) else [got]) == [web_2]

    listing = scenario.stack_cli("list", capsys=capsys)
    changes = scenario.stack_cli("diff", "1", "2", capsys=capsys)
    with capsys.disabled():  # shown in the test's output (the closing note quotes it)
        print(
            f"\n$ anybox-ci stack list\n{listing}$ anybox-ci stack show 1\n{shown}"
            f"$ anybox-ci stack diff 1 2\n{changes}"
        )
    assert listing.splitlines()[0].split()[:3] == ["erp", "2", "testing"]
    assert listing.splitlines()[1].split()[:3] == ["erp", "1", "stable"]
    assert "~ web 0.0.1 -> 0.0.2" in changes and f": {web_1[:12]} -> {web_2[:12]}" in changes
    assert "core" not in changes

    exported = scenario.stack_cli("export", "1", capsys=capsys)
    assert f"rev={core_1}" in exported and "[versions]" in exported
    assert f"\n[anybox-ci-artefacts]\ncore = {ARCHIVE} sha256={sha}\n" in exported
    as_json = json.loads(scenario.stack_cli("export", "1", "--format", "json", capsys=capsys))
    assert [(m["artefact"], m["artefact_sha256"]) for m in as_json["members"]] == [
        (ARCHIVE, sha),
        ("", ""),
    ]

    # an admin's forced promotion, then the rollback, both recorded with their author
    out = scenario.stack_cli("promote", "2", "stable", "--author", "admin", capsys=capsys)
    assert "stack 2 is stable (was 1), by admin" in out
    scenario.stack_cli("promote", "1", "stable", "--author", "admin", capsys=capsys)
    assert scenario.channels() == {"testing": 2, "stable": 1}

    # the archive changes on the master after it was recorded: its install refuses it
    data = bytearray(on_master.read_bytes())
    data[len(data) // 2] ^= 0xFF
    on_master.write_bytes(bytes(data))
    first_install = scenario.installs("target-debian")[0]
    scenario.master.rpc(f"builds/{first_install['buildid']}", "rebuild")
    scenario.master.wait(
        lambda: (
            len(scenario.installs("target-debian")) == 3
            and scenario.installs("target-debian")[-1]["complete"]
        ),
        120,
        "the rebuild of stack 1's Debian install",
    )
    rebuilt = scenario.installs("target-debian")[-1]
    assert rebuilt["results"] == 2, rebuilt["state_string"]
    assert rebuilt["properties"]["anybox_ci_stack"][0] == 1
    assert scenario.step(rebuilt, FETCH_CORE)["state_string"] == (
        f"archive fetch failed: sha256 mismatch: got {hashlib.sha256(data).hexdigest()}, "
        f"expected {sha}; nothing extracted"
    )
    assert "install_test" not in [s["name"] for s in scenario.master.steps(rebuilt["buildid"])]
