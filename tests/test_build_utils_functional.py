"""Tests of build_utils/functional.py with real servers (python -m http.server) and commands."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from build_utils import functional
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]

FETCH = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "body = opener.open(sys.argv[1], timeout=10).read()\n"
    "sys.exit(0 if body == b'hello from the server' else 7)\n"
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """functional.py and ports.py copied alone, as the master ships them together."""
    return ship(tmp_path, "functional", "ports")


@pytest.fixture
def docroot(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from the server")
    return root


def http_server_cmd(docroot: Path) -> str:
    argv = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    return functional.json.dumps(argv + ["--directory", str(docroot)])


def run(
    script: Path, tmp_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), "--lock-dir", str(tmp_path / "locks"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )


def test_http_server_and_fetching_test_command(script: Path, tmp_path: Path, docroot: Path) -> None:
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        http_server_cmd(docroot),
        "--wait-url",
        "http://127.0.0.1:{port}/hello.txt",
        "--timeout",
        "30",
        "--",
        sys.executable,
        "-c",
        FETCH,
        "http://127.0.0.1:{port}/hello.txt",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    port = int(proc.stdout.splitlines()[0].removeprefix("port="))
    assert summary_of(proc.stdout) == f"tests passed (server on port {port})"
    assert "[server] " in proc.stdout  # server output relayed with a prefix


def test_tcp_probe_and_env_port(script: Path, tmp_path: Path, docroot: Path) -> None:
    check = (
        "import os, sys, urllib.request\n"
        "url = 'http://127.0.0.1:%s/hello.txt' % os.environ['ANYBOX_CI_PORT']\n"
        "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
        "sys.exit(0 if opener.open(url).read() == b'hello from the server' else 7)\n"
    )
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        http_server_cmd(docroot),
        "--",
        sys.executable,
        "-c",
        check,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_test_command_exit_code_is_propagated(script: Path, tmp_path: Path, docroot: Path) -> None:
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        http_server_cmd(docroot),
        "--wait-url",
        "http://127.0.0.1:{port}/",
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(5)",
    )
    assert proc.returncode == 5
    assert summary_of(proc.stdout).startswith("tests failed with exit code 5")


def test_server_exiting_early(script: Path, tmp_path: Path) -> None:
    server = functional.json.dumps([sys.executable, "-c", "print('boom'); raise SystemExit(4)"])
    proc = run(script, tmp_path, "--server-cmd-json", server, "--", "true")
    assert proc.returncode == functional.EXIT_SERVER
    assert "server exited with code 4 before answering" in summary_of(proc.stdout)


def test_server_never_ready_times_out_and_is_killed(script: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "server.pid"
    program = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # must be SIGKILLed after the grace
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "time.sleep(300)\n"
    )
    server = functional.json.dumps([sys.executable, "-c", program, str(pidfile)])
    started = time.monotonic()
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        server,
        "--timeout",
        "1.5",
        "--grace",
        "0.5",
        "--",
        "true",
    )
    assert time.monotonic() - started < 20
    assert proc.returncode == functional.EXIT_SERVER
    assert summary_of(proc.stdout).startswith("server not ready after 1.5s")
    assert not pid_alive(int(pidfile.read_text()))


def test_whole_process_group_is_stopped(script: Path, tmp_path: Path, docroot: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    program = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
        "import http.server, functools\n"
        "handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), handler).serve_forever()\n"
    )
    server = functional.json.dumps(
        [sys.executable, "-c", program, str(pidfile), "{port}", str(docroot)]
    )
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        server,
        "--wait-url",
        "http://127.0.0.1:{port}/hello.txt",
        "--",
        sys.executable,
        "-c",
        FETCH,
        "http://127.0.0.1:{port}/hello.txt",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)


def test_retry_when_server_reports_address_in_use(
    script: Path, tmp_path: Path, docroot: Path
) -> None:
    """A port taken between reservation and bind: the server is restarted on a new port."""
    marker = tmp_path / "first-attempt-done"
    program = (
        "import os, sys, functools, http.server\n"
        "if not os.path.exists(sys.argv[1]):\n"
        "    open(sys.argv[1], 'w').close()\n"
        "    print('OSError: [Errno 98] Address already in use', flush=True)\n"
        "    raise SystemExit(1)\n"
        "handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), handler).serve_forever()\n"
    )
    server = functional.json.dumps(
        [sys.executable, "-c", program, str(marker), "{port}", str(docroot)]
    )
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        server,
        "--wait-url",
        "http://127.0.0.1:{port}/hello.txt",
        "--",
        sys.executable,
        "-c",
        FETCH,
        "http://127.0.0.1:{port}/hello.txt",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    port_lines = [line for line in proc.stdout.splitlines() if line.startswith("port=")]
    assert len(port_lines) == 2 and port_lines[0] != port_lines[1]
    assert "already in use (attempt 1), retrying" in proc.stdout


def test_bad_server_cmd_json(script: Path, tmp_path: Path) -> None:
    proc = run(script, tmp_path, "--server-cmd-json", '"bin/start_odoo --port"', "--", "true")
    assert proc.returncode == functional.EXIT_USAGE
    assert summary_of(proc.stdout).startswith("bad --server-cmd-json")


def test_substitution_never_reaches_a_shell(script: Path, tmp_path: Path, docroot: Path) -> None:
    proc = run(
        script,
        tmp_path,
        "--server-cmd-json",
        http_server_cmd(docroot),
        "--",
        "echo",
        "$(touch pwned) {port}",
    )
    assert proc.returncode == 0
    assert not (tmp_path / "pwned").exists()
    assert any(line.startswith("$(touch pwned) ") for line in proc.stdout.splitlines())


def test_run_functional_in_process(tmp_path: Path, docroot: Path) -> None:
    server = [
        sys.executable,
        "-m",
        "http.server",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(docroot),
    ]
    code, text = functional.run_functional(
        server,
        [sys.executable, "-c", FETCH, "http://127.0.0.1:{port}/hello.txt"],
        wait_url="http://127.0.0.1:{port}/hello.txt",
        timeout=30,
        lock_dir=str(tmp_path / "locks"),
        server_log=str(tmp_path / "server.log"),
    )
    assert code == 0, text
    assert "GET /hello.txt" in (tmp_path / "server.log").read_text()
