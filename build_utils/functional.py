"""Run functional tests against a server started on a reserved port (stdlib only).

    python3 functional.py --server-cmd-json '["bin/start_odoo", "--http-port={port}"]' \\
        --wait-url 'http://127.0.0.1:{port}/web/login' --timeout 120 -- CMD ARGS...

Why each step is the way it is:

* the port comes from ``ports.py`` (kernel-chosen port plus a per-port ``flock`` held until
  the server is stopped), so concurrent builds on one worker never share a port;
* ``{port}`` is substituted with ``str.replace`` in each argv item of the server command, the
  wait URL and the test command; nothing goes through a shell;
* readiness is polled (HTTP GET of ``--wait-url``, or a TCP connect without it) with a short
  backoff until ``--timeout``: never a fixed sleep, which is either too short or too slow;
* if the server cannot bind (it reports "Address already in use", EADDRINUSE), another port
  is reserved and the server restarted, up to ``--bind-attempts`` times;
* the server runs in its own process group, which is stopped with SIGTERM, then SIGKILL after
  ``--grace`` seconds, so Odoo workers and wrapper scripts do not outlive the build; on Linux
  the server is also asked (``PR_SET_PDEATHSIG``) to die if this script is killed outright.

The test command gets ``ANYBOX_CI_PORT`` in its environment; this script exits with its
status (3 when the server never became ready, 2 on usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]


try:  # imported as part of the package (tests, anybox_ci.build_utils)
    from . import ports
except ImportError:  # run as a script: ports.py is always shipped next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ports  # type: ignore[no-redef]

EXIT_SERVER = 3
EXIT_USAGE = 2
ADDR_IN_USE_MARKERS = (b"Address already in use", b"EADDRINUSE", b"[Errno 98]", b"[Errno 48]")
SERVER_PREFIX = b"[server] "

READY, ADDR_IN_USE, EXITED, TIMEOUT = "ready", "address in use", "exited", "timeout"


class Interrupted(Exception):
    """SIGTERM/SIGINT received: stop everything we started, then exit."""


def _die_with_parent() -> None:
    """Child-side: get SIGTERM if the parent dies (Linux only, best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class ServerProcess:
    """The server, in its own process group, with its output relayed and scanned."""

    def __init__(self, argv: Sequence[str], log: IO[bytes] | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self.addr_in_use = False
        self._out_lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,  # safe: our only other thread is started after this
        )
        self._reader = threading.Thread(target=self._relay, daemon=True)
        self._reader.start()

    def _relay(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        out = sys.stdout.buffer
        for line in iter(self.proc.stdout.readline, b""):
            if any(marker in line for marker in ADDR_IN_USE_MARKERS):
                self.addr_in_use = True
            if not line.endswith(b"\n"):
                line += b"\n"
            with self._out_lock:
                out.write(SERVER_PREFIX + line)
                out.flush()
                if self.log is not None:
                    self.log.write(line)
                    self.log.flush()

    def poll(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until all output of an exited server has been read."""
        if self._reader is not None:
            self._reader.join(timeout)

    def _group_alive(self) -> bool:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, grace: float) -> None:
        """SIGTERM the whole group, SIGKILL what is left after ``grace`` seconds."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader so that it does not count as alive
            if not self._group_alive():
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.drain()


def probe_url(url: str, timeout: float = 2.0) -> bool:
    """True once the server answers HTTP with a status below 500 (proxies bypassed)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


def probe_tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_ready(server: ServerProcess, host: str, port: int, url: str | None, timeout: float) -> str:
    """Poll until the server answers, exits, reports EADDRINUSE or ``timeout`` elapses."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if server.addr_in_use:
            return ADDR_IN_USE
        if server.poll() is not None:
            server.drain()
            return ADDR_IN_USE if server.addr_in_use else EXITED
        answered = probe_url(url) if url else probe_tcp(host, port)
        if answered:
            # the answer must come from our server, not from whoever holds the port
            if server.addr_in_use:
                return ADDR_IN_USE
            if server.poll() is not None:
                server.drain()
                return ADDR_IN_USE if server.addr_in_use else EXITED
            return READY
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return TIMEOUT
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 1.0)


def run_tests(cmd: Sequence[str], port: int) -> int:
    env = dict(os.environ, ANYBOX_CI_PORT=str(port))
    proc = subprocess.Popen(list(cmd), env=env)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_functional(
    server_cmd: Sequence[str],
    test_cmd: Sequence[str],
    wait_url: str | None = None,
    host: str = "127.0.0.1",
    timeout: float = 120.0,
    grace: float = 10.0,
    bind_attempts: int = 5,
    lock_dir: str | None = None,
    server_log: str | None = None,
) -> tuple[int, str]:
    """Do the whole job; return (exit status, summary text)."""
    log = open(server_log, "ab") if server_log else None  # noqa: SIM115 - closed below
    failed_ports: list[int] = []
    try:
        for attempt in range(1, bind_attempts + 1):
            with ports.reserve_port(host, lock_dir, exclude=failed_ports) as port:
                print(f"port={port}", flush=True)
                server = ServerProcess(ports.substitute_port(server_cmd, port), log)
                url = wait_url.replace("{port}", str(port)) if wait_url else None
                started = time.monotonic()
                try:
                    server.start()
                except OSError as exc:
                    return EXIT_SERVER, f"cannot start server {server_cmd[0]}: {exc.strerror}"
                try:
                    state = wait_ready(server, host, port, url, timeout)
                    if state == ADDR_IN_USE:
                        print(
                            f"port {port} already in use (attempt {attempt}), retrying", flush=True
                        )
                        failed_ports.append(port)
                        continue
                    if state == EXITED:
                        return EXIT_SERVER, (
                            f"server exited with code {server.poll()} before answering (port {port})"
                        )
                    if state == TIMEOUT:
                        return EXIT_SERVER, f"server not ready after {timeout:g}s (port {port})"
                    print(f"server ready in {time.monotonic() - started:.1f}s", flush=True)
                    try:
                        code = run_tests(ports.substitute_port(test_cmd, port), port)
                    except OSError as exc:
                        return EXIT_USAGE, f"cannot run {test_cmd[0]}: {exc.strerror}"
                finally:
                    server.stop(grace)
                if code == 0:
                    return 0, f"tests passed (server on port {port})"
                status = code if code > 0 else 128 - code
                return status, f"tests failed with exit code {code} (server on port {port})"
        return EXIT_SERVER, f"server could not bind a free port in {bind_attempts} attempts"
    finally:
        if log is not None:
            log.close()


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def parse_server_cmd(text: str) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("--server-cmd-json must be a non-empty JSON list of strings")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description="Start a server on a free port, run tests.")
    parser.add_argument("--server-cmd-json", required=True, help="server argv as a JSON list")
    parser.add_argument("--wait-url", default=None, help="URL to poll ({port} substituted)")
    parser.add_argument("--host", default="127.0.0.1", help="address for ports and TCP probe")
    parser.add_argument("--timeout", type=float, default=120.0, help="readiness timeout (s)")
    parser.add_argument("--grace", type=float, default=10.0, help="SIGTERM to SIGKILL delay")
    parser.add_argument("--bind-attempts", type=int, default=5)
    parser.add_argument("--lock-dir", default=None, help="shared port lock directory")
    parser.add_argument("--server-log", default=None, help="also append server output here")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- TEST CMD ARGS...")
    args = parser.parse_args(argv)
    test_cmd = list(args.cmd)
    if test_cmd and test_cmd[0] == "--":
        test_cmd = test_cmd[1:]
    try:
        server_cmd = parse_server_cmd(args.server_cmd_json)
    except ValueError as exc:
        print_summary(f"bad --server-cmd-json: {exc}")
        return EXIT_USAGE
    if not test_cmd:
        print_summary("no test command given")
        return EXIT_USAGE

    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code, summary = run_functional(
            server_cmd,
            test_cmd,
            wait_url=args.wait_url,
            host=args.host,
            timeout=args.timeout,
            grace=args.grace,
            bind_attempts=args.bind_attempts,
            lock_dir=args.lock_dir,
            server_log=args.server_log,
        )
    except Interrupted as exc:
        code, summary = 128 + int(signal.Signals[str(exc)]), f"interrupted by {exc}"
    except ports.PortUnavailable as exc:
        code, summary = EXIT_SERVER, str(exc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print_summary(summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
