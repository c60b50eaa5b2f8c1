"""Master roles (``AnyboxConfigurator(role=...)``): UI masters and engine masters.

The whole configuration goes through Buildbot's own loader (``MasterConfig.loadFromDict``),
as ``buildbot checkconfig`` does, so each role's share must be a configuration Buildbot
accepts: a UI master keeps the builders its force forms name, an engine master drops the
web server. An unknown role, or a bad log horizon, is one config error line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.changes.gitpoller import GitPoller
from buildbot.config.errors import ConfigErrors
from buildbot.config.master import MasterConfig
from buildbot.schedulers.forcesched import ForceScheduler

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.render.autowatch import FollowDiscoveries
from anybox_ci.render.multimaster import RetryOrphans

MANIFEST = """
[erp]
buildout = git https://forge.example.com/erp.git main buildout.cfg
watch = git https://forge.example.com/addons.git 17.0
"""
WORKERS = "[w1]\npassword = pw\n"


def _master(root: Path) -> Path:
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(MANIFEST)
    (root / "workers.cfg").write_text(WORKERS)
    return root.resolve()


def _load(root: Path, multi: bool = True, **options: Any) -> MasterConfig:
    config: dict[str, Any] = {
        "configurators": [AnyboxConfigurator(root, change_source="poll", **options)],
        "protocols": {"pb": {"port": "tcp:0"}},
        "buildbotNetUsageData": None,
        "www": {"port": 0, "plugins": {}},
    }
    if multi:
        config["multiMaster"] = True
        config["mq"] = {"type": "wamp", "router_url": "ws://127.0.0.1:1/ws", "realm": "buildbot"}
    return MasterConfig.loadFromDict(config, "master.cfg")


def _kinds(config: MasterConfig) -> tuple[list[str], list[str], int]:
    schedulers = config.schedulers.values()
    forced = sorted(s.name for s in schedulers if isinstance(s, ForceScheduler))
    driven = sorted(s.name for s in schedulers if not isinstance(s, ForceScheduler))
    pollers = sum(isinstance(c, GitPoller) for c in config.change_sources)
    return forced, driven, pollers


def _services(config: MasterConfig) -> set[type]:
    return {type(s) for s in config.services.values()}


def test_all_is_a_whole_master(tmp_path: Path) -> None:
    config = _load(_master(tmp_path))
    forced, driven, pollers = _kinds(config)
    assert forced and driven and pollers == 2
    assert config.www["port"] == 0
    assert {RetryOrphans, FollowDiscoveries} <= _services(config)


def test_ui_master_serves_people_and_watches_nothing(tmp_path: Path) -> None:
    config = _load(_master(tmp_path), role="ui")
    forced, driven, pollers = _kinds(config)
    assert forced and not driven and pollers == 0
    assert [b.name for b in config.builders] == ["erp"]  # the force form's builder
    assert config.www["port"] == 0
    assert RetryOrphans not in _services(config)  # it runs no builds


def test_engine_master_runs_builds_and_serves_no_web(tmp_path: Path) -> None:
    whole = _kinds(_load(_master(tmp_path / "a")))
    config = _load(_master(tmp_path / "b"), role="engine")
    forced, driven, pollers = _kinds(config)
    assert not forced and driven == whole[1] and pollers == 2
    assert [b.name for b in config.builders] == ["erp"]
    assert not config.www.get("port")  # Buildbot's default: no web server
    assert RetryOrphans in _services(config)


def test_a_single_master_does_not_follow_other_masters(tmp_path: Path) -> None:
    config = _load(_master(tmp_path), multi=False)
    assert RetryOrphans not in _services(config)
    assert FollowDiscoveries in _services(config)  # harmless alone: it hears only itself


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role": "worker"}, "role must be one of 'all', 'ui', 'engine', not 'worker'"),
        (
            {"log_horizon_days": 0},
            "log_horizon_days must be a whole number of days, at least 1, not 0",
        ),
        ({"virtual_builders": "yes"}, "virtual_builders must be True or False, not 'yes'"),
    ],
)
def test_bad_master_options_are_one_line_errors(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigErrors) as info:
        _load(_master(tmp_path), **options)
    assert info.value.errors[0] == message


def test_log_horizon_adds_buildbots_janitor(tmp_path: Path) -> None:
    from buildbot.configurators.janitor import JANITOR_NAME
    from buildbot.schedulers.timed import Nightly

    config = _load(_master(tmp_path / "a"), log_horizon_days=30)
    assert JANITOR_NAME in [b.name for b in config.builders]
    nightly = config.schedulers[JANITOR_NAME]
    assert isinstance(nightly, Nightly)
    assert JANITOR_NAME not in [b.name for b in _load(_master(tmp_path / "b")).builders]
