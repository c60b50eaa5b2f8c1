"""The htpasswd login neither tells who exists nor locks people out over a byte.

- D10: on a real master, a login as an unknown user takes as long as a wrong password for a
  user of each hash scheme (within 2x, medians), and every failure is logged on one line
  fit for fail2ban, without the password;
- D16: a UTF-8 byte-order mark does not hide the first user, and a line that is not UTF-8
  only loses that line (logged with FILE:LINE).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.python import log

from anybox_ci.devtools.localmaster import Master
from anybox_ci.www.auth import HtpasswdChecker, HtpasswdFile
from anybox_ci.www.passwords import apr1_md5, hash_password
from tests.test_htpasswd import Client

MASTER_CFG = """\
from buildbot.plugins import schedulers, util, worker
from anybox_ci.www.htpasswd import HtpasswdAuth, authz_config

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['title'] = 'login timing test'
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['protocols'] = {{'null': {{}}}}
c['workers'] = [worker.LocalWorker('local1')]
c['builders'] = [util.BuilderConfig(name='b', workernames=['local1'], factory=util.BuildFactory())]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b'])]
c['www'] = {{
    'port': {port},
    'auth': HtpasswdAuth({htpasswd!r}, allow_plaintext=True),
    'authz': authz_config(admins=[], anonymous_read=True, force_roles=[]),
}}
"""
USERS = {
    "apr": apr1_md5(b"apr-pw", "Sa1tSa1t"),
    "sha": hash_password("sha-pw", "sha1"),
    "plain": "plain-pw",
    "bcrypt5": hash_password("bcrypt5-pw", rounds=5),
}


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Master]:
    base = tmp_path_factory.mktemp("login-timing")
    htpasswd = base / "htpasswd"
    htpasswd.write_text("".join(f"{u}:{h}\n" for u, h in USERS.items()), encoding="utf-8")
    live = Master(base / "master")
    live.create(config=MASTER_CFG.format(port=live.www_port, htpasswd=str(htpasswd)))
    with live.running():
        yield live


def _login_seconds(master: Master, user: str, password: str) -> float:
    started = time.monotonic()
    assert Client(master.url).login(user, password) == 401
    return time.monotonic() - started


@pytest.mark.live
def test_d10_unknown_user_costs_what_a_wrong_password_costs(master: Master) -> None:
    for user in USERS:  # each user can log in, so each wrong password is a real check
        assert Client(master.url).login(user, f"{user}-pw") == 200
    rounds = 7
    medians = {}
    for user in [*USERS, "nobody-here"]:
        times = [_login_seconds(master, user, "wrong-password") for _ in range(rounds)]
        medians[user] = statistics.median(times)
    fastest, slowest = min(medians.values()), max(medians.values())
    assert slowest <= 2 * fastest, medians
    # one fail2ban-friendly line per failure, with the client's address, never the password
    lines = [line for line in master.log().splitlines() if "failed login" in line]
    pattern = re.compile(r"anybox-ci: failed login for user '([^']*)' from 127\.0\.0\.1$")
    users = [m[1] for line in lines if (m := pattern.search(line))]
    assert len(users) == len(lines) == rounds * (len(USERS) + 1), lines[:5]
    assert users.count("nobody-here") == rounds
    assert "wrong-password" not in master.log()


def test_d16_bom_and_a_bad_byte_lock_out_nobody_else(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_bytes(
        b"\xef\xbb\xbffirst:" + hash_password("first-pw", "sha1").encode() + b"\r\n"
        b"latin1-caf\xe9:" + hash_password("x", "sha1").encode() + b"\n"
        b"second:" + apr1_md5(b"second-pw", "abcdefgh").encode() + b"\n"
    )
    messages: list[str] = []

    def collect(event: dict[str, object]) -> None:
        messages.append(" ".join(str(m) for m in event.get("message", ()) or ()))

    log.addObserver(collect)
    try:
        users = HtpasswdFile(path).users()
    finally:
        log.removeObserver(collect)
    assert sorted(users) == ["first", "second"]
    checker = HtpasswdChecker(path)
    assert checker.check("first", b"first-pw")
    assert checker.check("second", b"second-pw")
    assert [m for m in messages if "not UTF-8" in m] == [
        f"anybox_ci htpasswd: {path}:2: not UTF-8; line ignored"
    ]
