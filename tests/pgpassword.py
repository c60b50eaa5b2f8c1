"""A throwaway PostgreSQL cluster whose TCP connections need a password, for the live
security tests: a build that succeeds there really received its password, and the tests
can look for that password where it must never be (worker logs, step logs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import Master
from anybox_ci.devtools.pgcluster import Cluster, ensure_binaries
from tests.pgfixtures import configured_versions

ROLE = "ci_pw"


class PasswordCluster(Cluster):
    """Trust on the Unix socket (the test's own psql as superuser), passwords on loopback."""

    def _configure(self) -> None:
        super()._configure()
        self._write(
            self.datadir / "pg_hba.conf",
            "# anybox-ci security tests: a password on loopback\n"
            "local all all              trust\n"
            "host  all all 127.0.0.1/32 md5\n",
        )

    def set_password(self, password: str) -> None:
        quoted = password.replace("'", "''")
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'")
        verb = "ALTER" if exists else "CREATE"
        self.psql(f"{verb} ROLE {ROLE} LOGIN CREATEDB PASSWORD '{quoted}'")


@pytest.fixture
def password_cluster(tmp_path: Path) -> Iterator[PasswordCluster]:
    """A cluster of the newest configured major, started for one test."""
    install = ensure_binaries(max(configured_versions()))
    cluster = PasswordCluster(install, tmp_path / "pg")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def password_offer(cluster: Cluster, secret: str) -> str:
    """A capability line reaching ``cluster`` over loopback as :data:`ROLE`, its password
    named by the secret ``secret``."""
    line = (
        f"postgresql {cluster.major} port={cluster.port} host=127.0.0.1 user={ROLE} "
        f"password={secret}"
    )
    if (Path(cluster.bin) / "psql").exists():
        line += f" bin={cluster.bin} lib={cluster.lib}"
    return line


def write_secret(master: Master, name: str, value: str) -> None:
    path = master.basedir / "secrets" / name
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def build_logs(master: Master, buildid: int) -> dict[str, str]:
    """Every log of every step of a build, raw, by ``step/log`` name."""
    found: dict[str, str] = {}
    for step in master.steps(buildid):
        for log in master.get(f"steps/{step['stepid']}/logs")["logs"]:
            raw = master.raw(f"logs/{log['logid']}/raw").decode(errors="replace")
            found[f"{step['name']}/{log['slug']}"] = raw
    return found


def worker_logs(root: Path) -> dict[Path, str]:
    """A worker's own logs (``twistd.log*``) and the files it keeps at the top of each
    builder's folder (where a build's password file lives), as text."""
    paths = list(root.glob("twistd.log*"))
    paths += [p for builder in root.iterdir() if builder.is_dir() for p in builder.iterdir()]
    return {p: p.read_text(errors="replace") for p in paths if p.is_file() and not p.is_symlink()}


def last_build(master: Master, builder: str) -> dict[str, Any]:
    return master.builds(builder)[-1]
