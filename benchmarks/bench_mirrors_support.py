"""A local git smart-HTTP server for bench_mirrors.py, with a simulated network latency.

``git http-backend`` runs as a CGI program behind a threaded HTTP/1.1 server bound to
127.0.0.1; every request waits ``--latency`` seconds before it is served, as a remote forge
would make it wait. ``GET /_stats`` answers the number of git requests served so far.

It runs in a process of its own, so that its threads do not compete for the benchmark's
interpreter lock::

    python benchmarks/bench_mirrors_support.py ROOT [--latency 0.05]

prints the port it listens on, then serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# request headers a CGI program sees, besides the HTTP_* copies of every header
_CGI_HEADERS = {"content-type": "CONTENT_TYPE"}


class GitServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, root: Path, latency: float) -> None:
        super().__init__(("127.0.0.1", 0), GitHandler)
        self.root = root
        self.latency = latency
        self.requests = 0
        self.count_lock = threading.Lock()
        self.base_env = {
            key: value
            for key, value in os.environ.items()
            if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        }


class GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a forge offers it
    server: GitServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        if self.path == "/_stats":
            self._send(200, "OK", {"Content-Type": "application/json"}, self._stats())
            return
        self._git()

    def do_POST(self) -> None:
        self._git()

    def _stats(self) -> bytes:
        return json.dumps({"requests": self.server.requests}).encode()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _git(self) -> None:
        body = self._body()
        time.sleep(self.server.latency)
        with self.server.count_lock:
            self.server.requests += 1
        path, _, query = self.path.partition("?")
        env = dict(
            self.server.base_env,
            GIT_PROJECT_ROOT=str(self.server.root),
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            SERVER_NAME="127.0.0.1",
            REQUEST_METHOD=self.command,
            PATH_INFO=urllib.parse.unquote(path),
            QUERY_STRING=query,
            CONTENT_LENGTH=str(len(body)),
            REMOTE_ADDR=self.client_address[0],
        )
        for name, value in self.headers.items():
            env["HTTP_" + name.upper().replace("-", "_")] = value
            if name.lower() in _CGI_HEADERS:
                env[_CGI_HEADERS[name.lower()]] = value
        if "Git-Protocol" in self.headers:  # protocol v2, as web servers are told to pass it
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, check=False
        )
        out = proc.stdout
        split = out.find(b"\r\n\r\n")
        head, payload = (out[:split], out[split + 4 :]) if split >= 0 else out.split(b"\n\n", 1)
        status, reason, headers = 200, "OK", {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code, _, reason = value.strip().partition(" ")
                status = int(code)
            elif name:
                headers[name.strip()] = value.strip()
        if proc.returncode != 0 and not head:
            status, reason, headers = 500, "Internal Server Error", {}
            payload = proc.stderr
        self._send(status, reason, headers, payload)

    def _send(self, status: int, reason: str, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status, reason)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the folder of the bare repositories")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    args = parser.parse_args()
    server = GitServer(args.root.resolve(), args.latency)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or dies)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
