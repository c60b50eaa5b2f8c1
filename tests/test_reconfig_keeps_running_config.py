"""A running master refuses a broken manifest on reconfig and keeps its configuration.

Black box: ``buildbot create-master/start/reconfig/stop`` and the REST API, as in
production.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parent.parent
BUILDBOT = Path(sys.executable).parent / "buildbot"

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Master:
    def __init__(self, root: Path):
        self.root = root
        www, pb = free_port(), free_port()
        self.url = f"http://127.0.0.1:{www}/"
        self.env = {
            **os.environ,
            "ANYBOX_CI_WWW_PORT": f"tcp:{www}:interface=127.0.0.1",
            "ANYBOX_CI_PB_PORT": f"tcp:{pb}:interface=127.0.0.1",
            "ANYBOX_CI_URL": self.url,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.started = False

    def buildbot(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BUILDBOT), *argv, str(self.root)],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )

    def log(self) -> str:
        return (self.root / "twistd.log").read_text(errors="replace")

    def builders(self) -> list[str]:
        """Names of the builders the running configuration has (those with a master)."""
        url = self.url + "api/v2/builders?field=name&field=masterids"
        with urllib.request.urlopen(url, timeout=30) as response:
            data: Any = json.load(response)
        return sorted(b["name"] for b in data["builders"] if b["masterids"])


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Master]:
    root = tmp_path.resolve() / "master"
    m = Master(root)
    created = m.buildbot("create-master", "-q")
    assert created.returncode == 0, created.stdout + created.stderr
    shutil.copy(REPO / "master.cfg.sample", root / "master.cfg")
    (root / "buildouts" / "alpha").mkdir(parents=True)
    (root / "buildouts" / "alpha" / "buildout.cfg").write_text("[buildout]\nparts =\n")
    (root / "buildouts" / "MANIFEST.cfg").write_text(MANIFEST)
    (root / "workers.cfg").write_text(WORKERS)
    (root / "secrets").mkdir(mode=0o700)
    (root / "secrets").chmod(0o700)
    (root / "secrets" / "worker-w1").write_text("w1-password\n")
    (root / "secrets" / "worker-w1").chmod(0o600)
    try:
        started = m.buildbot("start")
        m.started = started.returncode == 0
        assert m.started, started.stdout + started.stderr + m.log()[-3000:]
        yield m
    finally:
        if m.started or (root / "twistd.pid").exists():
            m.buildbot("stop")


def test_broken_reconfig_keeps_running_config(master: Master) -> None:
    assert master.builders() == ["alpha-pg15", "alpha-pg17"]

    manifest = master.root / "buildouts" / "MANIFEST.cfg"
    manifest.write_text(
        MANIFEST + "colour = red\n\n[beta]\nbuildout = standalone alpha/buildout.cfg\n"
    )
    log_before = len(master.log())
    refused = master.buildbot("reconfig")
    log = master.log()[log_before:]
    assert refused.returncode != 0
    assert f"{manifest}:5: [alpha] colour: unknown option" in log
    assert "configuration update aborted without making any changes" in log
    assert "Traceback" not in log
    # still the old configuration: the same builders, and no beta
    assert master.builders() == ["alpha-pg15", "alpha-pg17"]

    manifest.write_text(MANIFEST + "\n[beta]\nbuildout = standalone alpha/buildout.cfg\n")
    log_before = len(master.log())
    accepted = master.buildbot("reconfig")
    log = master.log()[log_before:]
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr + log
    assert "configuration update complete" in log
    assert master.builders() == ["alpha-pg15", "alpha-pg17", "beta"]
