"""A throwaway crossbar WAMP router: the message queue of several Buildbot masters.

Buildbot's multi-master mode needs every master to see the others' messages (a build
request made on one, a worker free on another); ``c['mq'] = {'type': 'wamp', ...}`` sends
them through a WAMP router, and crossbar (from PyPI) is the one Buildbot documents.

crossbar pins Twisted, idna and many others at versions the master's own environment cannot
take (Buildbot needs Twisted < 26), so it lives in a virtualenv of its own, made once with
pip and cached outside the work tree (``~/.cache/anybox-ci/crossbar/VERSION``, or
``$ANYBOX_CI_CROSSBAR_CACHE/VERSION``). A :class:`Router` writes a minimal node
configuration (one realm, anonymous access, one WebSocket transport on loopback), starts
``crossbar start``, waits until the transport completes a WAMP WebSocket handshake (polling,
with a timeout), and stops it by its own pid.

CLI: ``python -m anybox_ci.devtools.crossbar prepare`` installs it ahead of time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "26.10.1"
#: what the venv gets: crossbar, and a numpy its compiled dependencies (bjdata) were built for
REQUIREMENTS = (f"crossbar=={VERSION}", "numpy<2")
CACHE_ENV = "ANYBOX_CI_CROSSBAR_CACHE"
REALM = "buildbot"
START_TIMEOUT = 120.0  # crossbar imports a lot: tens of seconds on a busy 2-core machine
STOP_TIMEOUT = 30.0
INSTALL_TIMEOUT = 900.0

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "anybox-ci" / "crossbar"


def ensure_crossbar(version: str = VERSION, progress: Progress = _quiet) -> Path:
    """The ``crossbar`` executable of ``version``, installed in its own venv on first use."""
    venv = cache_dir() / version
    executable = venv / "bin" / "crossbar"
    stamp = venv / ".installed"
    if executable.exists() and stamp.exists():
        return executable
    progress(f"installing crossbar {version} into {venv} (once)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_base_python(), "-m", "venv", "--clear", str(venv)],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
    )
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         f"crossbar=={version}", *REQUIREMENTS[1:]],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0 or not executable.exists():
        tail = " ".join(done.stderr.split()[-40:])
        raise RuntimeError(f"could not install crossbar {version}: {tail}")
    stamp.write_text(version + "\n")
    return executable


def _base_python() -> str:
    """The interpreter beneath this venv: a venv made from inside another one still works,
    but this keeps the crossbar venv independent of the project's."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(base) if base.exists() else sys.executable


def node_config(port: int, realm: str = REALM) -> dict[str, object]:
    """One router worker, one realm where anonymous clients may do everything, one
    WebSocket transport on 127.0.0.1:``port``."""
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": [
                    {
                        "name": realm,
                        "roles": [
                            {
                                "name": "anonymous",
                                "permissions": [
                                    {
                                        "uri": "",
                                        "match": "prefix",
                                        "allow": everything,
                                        "disclose": {"caller": False, "publisher": False},
                                        "cache": True,
                                    }
                                ],
                            }
                        ],
                    }
                ],
                "transports": [
                    {
                        "type": "websocket",
                        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                        "serializers": ["json"],
                        "auth": {"anonymous": {"type": "static", "role": "anonymous"}},
                    }
                ],
            }
        ],
    }


def handshake(port: int, timeout: float = 2.0) -> bool:
    """Whether 127.0.0.1:``port`` answers a WAMP-over-WebSocket upgrade with 101."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            status = sock.recv(64).decode("latin-1", "replace")
    except OSError:
        return False
    return status.startswith("HTTP/1.1 101")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Router:
    """One crossbar node in ``cbdir``, listening on loopback."""

    cbdir: Path
    port: int = field(default_factory=free_port)
    realm: str = REALM
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """What Buildbot's ``c['mq']['router_url']`` takes."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def mq(self) -> dict[str, str]:
        """The whole ``c['mq']`` of a master using this router."""
        return {"type": "wamp", "router_url": self.url, "realm": self.realm}

    @property
    def log_path(self) -> Path:
        return self.cbdir / "node.log"

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no crossbar log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self, progress: Progress = _quiet, timeout: float = START_TIMEOUT) -> None:
        executable = ensure_crossbar(progress=progress)
        self.cbdir.mkdir(parents=True, exist_ok=True)
        (self.cbdir / "config.json").write_text(json.dumps(node_config(self.port, self.realm)))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(executable), "start", "--cbdir", str(self.cbdir), "--loglevel", "warn"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"crossbar exited at start:\n{self.log_tail()}")
            if handshake(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"crossbar not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
        except ProcessLookupError:
            pass

    @contextmanager
    def running(self, progress: Progress = _quiet) -> Iterator[Router]:
        try:
            self.start(progress)
            yield self
        finally:
            self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anybox_ci.devtools.crossbar")
    parser.add_argument("command", choices=["prepare"], help="install crossbar once")
    parser.parse_args(argv)
    print(ensure_crossbar(progress=print))
    return 0


if __name__ == "__main__":
    sys.exit(main())
