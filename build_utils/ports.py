"""Free TCP port reservation for servers started by builds (Python standard library only).

Why: the ancestor probed a port by binding a socket, closed it and handed the number to the
server. Between the close and the server's own bind, a concurrent build on the same worker
could probe and pick the very same port, and two Odoo servers then fought over it.

How this module avoids that race:

1. The kernel chooses a candidate: bind a socket to ``(host, 0)`` and read the port back.
   Candidates therefore come from the ephemeral range and differ between callers.
2. A lock file per port, ``<lock dir>/<port>.lock`` (default lock dir
   ``$TMPDIR/anybox-ci-ports``, shared by every build of the worker), is locked with
   ``fcntl.flock(LOCK_EX | LOCK_NB)``. If another build holds it, the candidate is dropped and
   step 1 is repeated. The lock is held by the reserving process for the whole lifetime of
   the server (``with reserve_port() as port: ...``) and the kernel releases it when that
   process ends, even on SIGKILL, so a lock can never go stale.
3. With the lock held, the port is probed again (``SO_REUSEADDR`` bind, as servers do): this
   catches a server left running by a killed build, which holds the port but not the lock.
4. Nothing can stop an unrelated program from taking the port after the probe socket is
   closed and before the server binds, so callers (``functional.py``) watch for the server
   failing with EADDRINUSE and retry with a fresh reservation.

Lock files are never deleted: deleting a lock file that another process may be about to lock
reintroduces a race, and they are empty and few (one per port ever used).

CLI: ``python3 ports.py [--host H] [--lock-dir DIR] -- CMD ARGS...`` reserves a port, replaces
``{port}`` in each CMD argument, runs CMD with ``ANYBOX_CI_PORT`` set while holding the
reservation, and exits with CMD's status.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]

LOCK_DIR_NAME = "anybox-ci-ports"
DEFAULT_ATTEMPTS = 100


class PortUnavailable(RuntimeError):
    """No port could be reserved."""


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / LOCK_DIR_NAME


def ensure_lock_dir(lock_dir: Path) -> None:
    """Create the shared lock directory; sticky and world-writable like /tmp itself, so
    workers running as different users on one host share it safely."""
    try:
        lock_dir.mkdir(mode=0o1777, parents=True)
    except FileExistsError:
        return
    with contextlib.suppress(OSError):
        os.chmod(lock_dir, 0o1777)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def kernel_port(host: str) -> int:
    """A port the kernel considers free right now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_bindable(host: str, port: int) -> bool:
    """True if a server could bind ``port`` now (probe bound like servers bind)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def try_lock(lock_dir: Path, port: int) -> int | None:
    """Open and exclusively lock ``PORT.lock``; return the descriptor, or None if held."""
    path = lock_dir / f"{port}.lock"
    flags = os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class PortReservation:
    """A port held for this process until ``release()`` (or the end of the ``with`` block)."""

    def __init__(self, port: int, fd: int, lock_path: Path) -> None:
        self.port = port
        self.lock_path = lock_path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> int:
        return self.port

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def reserve_port(
    host: str = "127.0.0.1",
    lock_dir: str | os.PathLike[str] | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    exclude: Sequence[int] = (),
) -> PortReservation:
    """Reserve a free port (see the module docstring for why this is race free).

    ``exclude`` lists ports to skip, e.g. one a server just failed to bind.
    """
    directory = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    ensure_lock_dir(directory)
    for _ in range(attempts):
        port = kernel_port(host)
        if port in exclude:
            continue
        fd = try_lock(directory, port)
        if fd is None:
            continue
        if port_is_bindable(host, port):
            return PortReservation(port, fd, directory / f"{port}.lock")
        os.close(fd)
    raise PortUnavailable(f"no free port on {host} after {attempts} attempts")


def substitute_port(argv: Sequence[str], port: int) -> list[str]:
    """Replace ``{port}`` in each argument (plain str.replace, never a shell)."""
    return [item.replace("{port}", str(port)) for item in argv]


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        description="Reserve a free port and run a command with it ({port}, ANYBOX_CI_PORT)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--lock-dir", default=None, help="shared lock directory")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    try:
        reservation = reserve_port(args.host, args.lock_dir)
    except (PortUnavailable, OSError) as exc:
        print_summary(f"port reservation failed: {exc}")
        return 2
    with reservation as port:
        print(f"port={port}", flush=True)
        if not cmd:
            print_summary(f"port {port} was free")
            return 0
        env = dict(os.environ, ANYBOX_CI_PORT=str(port))
        try:
            code = subprocess.call(substitute_port(cmd, port), env=env)
        except OSError as exc:
            print_summary(f"cannot run {cmd[0]}: {exc.strerror}")
            return 2
    print_summary(f"command exited with code {code} (port {port})")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
