"""Latency from a change notification to its build request (tree-stable-timer 0).

A real master in hook mode (no pollers) gets N changes, one at a time, through
``update-mirrors``' delivery path (spool + authenticated POST to the ``anybox`` hook);
the time until the build request appears in the REST API is measured for each. The
baseline, in the same run and on the same master, is Buildbot's own ``base`` dialect,
which neither validates nor de-duplicates.

    .venv/bin/python benchmarks/bench_latency.py [--changes 15]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from anybox_ci.changes.delivery import deliver
from anybox_ci.changes.protocol import Change, change_form
from anybox_ci.changes.spool import Spool
from anybox_ci.devtools import localmaster as localrun

USER, PASSWORD = "anybox-ci", "bench-hook-pw"


def _requests(master: localrun.Master) -> int:
    """The newest build request's id (0 when none); a torn read is retried."""
    for _ in range(20):
        try:
            found = master.get("buildrequests?order=-buildrequestid&limit=1")["buildrequests"]
            return int(found[0]["buildrequestid"]) if found else 0
        except (OSError, ValueError, http.client.HTTPException):
            time.sleep(0.01)
    raise RuntimeError("the REST API keeps failing")


def _wait_new(master: localrun.Master, before: int, started: float) -> float:
    while _requests(master) <= before:
        if time.monotonic() - started > 30:
            raise TimeoutError("no build request within 30 s")
        time.sleep(0.01)
    return time.monotonic() - started


def _change(repo: str, i: int, tag: str) -> Change:
    revision = hashlib.sha1(f"{tag}{i}{time.time()}".encode()).hexdigest()
    return Change(
        repository=repo,
        branch="main",
        revision=revision,
        author="Dev <d@e.com>",
        comments=f"change {i}",
        files=("a.py",),
        when=time.time(),
        vcs="git",
    )


def _post_base(master: localrun.Master, change: Change) -> None:
    form = change_form("", change)
    form.pop("properties")
    form.pop("codebase")  # let the codebase generator name it, as for our hook
    body = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(master.url + "change_hook/base", data=body)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anybox-latency-") as tmp:
        root = Path(tmp)
        repo = "https://git.example.com/erp.git"
        (root / "buildouts").mkdir()
        manifest = f"[erp]\nbuildout = git {repo} main buildout.cfg\ntree-stable-timer = 0\n"
        workers = "[w1]\npassword = secret:worker-w1\n"
        master = localrun.Master(
            root / "master",
            extra_config=(
                "c['configurators'] = [AnyboxConfigurator(basedir, forge_hooks={'base': {}})]\n"
            ),
        )
        master.create(
            manifest,
            workers,
            secrets={"worker-w1": "pw", "change-hook-users": f"{USER}:{PASSWORD}"},
        )
        spool = Spool(root / "spool")
        ours, base = [], []
        try:
            master.start()
            master.wait(lambda: "erp" in master.builder_ids(), 60, "builders")
            for i in range(args.changes):
                before = _requests(master)
                started = time.monotonic()
                spool.append([_change(repo, i, "ours")])
                report = deliver(spool, master.url, USER, PASSWORD)
                if report.error:
                    print(f"delivery failed: {report.error}", file=sys.stderr)
                    return 1
                ours.append(_wait_new(master, before, started))
                before = _requests(master)
                started = time.monotonic()
                _post_base(master, _change(repo, i, "base"))
                base.append(_wait_new(master, before, started))
        finally:
            master.stop()
    med_ours, med_base = statistics.median(ours), statistics.median(base)
    print(f"changes: {args.changes} each way")
    print(
        f"anybox hook (spool + validated POST) -> build request: median {med_ours * 1000:.0f} ms"
        f" (min {min(ours) * 1000:.0f}, max {max(ours) * 1000:.0f})"
    )
    print(
        f"buildbot base hook (baseline)         -> build request: median {med_base * 1000:.0f} ms"
        f" (min {min(base) * 1000:.0f}, max {max(base) * 1000:.0f})"
    )
    print(f"target: median <= 1000 ms -> {'OK' if med_ours <= 1.0 else 'MISSED'}")
    return 0 if med_ours <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
