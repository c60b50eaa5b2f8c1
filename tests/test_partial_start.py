"""One broken buildout does not take down the others when a master starts.

The policy (docs/admin.md, "One broken buildout"): a master that STARTS with a broken
buildout section leaves it out, runs every other buildout and logs the broken one with its
``FILE:LINE`` reason; a RECONFIG of a running master with any error keeps the running
configuration; any error that is not one section's (a workers file, URL rewrites) refuses
the configuration; ``anybox-ci check`` exits 1 in every case. The last test proves it on a
real ``buildbot`` master.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from buildbot.config.errors import ConfigErrors
from buildbot.config.master import MasterConfig

from anybox_ci import cli
from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.devtools.localmaster import Master, tool_env
from anybox_ci.render.stepsets import DEFAULT_STEP_SETS, StepContext

GOOD = """\
[alpha]
buildout = standalone alpha.cfg
build-for = postgresql
"""

BROKEN = """
[beta]
buildout = standalone missing.cfg

[gamma]
buildout = standalone alpha.cfg
post-buildout-steps = install-modules-tset

[delta]
inherit = gamma
"""

WORKERS = """\
[w1]
password = secret:worker-w1
capability =
    postgresql 15 port=5432
    postgresql 17 port=5433
"""


def master_dir(root: Path, manifest: str = GOOD + BROKEN, workers: str = WORKERS) -> Path:
    root = root.resolve()
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "alpha.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(workers)
    return root


def base_config(configurator: AnyboxConfigurator, **more: Any) -> dict[str, Any]:
    return {
        "configurators": [configurator],
        "protocols": {"pb": {"port": "tcp:0"}},
        "buildbotNetUsageData": None,
        **more,
    }


def reasons(root: Path) -> dict[str, str]:
    m = root / "buildouts" / "MANIFEST.cfg"
    return {
        "beta": f"{m}:6: [beta] buildout: buildout file 'missing.cfg' not found in "
        f"{root}/buildouts",
        # inherited: the line is gamma's
        "delta": f"{m}:10: [delta] post-buildout-steps: unknown step set "
        "'install-modules-tset' (did you mean install-modules-test?)",
        "gamma": f"{m}:10: [gamma] post-buildout-steps: unknown step set "
        "'install-modules-tset' (did you mean install-modules-test?)",
    }


def test_leave_out_runs_the_other_buildouts(tmp_path: Path) -> None:
    root = master_dir(tmp_path)
    configurator = AnyboxConfigurator(root, broken_sections="leave-out")
    config = MasterConfig.loadFromDict(base_config(configurator), "master.cfg")
    assert sorted(b.name for b in config.builders) == ["alpha-pg15", "alpha-pg17"]
    assert configurator.loaded is not None
    broken = {b.buildout: b.reason for b in configurator.loaded.matrix.broken}
    assert broken == reasons(root)


def test_refuse_and_auto_outside_a_running_master_refuse(tmp_path: Path) -> None:
    """``auto`` refuses unless a master is starting (no reactor runs here: this is what
    ``buildbot checkconfig`` does)."""
    root = master_dir(tmp_path)
    for policy in ("refuse", "auto"):
        with pytest.raises(ConfigErrors) as info:
            MasterConfig.loadFromDict(
                base_config(AnyboxConfigurator(root, broken_sections=policy)), "master.cfg"
            )
        assert info.value.errors[:3] == [
            reasons(root)["beta"],
            reasons(root)["gamma"],
            reasons(root)["delta"],
        ]


def test_an_error_outside_the_sections_refuses_everything(tmp_path: Path) -> None:
    root = master_dir(tmp_path, workers=WORKERS + "max_builds = many\n")
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(
            base_config(AnyboxConfigurator(root, broken_sections="leave-out")), "master.cfg"
        )
    assert f"{root}/workers.cfg:6: [w1] max_builds: expected an integer, got 'many'" in (
        info.value.errors
    )


def test_a_step_set_refusing_its_buildout_leaves_it_out(tmp_path: Path) -> None:
    mine = DEFAULT_STEP_SETS.copy()

    @mine.register("post-buildout-steps", "picky")
    def picky(ctx: StepContext) -> list[Any]:
        raise ValueError("picky refuses this buildout")

    root = master_dir(
        tmp_path,
        GOOD + "\n[epsilon]\nbuildout = standalone alpha.cfg\npost-buildout-steps = picky\n",
    )
    configurator = AnyboxConfigurator(root, step_sets=mine, broken_sections="leave-out")
    config = MasterConfig.loadFromDict(base_config(configurator), "master.cfg")
    assert sorted(b.name for b in config.builders) == ["alpha-pg15", "alpha-pg17"]
    assert configurator.loaded is not None
    (broken,) = configurator.loaded.matrix.broken
    assert (broken.buildout, broken.reason) == (
        "epsilon",
        f"{root}/buildouts/MANIFEST.cfg:5: [epsilon] picky refuses this buildout",
    )


def test_matrix_shows_the_broken_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_dir(tmp_path)
    assert cli.main(["matrix", str(root), "--json"]) == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data == {
        "builders": [
            {
                "name": f"alpha-pg{v}",
                "buildout": "alpha",
                "workers": ["w1"],
                "properties": {"buildout": "alpha", "build_requires": [], "pg_version": str(v)},
            }
            for v in (15, 17)
        ],
        "unmatched": [],
        "broken": [
            {"buildout": name, "reason": why} for name, why in sorted(reasons(root).items())
        ],
    }
    assert sorted(err.splitlines()) == sorted(reasons(root).values())
    assert cli.main(["matrix", str(root)]) == 1
    out, _ = capsys.readouterr()
    assert out.splitlines()[-3:] == [f"broken: {why}" for _, why in sorted(reasons(root).items())]
    # check stays strict
    assert cli.main(["check", str(root)]) == 1


def test_matrix_without_sections_at_fault_prints_errors_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_dir(tmp_path, GOOD, WORKERS + "max_builds = many\n")
    assert cli.main(["matrix", str(root), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{root}/workers.cfg:6: [w1] max_builds: expected an integer, got 'many'"
    ]


# ---------------------------------------------------------------- change hooks


def test_hook_mode_without_users_file_is_refused(tmp_path: Path) -> None:
    root = master_dir(tmp_path, GOOD)
    configurator = AnyboxConfigurator(root, change_source="hook")
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(configurator, www={"port": 0}), "master.cfg")
    assert info.value.errors[0] == (
        f"{root}/secrets/change-hook-users: change_source='hook' needs this file of "
        "'user:password' lines (who may post changes), and it does not exist; create it "
        "(anybox-ci init does), or use change_source='auto' or 'poll'"
    )


def test_hook_mode_with_users_file_or_own_auth(tmp_path: Path) -> None:
    root = master_dir(tmp_path, GOOD)
    own_auth = {"port": 0, "change_hook_auth": ["file:/elsewhere"]}
    config = MasterConfig.loadFromDict(
        base_config(AnyboxConfigurator(root, change_source="hook"), www=own_auth), "master.cfg"
    )
    assert sorted(b.name for b in config.builders) == ["alpha-pg15", "alpha-pg17"]
    (root / "secrets").mkdir(mode=0o700)
    users = root / "secrets" / "change-hook-users"
    users.write_text("hook:pw\n")
    users.chmod(0o600)
    config = MasterConfig.loadFromDict(
        base_config(AnyboxConfigurator(root, change_source="hook"), www={"port": 0}),
        "master.cfg",
    )
    assert "anybox" in config.www["change_hook_dialects"]
    assert config.www["change_hook_auth"]


def test_unknown_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="broken_sections must be one of"):
        AnyboxConfigurator(tmp_path, broken_sections="sometimes")


# ---------------------------------------------------------------- a real master


def running_builders(master: Master) -> list[str]:
    data = master.get("builders?field=name&field=masterids")
    return sorted(b["name"] for b in data["builders"] if b["masterids"])


@pytest.fixture
def live_master(tmp_path: Path) -> Iterator[Master]:
    m = Master(tmp_path.resolve() / "master", env=dict(tool_env(), PYTHONDONTWRITEBYTECODE="1"))
    m.create(GOOD + BROKEN, WORKERS, secrets={"worker-w1": "w1-password\n"})
    (m.basedir / "buildouts" / "alpha.cfg").write_text("[buildout]\nparts =\n")
    with m.running():
        yield m


@pytest.mark.live
def test_real_master_starts_without_the_broken_sections(live_master: Master) -> None:
    root = live_master.basedir
    log = live_master.log()
    assert running_builders(live_master) == ["alpha-pg15", "alpha-pg17"]
    for name, why in reasons(root).items():
        assert f"anybox-ci: broken buildout [{name}] left out, the others start: {why}" in log
    assert "Traceback" not in log

    # a reconfig with an error keeps the running configuration...
    manifest = root / "buildouts" / "MANIFEST.cfg"
    manifest.write_text(GOOD + BROKEN + "\n[zeta]\nbuildout = standalone alpha.cfg\n")
    before = len(live_master.log())
    refused = live_master.reconfig(check=False)
    log = live_master.log()[before:]
    assert refused.returncode != 0
    assert reasons(root)["beta"] in log
    assert "configuration update aborted without making any changes" in log
    assert running_builders(live_master) == ["alpha-pg15", "alpha-pg17"]

    # ...and, once fixed, every buildout runs
    (root / "buildouts" / "missing.cfg").write_text("[buildout]\nparts =\n")
    manifest.write_text(
        GOOD
        + BROKEN.replace("install-modules-tset", "install-modules-test")
        + "\n[zeta]\nbuildout = standalone alpha.cfg\n"
    )
    before = len(live_master.log())
    accepted = live_master.reconfig(check=False)
    log = live_master.log()[before:]
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr + log
    assert running_builders(live_master) == [
        "alpha-pg15",
        "alpha-pg17",
        "beta",
        "delta",
        "gamma",
        "zeta",
    ]


def test_sections_left_out_by_an_inherit_loop_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_dir(tmp_path, GOOD + "\n[x]\ninherit = y\n\n[y]\ninherit = x\n")
    assert cli.main(["matrix", str(root), "--json"]) == 1
    m = root / "buildouts" / "MANIFEST.cfg"
    assert json.loads(capsys.readouterr().out)["broken"] == [
        {"buildout": "x", "reason": f"{m}:6: [x] inherit: inherits from [y], which is broken"},
        {"buildout": "y", "reason": f"{m}:9: [y] inherit: inheritance loop: x -> y -> x"},
    ]
