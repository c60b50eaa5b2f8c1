"""htpasswd login with real hashes, and the authorization built by ``authz_config``.

The unit tests check the hashes against fixed vectors made by other implementations:
``openssl passwd -apr1 -salt SALT PASSWORD`` for apr1, the crypt_blowfish/OpenBSD test vectors
for bcrypt, ``openssl dgst -sha1 -binary | base64`` for ``{SHA}``.

The live tests run a real Buildbot master (``buildbot create-master`` + ``buildbot start``) with
``HtpasswdAuth`` and ``authz_config`` and talk to it over HTTP, as a browser would: log in at
``/auth/login`` with HTTP Basic, keep the session cookie, call the REST API.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anybox_ci.devtools.localmaster import Master, http_request
from anybox_ci.www.auth import HtpasswdAuth, HtpasswdChecker, HtpasswdFile
from anybox_ci.www.authz import authz_config, read_htgroups
from anybox_ci.www.passwords import apr1_md5, check_password, hash_password, hash_scheme

# openssl passwd -apr1 -salt SALT PASSWORD
APR1_VECTORS = [
    ("password", "abcdefgh", "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1"),
    ("password", "12345678", "$apr1$12345678$9pHAGSBYtlmFtid2xxNog0"),
    ("password", "xy", "$apr1$xy$.lxC8wf/tCocZ14cbZ9g1."),
    ("Zürich pass:wörd", "abcdefgh", "$apr1$abcdefgh$keEeyLe15OExpZnWm/dBm0"),
    ("Zürich pass:wörd", "12345678", "$apr1$12345678$uoWdb6Kut2LZ99JTR.z2Z/"),
    ("Zürich pass:wörd", "xy", "$apr1$xy$PDtEwJzpgsLDuqQoXfDhq/"),
]

# crypt_blowfish / OpenBSD test vectors
BCRYPT_VECTORS = [
    ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"),
    ("U*U*U", "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a"),
    # the same hash as htpasswd -B writes it ($2y$) and as OpenBSD does ($2b$)
    ("U*U", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ("U*U", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
]

# printf password | openssl dgst -sha1 -binary | base64
SHA1_VECTOR = ("password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")


# -- hashes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "salt", "expected"), APR1_VECTORS)
def test_apr1_matches_openssl(password: str, salt: str, expected: str) -> None:
    assert apr1_md5(password.encode(), salt) == expected
    assert check_password(password.encode(), expected)
    assert not check_password(password.encode() + b"x", expected)
    assert not check_password(b"", expected)


def test_apr1_long_password_and_salt_cut_to_8() -> None:
    long_password = b"p" * 100  # exercises the 16-byte blocks of the alternate digest
    hashed = apr1_md5(long_password, "abcdefghIJKL")
    assert hashed.startswith("$apr1$abcdefgh$")
    assert check_password(long_password, hashed)
    assert not check_password(long_password[:-1], hashed)


@pytest.mark.parametrize(("password", "hashed"), BCRYPT_VECTORS)
def test_bcrypt_vectors(password: str, hashed: str) -> None:
    assert hash_scheme(hashed) == "bcrypt"
    assert check_password(password.encode(), hashed)
    assert not check_password(password.encode()[:-1], hashed)


def test_sha1_vector() -> None:
    password, hashed = SHA1_VECTOR
    assert hash_password(password, "sha1") == hashed
    assert check_password(password.encode(), hashed)
    assert not check_password(b"Password", hashed)


@pytest.mark.parametrize("scheme", ["bcrypt", "apr1", "sha1"])
def test_hash_password_round_trip(scheme: str) -> None:
    hashed = hash_password("correct horse é", scheme, rounds=4)
    assert hash_scheme(hashed) == scheme
    assert check_password("correct horse é".encode(), hashed)
    assert not check_password(b"correct horse", hashed)


def test_hash_password_bcrypt_is_htpasswd_style_and_salted() -> None:
    first = hash_password("secret", rounds=4)
    second = hash_password("secret", rounds=4)
    assert first.startswith("$2y$04$")
    assert first != second
    assert hash_password("secret").startswith("$2y$12$")


def test_hash_password_refuses_unknown_scheme_and_long_bcrypt() -> None:
    with pytest.raises(ValueError, match="unknown password scheme"):
        hash_password("x", "md4")
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("a" * 73, "bcrypt")


def test_bcrypt_ignores_bytes_beyond_72_like_apache() -> None:
    hashed = hash_password("a" * 72, rounds=4)
    assert check_password(b"a" * 80, hashed)


def test_plaintext_refused_unless_allowed() -> None:
    assert hash_scheme("hunter2") == "plain"
    assert not check_password(b"hunter2", "hunter2")
    assert check_password(b"hunter2", "hunter2", allow_plaintext=True)
    assert not check_password(b"hunter3", "hunter2", allow_plaintext=True)
    assert hash_password("hunter2", "plain") == "hunter2"


def test_malformed_hashes_refused() -> None:
    assert not check_password(b"x", "$2y$05$tooshort")
    assert not check_password(b"x", "$apr1$")
    assert not check_password(b"", "")


# -- the file and the checker -------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    """Write and move the mtime forward, so that the change is seen even on coarse clocks."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(old + 2_000_000_000, old + 2_000_000_000))


def test_file_reloads_on_change_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    _write(path, f"# users\nalice:{APR1_VECTORS[0][2]}\n\nbroken line\n")
    checker = HtpasswdChecker(path)
    assert checker.check("alice", b"password")
    assert not checker.check("bob", b"password")
    assert set(checker.file.users()) == {"alice"}

    _write(path, f"alice:{APR1_VECTORS[0][2]}\nbob:{SHA1_VECTOR[1]}\n")
    assert checker.check("bob", b"password")

    _write(path, f"bob:{SHA1_VECTOR[1]}\n")
    assert not checker.check("alice", b"password")


def test_file_not_reread_when_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    _write(path, f"alice:{SHA1_VECTOR[1]}\n")
    users_file = HtpasswdFile(path)
    first = users_file.users()
    assert users_file.users() is first


def test_missing_file_means_nobody(tmp_path: Path) -> None:
    checker = HtpasswdChecker(tmp_path / "nope")
    assert not checker.check("alice", b"password")
    _write(tmp_path / "nope", f"alice:{SHA1_VECTOR[1]}\n")
    assert checker.check("alice", b"password")


def test_checker_plaintext_policy(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    _write(path, "carol:plainpass\n")
    assert not HtpasswdChecker(path).check("carol", b"plainpass")
    assert HtpasswdChecker(path, allow_plaintext=True).check("carol", b"plainpass")


def test_read_htgroups(tmp_path: Path) -> None:
    path = tmp_path / "htgroups"
    path.write_text("# groups\ndevelopers: dave  erin\nrelease:frank\ndevelopers: gina\n")
    assert read_htgroups(path) == {"developers": ["dave", "erin", "gina"], "release": ["frank"]}


def test_old_module_still_exports_what_master_cfg_imports() -> None:
    # master.cfg files written by `anybox-ci init` import these from anybox_ci.www.htpasswd.
    from anybox_ci.www import htpasswd

    assert htpasswd.HtpasswdAuth is HtpasswdAuth
    assert htpasswd.authz_config is authz_config
    assert htpasswd.read_htgroups is read_htgroups
    assert htpasswd.hash_password is hash_password  # anybox-ci init used it from there


# -- live: a real master --------------------------------------------------------------------------

# Imports from the old path, as master.cfg.sample (hence every `anybox-ci init` master) does.
MASTER_CFG = """\
import sys
from buildbot.plugins import schedulers, steps, util, worker
from anybox_ci.www.htpasswd import HtpasswdAuth, authz_config

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['title'] = 'htpasswd live test'
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['protocols'] = {{'null': {{}}}}
c['workers'] = [worker.LocalWorker('local1')]
factory = util.BuildFactory([
    steps.ShellCommand(name='hello', command=[sys.executable, '-c', 'print("hello")']),
])
c['builders'] = [util.BuilderConfig(name='erp-pg15', workernames=['local1'], factory=factory)]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['erp-pg15'])]
c['www'] = {{
    'port': {port},
    'auth': HtpasswdAuth({htpasswd!r}),
    'authz': authz_config(
        admins=['alice'],
        anonymous_read={anonymous_read!r},
        force_roles=['developers'],
        groups={{'developers': ['dave']}},
    ),
}}
"""


class Client:
    """An HTTP client with its own cookie jar (one browser session)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())

    def request(
        self, path: str, *, data: Any = None, auth: tuple[str, str] | None = None
    ) -> tuple[int, bytes]:
        return http_request(self.base + path.lstrip("/"), body=data, auth=auth, opener=self.opener)

    def login(self, user: str, password: str) -> int:
        status, _ = self.request("/auth/login", auth=(user, password))
        return status

    def get_json(self, path: str) -> tuple[int, Any]:
        status, body = self.request(path)
        return status, (json.loads(body) if status == 200 else None)

    def force(self, builderid: int) -> tuple[int, Any]:
        status, body = self.request(
            "/api/v2/forceschedulers/force",
            data={
                "jsonrpc": "2.0",
                "method": "force",
                "id": 1,
                "params": {"builderid": str(builderid), "reason": "live test"},
            },
        )
        return status, json.loads(body) if body.startswith(b"{") else body


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(
        "\n".join(
            [
                f"alice:{hash_password('alice-pw', rounds=4)}",  # admin, bcrypt ($2y$)
                f"dave:{apr1_md5(b'dave-pw', 'Dv8salt1')}",  # developers, apr1
                f"bob:{hash_password('bob-pw', 'sha1')}",  # no role, {SHA}
                "carol:carol-pw",  # plaintext: refused
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def _master(tmp_path: Path, htpasswd: Path, anonymous_read: bool) -> Master:
    master = Master(tmp_path / "master")
    master.create(
        config=MASTER_CFG.format(
            port=master.www_port, htpasswd=str(htpasswd), anonymous_read=anonymous_read
        )
    )
    return master


@pytest.fixture
def private_master(tmp_path: Path, htpasswd_file: Path) -> Iterator[Master]:
    with _master(tmp_path, htpasswd_file, anonymous_read=False).running() as master:
        yield master


@pytest.fixture
def public_master(tmp_path: Path, htpasswd_file: Path) -> Iterator[Master]:
    with _master(tmp_path, htpasswd_file, anonymous_read=True).running() as master:
        yield master


def _wait_build_done(client: Client, bsid: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, data = client.get_json(f"/api/v2/buildsets/{bsid}")
        assert status == 200
        if data["buildsets"][0]["complete"]:
            return dict(data["buildsets"][0])
        time.sleep(0.2)
    raise AssertionError(f"buildset {bsid} did not finish")


@pytest.mark.live
def test_live_private_master(private_master: Master, htpasswd_file: Path) -> None:
    base = private_master.url

    # Anonymous: no read, no force, not even the websocket's 'masters'.
    anonymous = Client(base)
    assert anonymous.get_json("/api/v2/builders")[0] == 403
    assert anonymous.get_json("/api/v2/masters")[0] == 403
    assert anonymous.force(1)[0] == 403

    # Wrong password, unknown user, plaintext line: no session.
    for user, password in [("alice", "nope"), ("zoe", "alice-pw"), ("carol", "carol-pw")]:
        client = Client(base)
        assert client.login(user, password) == 401
        assert client.get_json("/api/v2/builders")[0] == 403

    admin = Client(base)
    assert admin.login("alice", "alice-pw") == 200
    status, data = admin.get_json("/api/v2/builders")
    assert status == 200
    builderid = {b["name"]: b["builderid"] for b in data["builders"]}["erp-pg15"]

    # An authenticated user without role reads, but may not force.
    bob = Client(base)
    assert bob.login("bob", "bob-pw") == 200
    assert bob.get_json("/api/v2/builders")[0] == 200
    status, body = bob.force(builderid)
    assert status == 403, body

    # The admin forces; the build runs green.
    status, body = admin.force(builderid)
    assert status == 200, body
    bsid = body["result"][0]
    assert _wait_build_done(admin, bsid)["results"] == 0

    # A member of a force role forces too.
    dave = Client(base)
    assert dave.login("dave", "dave-pw") == 200
    status, body = dave.force(builderid)
    assert status == 200, body
    _wait_build_done(dave, body["result"][0])

    # Stop/rebuild: the role-less user is refused, the force role is not.
    status, data = admin.get_json("/api/v2/builds")
    buildid = data["builds"][0]["buildid"]
    rebuild = {"jsonrpc": "2.0", "method": "rebuild", "id": 1, "params": {}}
    assert bob.request(f"/api/v2/builds/{buildid}", data=rebuild)[0] == 403
    status, body = dave.request(f"/api/v2/builds/{buildid}", data=rebuild)
    assert status == 200, body
    # Other control actions are admins only.
    status, data = admin.get_json("/api/v2/schedulers")
    schedulerid = data["schedulers"][0]["schedulerid"]
    enable = {"jsonrpc": "2.0", "method": "enable", "id": 1, "params": {"enabled": True}}
    assert dave.request(f"/api/v2/schedulers/{schedulerid}", data=enable)[0] == 403
    assert admin.request(f"/api/v2/schedulers/{schedulerid}", data=enable)[0] == 200

    # A user added to the file logs in at once: no restart, no reconfig.
    erin = Client(base)
    assert erin.login("erin", "erin-pw") == 401
    with htpasswd_file.open("a", encoding="utf-8") as f:
        f.write(f"erin:{hash_password('erin-pw', 'apr1')}\n")
    stat = htpasswd_file.stat()
    os.utime(htpasswd_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert erin.login("erin", "erin-pw") == 200
    assert erin.get_json("/api/v2/builders")[0] == 200

    # No password or hash in the master's log.
    log_text = private_master.log()
    for secret in ("alice-pw", "dave-pw", "bob-pw", "erin-pw"):
        assert secret not in log_text


@pytest.mark.live
def test_live_public_master(public_master: Master) -> None:
    anonymous = Client(public_master.url)
    status, data = anonymous.get_json("/api/v2/builders")
    assert status == 200
    builderid = data["builders"][0]["builderid"]
    assert anonymous.force(builderid)[0] == 403

    bob = Client(public_master.url)
    assert bob.login("bob", "bob-pw") == 200
    assert bob.force(builderid)[0] == 403

    admin = Client(public_master.url)
    assert admin.login("alice", "alice-pw") == 200
    status, body = admin.force(builderid)
    assert status == 200, body
    assert _wait_build_done(admin, body["result"][0])["results"] == 0
