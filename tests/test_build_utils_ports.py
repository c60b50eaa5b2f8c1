"""Tests of build_utils/ports.py: lock-backed reservations, across threads and processes."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from build_utils import ports
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return ship(tmp_path, "ports")


@pytest.fixture
def holder(lock_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of a port, as a concurrent build would."""
    ports.ensure_lock_dir(lock_dir)
    program = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program, str(lock_dir / "40001.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)


def test_reserved_port_is_free_and_locked(lock_dir: Path) -> None:
    with ports.reserve_port(lock_dir=lock_dir) as port:
        assert (lock_dir / f"{port}.lock").exists()
        assert ports.try_lock(lock_dir, port) is None  # held (flock is per open file)
        assert ports.port_is_bindable("127.0.0.1", port)
    fd = ports.try_lock(lock_dir, port)
    assert fd is not None  # released at the end of the block
    ports.os.close(fd)


def test_many_simultaneous_reservations_are_distinct(lock_dir: Path) -> None:
    held = [ports.reserve_port(lock_dir=lock_dir) for _ in range(30)]
    try:
        assert len({r.port for r in held}) == 30
    finally:
        for reservation in held:
            reservation.release()


def test_port_locked_by_another_process_is_skipped(
    lock_dir: Path, holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    candidates = iter([40001, 40001, 40002])
    monkeypatch.setattr(ports, "kernel_port", lambda host: next(candidates))
    monkeypatch.setattr(ports, "port_is_bindable", lambda host, port: True)
    reservation = ports.reserve_port(lock_dir=lock_dir)
    assert reservation.port == 40002
    reservation.release()


def test_port_in_use_without_lock_is_skipped(
    lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a server left running by a build that was killed: it holds the port, not the lock
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        real = ports.kernel_port
        candidates = iter([busy_port])
        monkeypatch.setattr(ports, "kernel_port", lambda host: next(candidates, None) or real(host))
        with ports.reserve_port(lock_dir=lock_dir) as port:
            assert port != busy_port


def test_exclude_and_exhaustion(lock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "kernel_port", lambda host: 40003)
    with pytest.raises(ports.PortUnavailable):
        ports.reserve_port(lock_dir=lock_dir, attempts=5, exclude=[40003])


def test_substitute_port() -> None:
    argv = ["--http-port={port}", "{port}{port}", "$(port)"]
    assert ports.substitute_port(argv, 8069) == ["--http-port=8069", "80698069", "$(port)"]


def test_cli_runs_command_with_port(script: Path, lock_dir: Path) -> None:
    check = "import os, sys; sys.exit(0 if os.environ['ANYBOX_CI_PORT'] == sys.argv[1] else 9)"
    proc = subprocess.run(
        [sys.executable, str(script), "--lock-dir", str(lock_dir), "--"]
        + [sys.executable, "-c", check, "{port}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    port = int(proc.stdout.splitlines()[0].removeprefix("port="))
    assert summary_of(proc.stdout) == f"command exited with code 0 (port {port})"


def test_concurrent_processes_get_distinct_ports(script: Path, lock_dir: Path) -> None:
    """Eight builds reserving at once, each holding its port while it 'runs'."""
    hold = "import time; time.sleep(1.0)"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "--lock-dir", str(lock_dir), "--"]
            + [sys.executable, "-c", hold],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=30)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    got = [int(out.splitlines()[0].removeprefix("port=")) for out in outputs]
    assert len(set(got)) == len(got)


def test_cli_exit_code_is_propagated(script: Path, lock_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "--lock-dir", str(lock_dir), "--"]
        + [sys.executable, "-c", "raise SystemExit(4)"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 4
    assert summary_of(proc.stdout).startswith("command exited with code 4")
