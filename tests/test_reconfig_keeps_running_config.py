"""A running master refuses a broken manifest on reconfig and keeps its configuration.

Black box: ``buildbot create-master/start/reconfig/stop`` and the REST API, as in
production.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anybox_ci.devtools.localmaster import Master, tool_env

pytestmark = pytest.mark.live

MANIFEST = """\
[alpha]
buildout = standalone alpha/buildout.cfg
build-for = postgresql
build-category = demo
"""

WORKERS = """\
[w1]
password = secret:worker-w1
capability =
    postgresql 15 port=5432
    postgresql 17 port=5433
"""


def running_builders(master: Master) -> list[str]:
    """Names of the builders the running configuration has (those with a master)."""
    data = master.get("builders?field=name&field=masterids")
    return sorted(b["name"] for b in data["builders"] if b["masterids"])


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Master]:
    m = Master(tmp_path.resolve() / "master", env=dict(tool_env(), PYTHONDONTWRITEBYTECODE="1"))
    m.create(MANIFEST, WORKERS, secrets={"worker-w1": "w1-password\n"})
    (m.basedir / "buildouts" / "alpha").mkdir(parents=True)
    (m.basedir / "buildouts" / "alpha" / "buildout.cfg").write_text("[buildout]\nparts =\n")
    with m.running():
        yield m


def test_broken_reconfig_keeps_running_config(master: Master) -> None:
    assert running_builders(master) == ["alpha-pg15", "alpha-pg17"]

    manifest = master.basedir / "buildouts" / "MANIFEST.cfg"
    manifest.write_text(
        MANIFEST + "colour = red\n\n[beta]\nbuildout = standalone alpha/buildout.cfg\n"
    )
    log_before = len(master.log())
    refused = master.reconfig(check=False)
    log = master.log()[log_before:]
    assert refused.returncode != 0
    assert f"{manifest}:5: [alpha] colour: unknown option" in log
    assert "configuration update aborted without making any changes" in log
    assert "Traceback" not in log
    # still the old configuration: the same builders, and no beta
    assert running_builders(master) == ["alpha-pg15", "alpha-pg17"]

    manifest.write_text(MANIFEST + "\n[beta]\nbuildout = standalone alpha/buildout.cfg\n")
    log_before = len(master.log())
    accepted = master.reconfig(check=False)
    log = master.log()[log_before:]
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr + log
    assert "configuration update complete" in log
    assert running_builders(master) == ["alpha-pg15", "alpha-pg17", "beta"]
