"""pytest plugin: real throwaway PostgreSQL clusters, one per major version under test.

Loaded by the project's conftest (`pytest_plugins = ["tests.pgfixtures"]`) or `-p tests.pgfixtures`.
The majors come from `ANYBOX_CI_PG_VERSIONS` (default "13,15,17"): the project's promise is
that builds run against several real server versions, so tests use real servers too.

Fixtures:
- `pg_versions` (session): the majors, as a list of ints;
- `pg_clusters` (session): `{major: Cluster}`, all started, all stopped at the end;
- `pg_major` / `pg_cluster`: a test asking for them runs once per major;
- `pg_password_cluster` (session): a cluster of the newest major that trusts nobody: every
  connection, over the socket or loopback, must log in with a password (`scram-sha-256`);
  the superuser's is `cluster.password`. A client that gets in there really sent a password.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from anybox_ci.devtools.pgcluster import Cluster, ensure_binaries

VERSIONS_ENV = "ANYBOX_CI_PG_VERSIONS"
DEFAULT_VERSIONS = "13,15,17"


def configured_versions() -> list[int]:
    """Parse `ANYBOX_CI_PG_VERSIONS`; a typo should stop the run, not silently test less."""
    raw = os.environ.get(VERSIONS_ENV, DEFAULT_VERSIONS)
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise pytest.UsageError(f"{VERSIONS_ENV} must list major versions like 13,15,17: {raw!r}")
    return list(dict.fromkeys(int(part) for part in parts))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that asks for `pg_major` (or `pg_cluster`) once per major, named by it."""
    if "pg_major" in metafunc.fixturenames:
        versions = configured_versions()
        metafunc.parametrize("pg_major", versions, ids=[f"pg{major}" for major in versions])


@pytest.fixture(scope="session")
def pg_versions() -> list[int]:
    """The PostgreSQL majors to test against."""
    return configured_versions()


@pytest.fixture(scope="session")
def pg_clusters(
    pg_versions: list[int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[int, Cluster]]:
    """One running cluster per major for the whole session; every one stopped at the end."""
    clusters: dict[int, Cluster] = {}
    try:
        for major in pg_versions:
            install = ensure_binaries(major)
            cluster = Cluster(install, tmp_path_factory.mktemp(f"pg{major}-"))
            clusters[major] = cluster  # registered first, so a half-started one is stopped too
            cluster.start()
        yield clusters
    finally:
        failures: list[str] = []
        for major, cluster in clusters.items():
            try:
                cluster.stop()
            except Exception as exc:  # keep stopping the others
                failures.append(f"PostgreSQL {major}: {exc}")
        if failures:
            raise RuntimeError("could not stop clusters: " + "; ".join(failures))


@pytest.fixture
def pg_cluster(pg_clusters: dict[int, Cluster], pg_major: int) -> Cluster:
    """The session cluster of the major this test instance runs for."""
    return pg_clusters[pg_major]


@pytest.fixture(scope="session")
def pg_password_cluster(
    pg_versions: list[int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A running cluster of the newest major with SCRAM passwords only, for the session."""
    major = max(pg_versions)
    password = "su-" + secrets.token_urlsafe(18)
    cluster = Cluster(
        ensure_binaries(major), tmp_path_factory.mktemp(f"pg{major}-scram-"), password=password
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
