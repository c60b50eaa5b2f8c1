"""The change spool and its delivery, against a real local HTTP server.

What the master does with the changes (validation, de-duplication) is in
test_change_hook.py, against a real Buildbot master.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from anybox_ci.changes.delivery import SECRET_ENV, deliver, hook_endpoint, read_secret
from anybox_ci.changes.layout import Remote
from anybox_ci.changes.protocol import CHANGE_ID_PROPERTY, VCS_PROPERTY, Change
from anybox_ci.changes.spool import Spool
from anybox_ci.cli.update_mirrors import main as update_mirrors_main
from tests.test_mirrors import commit, make_repo

SECRET = "s3cret-Hook-pw"


def make_change(n: int, repository: str = "https://forge.example.com/erp.git") -> Change:
    return Change(
        repository=repository,
        branch="main",
        revision=f"{n:040x}",
        author="Ada <ada@example.com>",
        comments=f"commit {n}\n\nwith ünïcode",
        files=("a.py", f"dir/file {n}.txt"),
        when=1_700_000_000.0 + n,
        vcs="git",
        project="erp",
        codebase="erp",
    )


class Recorder:
    """A tiny HTTP server that records posts and answers with queued status codes."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []  # status codes to use next; 202 when empty
        self.redirect_to = ""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                recorder.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "form": form}
                )
                if recorder.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", recorder.redirect_to)
                    self.end_headers()
                    return
                code = recorder.answers.pop(0) if recorder.answers else 202
                body = b"1 change found" if code < 300 else b"invalid branch name 'a..b'"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def revisions(self) -> list[str]:
        return [r["form"]["revision"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def closed_port_url() -> str:
    rec = Recorder()
    rec.close()
    return rec.url


# --------------------------------------------------------------------------- spool


def test_spool_keeps_order_skips_waiting_duplicates_and_leaves_no_temp_files(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.append([make_change(1), make_change(2)]) == 2
    assert spool.append([make_change(2), make_change(3)]) == 1  # 2 is already waiting
    names = [p.name for p in spool.pending()]
    assert [n.split("-")[0] for n in names] == [f"{i:020d}" for i in (1, 2, 3)]
    assert [Spool.load(p)[1] for p in spool.pending()] == [make_change(i) for i in (1, 2, 3)]
    assert {p.name for p in spool.directory.iterdir()} == {*names, ".lock"}
    cid, change = Spool.load(spool.pending()[0])
    assert cid == change.change_id == make_change(1).change_id
    assert len(cid) == 64


def test_spool_appends_from_threads_never_clash(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    threads = [
        threading.Thread(target=spool.append, args=([make_change(i * 10 + j) for j in range(10)],))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pending = spool.pending()
    assert len(pending) == 80
    assert len({p.name[:20] for p in pending}) == 80


def test_change_id_depends_on_what_identifies_a_change_only() -> None:
    a = make_change(1)
    assert a.change_id == Change(**{**a.__dict__, "comments": "other", "project": "x"}).change_id
    assert a.change_id != Change(**{**a.__dict__, "branch": "other"}).change_id
    assert a.change_id != Change(**{**a.__dict__, "repository": "x"}).change_id
    assert a.change_id != Change(**{**a.__dict__, "vcs": "hg"}).change_id


# --------------------------------------------------------------------------- delivery


def test_delivery_posts_in_order_with_basic_auth_and_empties_the_spool(
    tmp_path: Path, recorder: Recorder
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(i) for i in range(1, 4)])
    report = deliver(spool, recorder.url, "hookuser", SECRET)
    assert (report.delivered, report.rejected, report.remaining, report.error) == (3, 0, 0, "")
    assert spool.pending() == []
    assert recorder.revisions() == [f"{i:040x}" for i in range(1, 4)]
    first = recorder.requests[0]
    assert first["path"] == "/change_hook/anybox"
    assert first["auth"] == "Basic " + base64.b64encode(f"hookuser:{SECRET}".encode()).decode()
    form = first["form"]
    change = make_change(1)
    assert form == {
        "repository": change.repository,
        "branch": "main",
        "revision": change.revision,
        "author": change.author,
        "comments": change.comments,
        "when_timestamp": "1700000001.0",
        "files": json.dumps(list(change.files)),
        "properties": json.dumps({CHANGE_ID_PROPERTY: change.change_id, VCS_PROPERTY: "git"}),
    }


def test_unreachable_master_keeps_everything_then_delivers_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(i) for i in range(1, 4)])
    report = deliver(spool, closed_port_url(), "u", SECRET, timeout=2)
    assert (report.delivered, report.remaining) == (0, 3)
    assert "cannot reach" in report.error and SECRET not in report.error
    assert len(spool.pending()) == 3
    spool.append([make_change(4)])
    rec = Recorder()
    try:
        assert deliver(spool, rec.url, "u", SECRET).delivered == 4
        assert rec.revisions() == [f"{i:040x}" for i in range(1, 5)]
    finally:
        rec.close()


def test_a_failure_stops_delivery_to_keep_the_order(tmp_path: Path, recorder: Recorder) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(i) for i in range(1, 5)])
    recorder.answers = [202, 503]
    report = deliver(spool, recorder.url, "u", SECRET)
    assert (report.delivered, report.remaining) == (1, 3)
    assert report.error.startswith("HTTP 503")
    assert recorder.revisions() == [f"{i:040x}" for i in (1, 2)]  # 3 and 4 not tried
    assert deliver(spool, recorder.url, "u", SECRET).delivered == 3
    assert recorder.revisions()[2:] == [f"{i:040x}" for i in (2, 3, 4)]


def test_wrong_secret_stops_and_never_shows_the_secret(tmp_path: Path, recorder: Recorder) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(1)])
    recorder.answers = [401]
    report = deliver(spool, recorder.url, "u", SECRET)
    assert (report.delivered, report.remaining) == (0, 1)
    assert "HTTP 401" in report.error and SECRET not in report.error


def test_refused_change_is_set_aside_and_does_not_block_the_queue(
    tmp_path: Path, recorder: Recorder
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(i) for i in range(1, 4)])
    recorder.answers = [202, 400, 202]
    report = deliver(spool, recorder.url, "u", SECRET)
    assert (report.delivered, report.rejected, report.remaining) == (2, 1, 0)
    rejected = sorted(p.name for p in spool.rejected_dir.iterdir())
    assert len(rejected) == 2 and rejected[1].endswith(".json.reason")
    reason = (spool.rejected_dir / rejected[1]).read_text()
    assert "HTTP 400: invalid branch name 'a..b'" in reason


def test_corrupt_spool_file_is_set_aside(tmp_path: Path, recorder: Recorder) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([make_change(1), make_change(2)])
    spool.pending()[0].write_text("{not json")
    report = deliver(spool, recorder.url, "u", SECRET)
    assert (report.delivered, report.rejected) == (1, 1)


def test_redirects_are_not_followed(tmp_path: Path, recorder: Recorder) -> None:
    other = Recorder()
    try:
        recorder.redirect_to = other.url + "change_hook/anybox"
        spool = Spool(tmp_path / "spool")
        spool.append([make_change(1)])
        report = deliver(spool, recorder.url, "u", SECRET)
        assert report.remaining == 1 and "307" in report.error
        assert other.requests == []  # the credentials went nowhere else
    finally:
        other.close()


def test_hook_endpoint() -> None:
    assert hook_endpoint("http://m:8010") == "http://m:8010/change_hook/anybox"
    assert hook_endpoint("https://m/bb/") == "https://m/bb/change_hook/anybox"
    assert hook_endpoint("http://m/change_hook/anybox") == "http://m/change_hook/anybox"
    for bad in ("ftp://m/", "m:8010", "http://user:pw@m/"):
        with pytest.raises(ValueError):
            hook_endpoint(bad)


def test_secret_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert read_secret(path, environ={}) == SECRET
    assert read_secret(None, environ={SECRET_ENV: SECRET}) == SECRET
    with pytest.raises(ValueError, match="no hook secret"):
        read_secret(None, environ={})
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_secret(path, environ={})
    with pytest.raises(ValueError, match="cannot read secret file"):
        read_secret(tmp_path / "missing", environ={})


# --------------------------------------------------------------------------- CLI end to end


def test_update_mirrors_cli_spools_and_delivers(
    tmp_path: Path,
    recorder: Recorder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = make_repo(tmp_path / "src", "git")
    remotes = tmp_path / "remotes.json"
    remotes.write_text(json.dumps([{"vcs": "git", "url": str(src)}]))
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text(SECRET)
    spool_dir = tmp_path / "spool"
    argv = ["--root", str(tmp_path / "m"), "--remotes-file", str(remotes), "--spool",
            str(spool_dir), "--notify", recorder.url, "--user", "hookuser",
            "--secret-file", str(secret_file)]  # fmt: skip
    assert update_mirrors_main(argv) == 0
    revs = [commit(src, "git", {"f": str(i)}, f"c{i}") for i in range(3)]

    recorder.answers = [202, 503]  # the master fails after one change
    assert update_mirrors_main(argv) == 0
    out, err = capsys.readouterr()
    assert "1 ok, 0 failed, 3 changes, 1 delivered, 2 still spooled" in out, err
    assert "delivery stopped: HTTP 503" in err
    assert SECRET not in out + err

    monkeypatch.setenv(SECRET_ENV, SECRET)  # the environment works too
    assert update_mirrors_main(argv[:-2]) == 0
    out, _ = capsys.readouterr()
    assert "1 ok, 0 failed, 0 changes, 2 delivered, 0 still spooled" in out
    assert recorder.revisions() == [revs[0], revs[1], revs[1], revs[2]]  # 2nd retried
    assert Remote("git", str(src))  # the remote the spool names
    assert os.listdir(spool_dir) == [".lock"]
