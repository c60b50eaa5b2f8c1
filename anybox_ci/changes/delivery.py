"""Posting the spool to the master's ``anybox`` change hook, in order, exactly once.

A change leaves the spool only once the master has acknowledged it. A change whose
acknowledgement was lost is simply posted again: it carries its identity and the hook
acknowledges a replay without adding it twice. Delivery stops at the first transient failure
so that changes keep their order; the next run (cron or push hook) resumes from there.

With several masters sharing one database, any of them adds a change for all; ``deliver``
takes their URLs in order of preference and moves to the next when one cannot be reached or
answers with a server error (5xx), for the rest of the run. The masters' shared database
makes a change posted to two of them count once (see ``anybox_ci.www.change_claims``).

The hook secret is read from a file or the environment, never from argv (visible to every
local user in ``ps``), and is never printed.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anybox_ci.changes.protocol import HOOK_PATH, change_form
from anybox_ci.changes.spool import Spool

SECRET_ENV = "ANYBOX_CI_HOOK_SECRET"
DEFAULT_TIMEOUT = 10.0


def read_secret(
    secret_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> str:
    """The hook password, from ``secret_file`` or else ``$ANYBOX_CI_HOOK_SECRET``."""
    if secret_file:
        try:
            secret = Path(secret_file).read_text().strip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {secret_file}: {exc.strerror}") from None
        if not secret:
            raise ValueError(f"secret file {secret_file} is empty")
        return secret
    secret = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    if not secret:
        raise ValueError(f"no hook secret: give --secret-file or set {SECRET_ENV}")
    return secret


def hook_endpoint(url: str) -> str:
    """``URL/change_hook/anybox`` from the master's base URL; credentials in it are refused."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"notify URL must be http(s)://HOST[:PORT][/PATH], got {url!r}")
    if "@" in parts.netloc:
        raise ValueError("notify URL must not contain credentials: use --user and --secret-file")
    path = parts.path.rstrip("/")
    if not path.endswith(HOOK_PATH):
        path += HOOK_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    rejected: int
    remaining: int
    error: str = ""  # why delivery stopped before the end; empty when all went through


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the credentials elsewhere, or drop the POST: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _post(endpoint: str, fields: Mapping[str, str], auth: str, timeout: float) -> tuple[int, str]:
    """(HTTP status, one-line body or error); status 0 when the master could not be reached."""
    request = urllib.request.Request(
        endpoint,
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(500).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode("utf-8", "replace").strip() or str(exc.reason)
        return exc.code, " ".join(body.split())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, f"cannot reach {endpoint}: {reason}"


def _failover(status: int) -> bool:
    """Whether another master may do better: this one is unreachable or failed itself."""
    return status == 0 or status >= 500


def deliver(
    spool: Spool,
    url: str | Sequence[str],
    user: str,
    secret: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> DeliveryReport:
    """Post the spooled changes in order; each leaves the spool once a master accepted it.

    ``url`` is one master's base URL, or several in order of preference: when a master is
    unreachable or answers 5xx, the same change goes to the next one, which is then used for
    the rest of the run. A 400 answer means the master refuses that change for good (unknown
    repository, bad branch): it is moved to ``rejected/`` so it cannot block the queue. A 401,
    or every master failing, stops delivery and keeps the rest for the next run.
    """
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("no master URL to deliver changes to")
    endpoints = [hook_endpoint(u) for u in urls]
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    auth = f"Basic {token}"
    delivered = rejected = 0
    current = 0  # the master that answered last
    with spool.locked():
        pending = spool.pending()
        for index, path in enumerate(pending):
            try:
                cid, change = spool.load(path)
            except ValueError as exc:
                spool.reject(path, str(exc))
                rejected += 1
                continue
            fields = change_form(cid, change)
            failures: list[str] = []
            for attempt in range(len(endpoints)):
                which = (current + attempt) % len(endpoints)
                status, message = _post(endpoints[which], fields, auth, timeout)
                if not _failover(status):
                    current = which
                    break
                failures.append(f"HTTP {status}: {message}" if status else message)
            if 200 <= status < 300:
                spool.remove(path)
                delivered += 1
            elif status == 400:
                spool.reject(path, f"HTTP 400: {message}")
                rejected += 1
            else:
                if status == 401:
                    what = "HTTP 401: the master refused the hook user or secret"
                else:
                    what = "; ".join(failures) if failures else f"HTTP {status}: {message}"
                return DeliveryReport(delivered, rejected, len(pending) - index, what)
    return DeliveryReport(delivered, rejected, 0)
