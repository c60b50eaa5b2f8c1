"""D11: the matrix page obeys ``anonymous_read=False`` as the REST API does.

A real master (``buildbot create-master``/``start``) with the htpasswd login, the authz of
``authz_config(anonymous_read=False)`` and the matrix page as the configurator adds it to the
web UI; requests go over HTTP, the login through ``/auth/login`` and its session cookie.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

import pytest

from anybox_ci.core.plan import Cell, Matrix
from anybox_ci.core.versions import Version
from anybox_ci.devtools.localmaster import Master, http_request
from anybox_ci.www.matrix_page import MatrixPage
from anybox_ci.www.passwords import hash_password
from tests.test_htpasswd import Client

PAGE = "plugins/wsgi_dashboards/anybox-matrix/index.html"
BADGE = "plugins/wsgi_dashboards/anybox-matrix/badges/secret-erp.svg"
MASTER_CFG = """\
from types import MappingProxyType
from buildbot.plugins import schedulers, util, worker
from anybox_ci.core.plan import Cell, Matrix
from anybox_ci.core.versions import Version
from anybox_ci.www.htpasswd import HtpasswdAuth, authz_config
from anybox_ci.www.matrix_page import dashboard

cell = Cell('secret-erp-pg15', 'secret-erp', (('postgresql', Version.parse('15')),),
            ('private-worker',), MappingProxyType({{'pg_version': '15'}}))

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['title'] = 'matrix authz test'
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['protocols'] = {{'null': {{}}}}
c['workers'] = [worker.LocalWorker('local1')]
c['builders'] = [util.BuilderConfig(name='b', workernames=['local1'], factory=util.BuildFactory())]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b'])]
c['www'] = {{
    'port': {port},
    'auth': HtpasswdAuth({htpasswd!r}),
    'authz': authz_config(admins=['alice'], anonymous_read=False, force_roles=[]),
    'plugins': {{'wsgi_dashboards': [dashboard(Matrix((cell,), ()))]}},
}}
"""


def secret_matrix() -> Matrix:
    """One cell whose name only readers may learn (the master.cfg above makes the same)."""
    cell = Cell(
        "secret-erp-pg15",
        "secret-erp",
        (("postgresql", Version.parse("15")),),
        ("private-worker",),
        MappingProxyType({"pg_version": "15"}),
    )
    return Matrix((cell,), ())


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Master]:
    base = tmp_path_factory.mktemp("matrix-authz")
    htpasswd = base / "htpasswd"
    htpasswd.write_text(f"bob:{hash_password('bob-pw', 'apr1')}\n", encoding="utf-8")
    live = Master(base / "master")
    live.create(config=MASTER_CFG.format(port=live.www_port, htpasswd=str(htpasswd)))
    with live.running():
        yield live


@pytest.mark.live
def test_d11_matrix_page_needs_the_right_to_read(master: Master) -> None:
    anonymous = Client(master.url)
    assert anonymous.get_json("/api/v2/builders")[0] == 403
    status, body = anonymous.request(PAGE)
    assert status == 403, body[:300]
    assert b"secret-erp" not in body and b"private-worker" not in body
    assert body.decode().count("\n") == 1  # one line
    # the badges follow the same rule: a README badge of a private master tells nothing
    status, body = anonymous.request(BADGE)
    assert status == 403 and b"secret-erp" not in body
    # a forged or garbage session cookie is anonymous, and no traceback in the log
    for cookie in ("TWISTED_SESSION=garbage", "TWISTED_SESSION=a.b.c", "TWISTED_SESSION="):
        for path in (PAGE, BADGE):
            status, body = http_request(master.url + path, headers={"Cookie": cookie})
            assert status == 403 and b"secret-erp" not in body
    bob = Client(master.url)
    assert bob.login("bob", "bob-pw") == 200
    assert bob.get_json("/api/v2/builders")[0] == 200
    status, body = bob.request(PAGE)
    assert status == 200 and b"secret-erp-pg15" in body and b"private-worker" in body
    status, body = bob.request(BADGE)
    assert status == 200 and b"<svg" in body and b"secret-erp" in body
    # a hostile query is one line, never an echo of the value
    status, body = bob.request(PAGE + "?tag=%3Cscript%3E")
    assert status == 400 and b"<script>" not in body
    log = master.log()
    assert "Traceback" not in log, master.log_tail(60)


def test_d11_page_without_a_master_shows_nothing() -> None:
    seen: list[str] = []
    body = b"".join(
        MatrixPage(secret_matrix())({"REQUEST_METHOD": "GET"}, lambda s, h: seen.append(s))
    )
    assert seen[0].startswith("403") and b"secret-erp" not in body
