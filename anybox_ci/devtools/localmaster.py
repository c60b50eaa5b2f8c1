"""Run a real master and real workers on this machine: for ``anybox-ci demo`` and tests.

Everything goes through the real tools (``buildbot create-master``/``start``,
``buildbot-worker create-worker``/``start``) and the master's REST API, as an admin
would; nothing is faked.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.selection import FORCE_MATCHING_SCHEDULER
from ..resources import console_script, master_cfg_sample, sample_dir

#: the source checkout; only for tests that keep artefacts there (data comes from resources)
REPO_ROOT = Path(__file__).resolve().parents[2]
#: what running a sample in place leaves, never copied into its repository
SAMPLE_JUNK = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc")
RESULTS = {
    0: "SUCCESS",
    1: "WARNINGS",
    2: "FAILURE",
    3: "SKIPPED",
    4: "EXCEPTION",
    5: "RETRY",
    6: "CANCELLED",
    None: "RUNNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_request(
    url: str,
    *,
    fields: Mapping[str, str] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """One HTTP request: the status and the body, error statuses included (not raised).

    A GET, or a POST of form ``fields`` or of ``body`` as JSON; ``auth`` is sent as HTTP Basic;
    ``opener`` is for a client of its own (a cookie jar, say).
    """
    all_headers = dict(headers or {})
    data = None
    if fields is not None:
        data = urllib.parse.urlencode(fields).encode()
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        all_headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, data=data, headers=all_headers)
    open_url = opener.open if opener else urllib.request.urlopen
    try:
        with open_url(request, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tool_env() -> dict[str, str]:
    """Environment for masters and workers: this venv's tools (hg, brz) on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="Dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="Dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
    )
    return _run(["git", *args], cwd=cwd, env=env).stdout.strip()


def make_sample_repo(
    name: str, dest: Path, branch: str = "main", *, with_fake_odoo: bool = True
) -> Path:
    """A git repository holding the shipped sample ``NAME`` plus the fake-odoo egg (that
    the fake samples develop; the real Odoo samples do without)."""
    repo = dest / name
    shutil.copytree(sample_dir(name), repo, ignore=SAMPLE_JUNK)
    if with_fake_odoo:
        shutil.copytree(sample_dir("fake-odoo"), repo / "fake-odoo", ignore=SAMPLE_JUNK)
    git(repo, "init", "-q", "-b", branch)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"{name}: initial buildout")
    return repo


@dataclass
class Master:
    """A real master made from ``master.cfg.sample`` (or from a ``config`` of its own)."""

    basedir: Path
    www_port: int = field(default_factory=free_port)
    pb_port: int = field(default_factory=free_port)
    extra_config: str = ""
    env: dict[str, str] = field(default_factory=tool_env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.www_port}/"

    def create(
        self,
        manifest: str | None = None,
        workers: str | None = None,
        secrets: Mapping[str, str] = {},
        *,
        config: str | None = None,
    ) -> None:
        """``buildbot create-master``, then master.cfg and the files it reads.

        ``config`` is a whole master.cfg used instead of master.cfg.sample (``extra_config``
        still follows it); ``manifest`` and ``workers`` are written when given.
        """
        # master.cfg.sample reads ANYBOX_CI_DB_URL; create-master only knows --db
        db = ["--db", self.env["ANYBOX_CI_DB_URL"]] if self.env.get("ANYBOX_CI_DB_URL") else []
        _run(
            [console_script("buildbot"), "create-master", "-q", *db, str(self.basedir)],
            env=self.env,
        )
        if config is None:
            config = master_cfg_sample()
        (self.basedir / "master.cfg").write_text(config + "\n" + self.extra_config)
        if manifest is not None:
            (self.basedir / "buildouts").mkdir(exist_ok=True)
            (self.basedir / "buildouts" / "MANIFEST.cfg").write_text(manifest)
        if workers is not None:
            (self.basedir / "workers.cfg").write_text(workers)
        if secrets:
            folder = self.basedir / "secrets"
            folder.mkdir(mode=0o700, exist_ok=True)
            for key, value in secrets.items():
                path = folder / key
                path.write_text(value)
                path.chmod(0o600)

    def _env(self) -> dict[str, str]:
        return dict(
            self.env,
            ANYBOX_CI_WWW_PORT=f"tcp:{self.www_port}:interface=127.0.0.1",
            ANYBOX_CI_PB_PORT=f"tcp:{self.pb_port}:interface=127.0.0.1",
            ANYBOX_CI_URL=self.url,
        )

    def start(self) -> None:
        proc = subprocess.run(
            [console_script("buildbot"), "start", str(self.basedir)],
            env=self._env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"master did not start: {self.log_tail()}")

    def reconfig(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``buildbot reconfig``; with ``check``, a refused configuration raises."""
        proc = subprocess.run(
            [console_script("buildbot"), "reconfig", str(self.basedir)],
            env=self._env(),
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"reconfig failed: {proc.stdout}{proc.stderr}\n{self.log_tail()}")
        return proc

    def stop(self) -> None:
        if (self.basedir / "twistd.pid").exists():
            subprocess.run(
                [console_script("buildbot"), "stop", str(self.basedir)],
                env=self._env(),
                capture_output=True,
                text=True,
            )

    @contextlib.contextmanager
    def running(self) -> Iterator[Master]:
        """Start the master; stop it on the way out, also when starting failed half-way."""
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def log(self) -> str:
        """The whole twistd.log ("" before there is one)."""
        path = self.basedir / "twistd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        if not (self.basedir / "twistd.log").exists():
            return "(no twistd.log)"
        return "\n".join(self.log().splitlines()[-lines:])

    # ---------------------------------------------------------------- REST

    def raw(self, path: str, attempts: int = 5) -> bytes:
        """The body of a REST API resource (``path`` below ``api/v2/``), as it is.

        A busy master sometimes cuts a response short; a GET is safe to repeat."""
        for attempt in range(attempts):
            try:
                url = self.url + "api/v2/" + path.lstrip("/")
                with urllib.request.urlopen(url, timeout=30) as r:
                    return bytes(r.read())
            except (http.client.IncompleteRead, ConnectionResetError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        return json.loads(self.raw(path))

    def post(
        self,
        path: str,
        fields: Mapping[str, str] | None = None,
        body: Any = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST form ``fields`` or a JSON ``body`` to ``path`` below the master's URL
        (``change_hook/base``, ``api/v2/...``): the status and the body, errors included."""
        return http_request(self.url + path.lstrip("/"), fields=fields, body=body, auth=auth)

    def rpc(self, path: str, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "id": 1, "params": params}).encode()
        request = urllib.request.Request(
            self.url + "api/v2/" + path.lstrip("/"),
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            answer = json.load(r)
        if "error" in answer:
            raise RuntimeError(f"{path} {method}: {answer['error']}")
        return answer["result"]

    def force(self, builder: str, scheduler: str | None = None, **params: Any) -> int:
        """Force ``builder`` through ``scheduler``, by default its buildout's own force form."""
        builderid = self.builder_ids()[builder]
        if scheduler is None:
            scheduler = self.force_scheduler_of(builder)
        result = self.rpc(
            f"forceschedulers/{scheduler}", "force", builderid=str(builderid), **params
        )
        return int(result[0])

    def force_scheduler_of(self, builder: str) -> str:
        """The force scheduler listing ``builder`` (the admins' "force matching" one last)."""
        names = [
            s["name"]
            for s in self.get("forceschedulers")["forceschedulers"]
            if builder in s["builder_names"]
        ]
        names.sort(key=lambda n: n == FORCE_MATCHING_SCHEDULER)
        if not names:
            raise LookupError(f"no force scheduler lists {builder}")
        return str(names[0])

    def builder_ids(self) -> dict[str, int]:
        return {b["name"]: b["builderid"] for b in self.get("builders")["builders"]}

    def connected_workers(self) -> set[str]:
        workers = self.get("workers")["workers"]
        return {w["name"] for w in workers if w.get("connected_to")}

    def builds(self, builder: str | None = None) -> list[dict[str, Any]]:
        path = f"builders/{self.builder_ids()[builder]}/builds" if builder else "builds"
        return list(self.get(path + "?property=*")["builds"])

    def wait(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        what: str,
        progress: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if progress:
                progress()
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tail()}")

    def wait_buildsets(
        self, bsids: Iterable[int], timeout: float, progress: Callable[[], None] | None = None
    ) -> None:
        ids = list(bsids)
        self.wait(
            lambda: all(self.get(f"buildsets/{i}")["buildsets"][0]["complete"] for i in ids),
            timeout,
            f"buildsets {ids}",
            progress,
        )

    def steps(self, buildid: int) -> list[dict[str, Any]]:
        return list(self.get(f"builds/{buildid}/steps")["steps"])

    def step_log(self, buildid: int, step_name: str, log: str = "stdio") -> str:
        step = next(s for s in self.steps(buildid) if s["name"] == step_name)
        return self.raw(f"steps/{step['stepid']}/logs/{log}/raw").decode(errors="replace")


@dataclass
class WorkerProcess:
    """A real ``buildbot-worker`` connected over PB."""

    basedir: Path
    name: str
    password: str
    master_port: int
    env: dict[str, str] = field(default_factory=tool_env)

    def start(self) -> None:
        # the password goes into buildbot.tac, never into a command line
        _run(
            [
                console_script("buildbot-worker"),
                "create-worker",
                "-q",
                "--umask=0o22",
                str(self.basedir),
                f"127.0.0.1:{self.master_port}",
                self.name,
                "placeholder",
            ],
            env=self.env,
        )
        tac = self.basedir / "buildbot.tac"
        tac.write_text(
            tac.read_text().replace("passwd = 'placeholder'", f"passwd = {self.password!r}")
        )
        tac.chmod(0o600)
        _run([console_script("buildbot-worker"), "start", str(self.basedir)], env=self.env)

    def stop(self) -> None:
        if (self.basedir / "twistd.pid").exists():
            subprocess.run(
                [console_script("buildbot-worker"), "stop", str(self.basedir)],
                env=self.env,
                capture_output=True,
                text=True,
            )


SAMPLE_NAMES = ("passing", "failing", "restricted")
#: what each sample's cells are expected to end with
SAMPLE_EXPECTED = {"passing": "SUCCESS", "failing": "FAILURE", "restricted": "SUCCESS"}


def offer_line(cluster: Any, user: str | None = None) -> str:
    """A workers.cfg capability line for a running :class:`pgcluster.Cluster`, builds
    connecting as ``user`` (default: the cluster's superuser).

    Server-only installs (the npm builds have no psql) leave ``bin`` and ``lib`` out, so
    the system's client tools run with their own libpq.
    """
    role = user or cluster.user
    line = f"postgresql {cluster.major} port={cluster.port} host={cluster.host} user={role}"
    if (Path(cluster.bin) / "psql").exists():
        line += f" bin={cluster.bin} lib={cluster.lib}"
    return line


def sample_manifest(repos: Mapping[str, Path], build_for: str = "postgresql >= 13") -> str:
    """The manifest of the sample buildouts, each in its own git repository."""
    return f"""
[DEFAULT]
build-for = {build_for}
post-buildout-steps = install-modules-test
odoo-addons = sample

[passing]
buildout = git file://{repos["passing"]} main buildout.cfg
build-category = demo

[failing]
buildout = git file://{repos["failing"]} main buildout.cfg
build-category = demo

[restricted]
buildout = git file://{repos["restricted"]} main buildout.cfg
build-category = demo
build-requires = wkhtmltopdf
"""
