"""Hostile posts to the ``anybox`` change hook of a real master: each fails safely.

- D8: a copy of a change with the right revision but another codebase or project is refused,
  and does not make the genuine change that follows look like a replay;
- D12: inputs that used to give a 500 and a traceback (an infinite or huge time, no author,
  JSON nested 50,000 deep) give a 400 with a one-line reason;
- D13: each field has a size limit (400), and a body too large for the hook is refused
  (413) from its announced length, before the master reads it, even before the login check.

The master is the one of ``tests/test_change_hook.py`` (``buildbot create-master``/``start``,
the hook behind ``change_hook_auth``), plus the matrix page as the configurator adds it to
the web UI, whose plugin hook installs the request body limits.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import resource, server

from anybox_ci.changes.protocol import (
    MAX_AUTHOR,
    MAX_COMMENTS,
    MAX_FILES,
    MAX_HOOK_BODY,
    change_form,
)
from anybox_ci.core.vcs import codebase_name
from anybox_ci.devtools.localmaster import http_request
from anybox_ci.www.limits import BodyLimitedRequest, body_limit
from tests.test_change_hook import FORGE, SECRET, USER, HookMaster, hook_master, make_change

REPOS = ["d8", "d12", "d13", "sizes"]
#: the matrix page, as AnyboxConfigurator adds it to a master with a web UI
WITH_MATRIX_PAGE = """
from anybox_ci.core.plan import Matrix
from anybox_ci.www.matrix_page import dashboard
c['www']['plugins'] = {'wsgi_dashboards': [dashboard(Matrix((), ()))]}
"""


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookMaster]:
    known = {FORGE + name: ["main"] for name in REPOS}
    base = tmp_path_factory.mktemp("security-hook")
    with hook_master(base, known, extra_config=WITH_MATRIX_PAGE) as live:
        yield live


def _one_line_400(code: int, body: str, expected: str) -> None:
    assert code == 400, body
    assert expected in body, body
    assert "\n" not in body.strip() and "Traceback" not in body


@pytest.mark.live
def test_d8_a_copy_with_another_codebase_or_project_does_not_block_the_change(
    master: HookMaster,
) -> None:
    repository = FORGE + "d8"
    genuine = make_change(repository, 1)
    fields = change_form(genuine.change_id, genuine)
    for override, reason in [
        ({"codebase": "wrong"}, "codebase 'wrong' is not the one of this repository"),
        ({"codebase": codebase_name(FORGE + "d12", "main")}, "is not the one of this"),
        ({"project": "elsewhere"}, "unexpected project 'elsewhere'"),
    ]:
        code, body = master.hook({**fields, **override})
        _one_line_400(code, body, reason)
    assert master.changes(repository) == []  # nothing was added, nothing marked as seen
    assert master.hook(fields) == (200, "1 change found")
    assert [c["revision"] for c in master.changes(repository)] == [genuine.revision]
    # the codebase the configuration gives that repository and branch is welcome
    second = make_change(repository, 2)
    named = {**change_form(second.change_id, second), "codebase": codebase_name(repository, "main")}
    assert master.hook(named) == (200, "1 change found")


@pytest.mark.live
def test_d12_inputs_that_gave_a_500_give_a_one_line_400(master: HookMaster) -> None:
    repository = FORGE + "d12"
    change = make_change(repository, 1)
    fields = change_form(change.change_id, change)
    no_author = {k: v for k, v in fields.items() if k != "author"}
    deep_files = "[" * 50_000 + "]" * 50_000
    deep_properties = '{"a":' * 50_000 + "1" + "}" * 50_000
    cases: list[tuple[dict[str, str], str]] = [
        ({**fields, "when_timestamp": "inf"}, "when_timestamp 'inf' is out of range"),
        ({**fields, "when_timestamp": "1e300"}, "when_timestamp '1e300' is out of range"),
        ({**fields, "when_timestamp": "nan"}, "when_timestamp 'nan' is out of range"),
        ({**fields, "when_timestamp": "-5"}, "out of range"),
        ({**fields, "when_timestamp": "soon"}, "is not a number"),
        (no_author, "missing author"),
        ({**fields, "author": ""}, "missing author"),
        ({**fields, "files": deep_files}, "files is nested too deeply"),
        ({**fields, "properties": deep_properties}, "field properties is longer than"),
        ({**fields, "comments": "nul\x00byte"}, "field comments contains a control character"),
        ({**fields, "author": "two\nlines"}, "field author contains a control character"),
        ({**fields, "who": "someone"}, "unexpected fields 'who'"),
    ]
    for form, reason in cases:
        code, body = master.hook(form)
        _one_line_400(code, body, reason)
    assert master.post("change_hook/anybox", fields=fields)[0] == 401  # no login, no look
    query = urllib.parse.urlencode(fields)  # a GET (an <img> in a page...) adds nothing
    code, raw = http_request(f"{master.url}change_hook/anybox?{query}", auth=(USER, SECRET))
    _one_line_400(code, raw.decode(), "changes must be posted")
    assert master.changes(repository) == []
    assert master.hook(fields) == (200, "1 change found")
    log = master.log()
    assert "Traceback" not in log and "Unhandled Error" not in log, master.log_tail(60)


@pytest.mark.live
def test_d13_each_field_has_a_size_limit(master: HookMaster) -> None:
    repository = FORGE + "sizes"
    change = make_change(repository, 1)
    fields = change_form(change.change_id, change)
    cases = [
        ({"comments": "x" * (MAX_COMMENTS + 1)}, f"longer than {MAX_COMMENTS} characters"),
        ({"author": "a" * (MAX_AUTHOR + 1)}, f"longer than {MAX_AUTHOR} characters"),
        ({"files": json.dumps([f"f{i}" for i in range(MAX_FILES + 1)])}, "at most"),
        ({"files": json.dumps(["p" * 2000])}, "file path 'ppp"),
        ({"files": json.dumps(["a\nb"])}, "control character"),
        ({"files": json.dumps(["x" * 1000] * 300)}, "field files is longer than"),
        ({"codebase": "c" * 300}, "field codebase is longer than"),
    ]
    for override, reason in cases:
        code, body = master.hook({**fields, **override})
        _one_line_400(code, body, reason)
    assert master.changes(repository) == []
    # what a sender sends is always within the limits: a huge commit is cut, not refused
    huge = make_change(repository, 2)
    huge = type(huge)(**{**huge.__dict__, "comments": "y" * 200_000,
                         "files": tuple(f"dir/{i}.py" for i in range(5000))})  # fmt: skip
    assert master.hook(change_form(huge.change_id, huge)) == (200, "1 change found")
    [added] = master.changes(repository)
    assert len(added["comments"]) <= MAX_COMMENTS and len(added["files"]) <= MAX_FILES


def _raw_post(master: HookMaster, head: str, body: bytes = b"") -> bytes:
    """Send a request's head (and maybe some body) on a socket; what the master answers."""
    with socket.create_connection(("127.0.0.1", master.www_port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


@pytest.mark.live
def test_d13_a_too_large_body_is_refused_before_it_is_read(master: HookMaster) -> None:
    size = 20 * 1024 * 1024
    head = (
        "POST /change_hook/anybox HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_post(master, head)  # not a byte of the body: the master must not wait for it
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert f"at most {MAX_HOOK_BODY}".encode() in answer
    assert time.monotonic() - started < 5
    # A body the hook takes is still read, and then it is the login that refuses it.
    form = "repository=x"
    small = head.replace(str(size), str(len(form)))
    assert _raw_post(master, small.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
                     form.encode()).startswith(b"HTTP/1.1 401 ")  # fmt: skip
    change = make_change(FORGE + "d13", 1)
    assert master.hook(change_form(change.change_id, change)) == (200, "1 change found")
    assert "refused a 20971520-byte request body from 127.0.0.1" in master.log()


# --------------------------------------------------------------------------- unit


class _Recorder(resource.Resource):
    isLeaf = True
    rendered: list[bytes] = []

    def render_POST(self, request: Any) -> bytes:
        self.rendered.append(request.content.read())
        return b"ok"


def _channel() -> tuple[Any, StringTransport]:
    site = server.Site(_Recorder(), timeout=None)  # no delayed call left in the reactor
    site.requestFactory = BodyLimitedRequest
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4321))
    channel.makeConnection(transport)
    return channel, transport


def test_d13_a_chunked_body_is_cut_off_at_the_limit() -> None:
    _Recorder.rendered = []
    channel, transport = _channel()
    channel.dataReceived(
        b"POST /change_hook/anybox HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    for _ in range(MAX_HOOK_BODY // len(chunk) + 2):
        channel.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    channel.dataReceived(b"0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 Payload Too Large\r\n")
    assert transport.disconnecting
    assert _Recorder.rendered == []  # the resource never saw it


def test_d13_limits_by_path_and_small_bodies_go_through() -> None:
    assert body_limit(b"/change_hook/anybox") == MAX_HOOK_BODY
    assert body_limit(b"/change_hook/anybox?x=1") == MAX_HOOK_BODY
    assert body_limit(b"/change_hook/github") > MAX_HOOK_BODY
    assert body_limit(b"/change_hook/anyboxx") > MAX_HOOK_BODY
    _Recorder.rendered = []
    channel, transport = _channel()
    channel.dataReceived(
        b"POST /change_hook/anybox HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert _Recorder.rendered == [b"hello"]
