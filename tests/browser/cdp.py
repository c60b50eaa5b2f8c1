"""Drive a real headless Chromium over the Chrome DevTools Protocol, standard library only.

Chromium is started with ``--remote-debugging-pipe``: protocol messages are JSON objects ended by a
NUL byte, read by the browser on its file descriptor 3 and written on its descriptor 4. There is no
port, no websocket and no ChromeDriver, so nothing here depends on a matching driver version or on
a third-party client library.

Clicks are real input events (``Input.dispatchMouseEvent`` at the element's centre, after checking
that the element is the one hit at that point), so they go through the browser's hit testing like
a user's click. HTTP authentication challenges are answered through the ``Fetch`` domain, which is
what the browser's own login prompt does.

Every wait polls the DOM; there is no fixed sleep.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("ANYBOX_CI_CHROMIUM", "/usr/bin/chromium")
#: Headless, and no connection to Google's services: this machine's network is closed.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)

# A function finding the first visible element matching a CSS selector whose text is `text`
# (trimmed, exact) or contains it (`partial`); `text` null means any text.
_FIND = """
(css, text, partial) => {
  for (const el of document.querySelectorAll(css)) {
    if (!el.getClientRects().length) continue;
    if (text === null) return el;
    const t = (el.innerText || el.textContent || '').trim();
    if (partial ? t.includes(text) : t === text) return el;
  }
  return null;
}
"""


# Where to click the element `_FIND` finds: its centre, once scrolled into view, when no animation
# moves it and the element (or one of its descendants) is what a click there would hit; null
# otherwise.
_POINT = f"""(css, text, partial) => {{
  const el = ({_FIND})(css, text, partial);
  if (!el) return null;
  // not while it, or a box holding it, is moving or fading (a modal sliding in, a menu unfolding)
  const moving = document.getAnimations().some(a => a.playState === 'running'
    && a.effect && a.effect.target && a.effect.target.contains(el));
  if (moving) return null;
  el.scrollIntoView({{block: 'center', inline: 'center'}});
  const r = el.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) return null;
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  if (!hit || !(hit === el || el.contains(hit))) return null;
  return [x, y];
}}"""


class CDPError(RuntimeError):
    """The browser answered a command with an error, or a script threw."""


class Chromium:
    """One headless Chromium with one page (tab), driven over the DevTools pipe."""

    def __init__(self, log_path: Path, width: int = 1400, height: int = 1000) -> None:
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="anybox-ci-chromium-"))
        to_browser_r, self._out = os.pipe()
        self._in, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            read_end = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=wire_fds,
            close_fds=False,  # fds 3 and 4 must survive; the pipes' own fds are close-on-exec
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        #: HTTP authentication challenges answered, as given by ``Fetch.authRequired``.
        self.auth_challenges: list[dict[str, Any]] = []
        self.session: str | None = None
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            self.page("Page.enable")
            self.page(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ protocol

    def _post(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data) :]
        return self._next_id

    def _pump(self, timeout: float) -> None:
        """Read and dispatch what the browser sent, waiting at most ``timeout`` for the first."""
        ready, _, _ = select.select([self._in], [], [], max(timeout, 0))
        if not ready:
            return
        chunk = os.read(self._in, 1 << 20)
        if not chunk:
            raise CDPError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()})")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        for raw in messages:
            message = json.loads(raw)
            if "id" in message:
                self._replies[message["id"]] = message
            elif handler := self._handlers.get(message.get("method", "")):
                handler(message.get("params", {}))

    def send(self, method: str, *, _session: str | None = None, **params: Any) -> dict[str, Any]:
        """A command and its result; events arriving meanwhile go to their handlers."""
        msg_id = self._post(method, params, _session)
        deadline = time.monotonic() + 30
        while msg_id not in self._replies:
            if time.monotonic() > deadline:
                raise CDPError(f"no answer to {method} within 30 s")
            self._pump(deadline - time.monotonic())
        reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return dict(reply.get("result", {}))

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page's session."""
        return self.send(method, _session=self.session, **params)

    def idle(self, seconds: float) -> None:
        """Let events be handled for a while (used between DOM polls)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(left)

    # ------------------------------------------------------------------ auth

    def answer_http_auth(self, url_pattern: str, username: str, password: str) -> None:
        """Answer HTTP authentication challenges of requests matching ``url_pattern`` (a
        ``Fetch`` glob) with these credentials, as a user would in the browser's login prompt."""

        def paused(params: dict[str, Any]) -> None:
            self._post("Fetch.continueRequest", {"requestId": params["requestId"]}, self.session)

        def challenged(params: dict[str, Any]) -> None:
            self.auth_challenges.append(dict(params.get("authChallenge", {})))
            response = {
                "response": "ProvideCredentials",
                "username": username,
                "password": password,
            }
            self._post(
                "Fetch.continueWithAuth",
                {"requestId": params["requestId"], "authChallengeResponse": response},
                self.session,
            )

        self._handlers["Fetch.requestPaused"] = paused
        self._handlers["Fetch.authRequired"] = challenged
        self.page("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": url_pattern}])

    def stop_answering_http_auth(self) -> None:
        self.page("Fetch.disable")
        self._handlers.pop("Fetch.requestPaused", None)
        self._handlers.pop("Fetch.authRequired", None)

    # ------------------------------------------------------------------ DOM

    def navigate(self, url: str) -> None:
        result = self.page("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = self.page(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"script failed: {text}")
        return result["result"].get("value")

    def call(self, function: str, *args: Any) -> Any:
        """Call a JavaScript function source with JSON arguments; its JSON result."""
        # A DOM node is not JSON: it stands for "found" (true).
        return self.evaluate(
            f"(v => v instanceof Node ? true : v)(({function})(...{json.dumps(list(args))}))"
        )

    def wait_for(self, function: str, *args: Any, timeout: float = 20, what: str = "") -> Any:
        """Poll ``function(*args)`` in the page until it returns something truthy; return it.

        Errors while the page is (re)loading count as "not yet".
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                value = self.call(function, *args)
                if value:
                    return value
            except CDPError as exc:
                last_error = exc
            if time.monotonic() > deadline:
                detail = f" (last error: {last_error})" if last_error else ""
                raise TimeoutError(
                    f"timed out after {timeout:.0f}s waiting for {what or function}{detail}\n"
                    f"URL: {self.url()}\nPage text:\n{self.text()[:3000]}"
                )
            self.idle(0.2)

    def url(self) -> str:
        try:
            return str(self.evaluate("location.href"))
        except CDPError as exc:
            return f"(unknown: {exc})"

    def text(self, css: str = "body") -> str:
        """The visible text of the first element matching ``css`` ('' when there is none)."""
        try:
            value = self.call("(css) => document.querySelector(css)?.innerText ?? ''", css)
        except CDPError:
            return ""
        return str(value)

    def wait_text(
        self, css: str, text: str | None = None, *, partial: bool = False, timeout: float = 20
    ) -> str:
        """Wait for a visible element matching ``css`` (and ``text``); return its text."""
        found = self.wait_for(
            f"(css, text, partial) => {{ const el = ({_FIND})(css, text, partial);"
            " return el ? ((el.innerText || el.textContent || '').trim() || ' ') : null; }",
            css,
            text,
            partial,
            timeout=timeout,
            what=f"{css!r}" + (f" with text {text!r}" if text is not None else ""),
        )
        return str(found).strip()

    def click(
        self, css: str, text: str | None = None, *, partial: bool = False, timeout: float = 20
    ) -> None:
        """Click the first visible element matching ``css`` (and ``text``) with the mouse.

        Waits until it exists and is the topmost element at its centre (not covered by another
        element or an animation), scrolling it into view first.
        """
        point = self.wait_for(
            _POINT,
            css,
            text,
            partial,
            timeout=timeout,
            what=f"clickable {css!r}" + (f" with text {text!r}" if text is not None else ""),
        )
        x, y = point
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def clickable(self, css: str, text: str | None = None, *, partial: bool = False) -> bool:
        """Whether :meth:`click` would click such an element right now."""
        try:
            return bool(self.call(_POINT, css, text, partial))
        except CDPError:
            return False

    def settled(self, timeout: float = 5) -> bool:
        """Wait until no finite animation or transition runs (infinite ones, such as the pulse of
        a running step, are ignored); whether that happened within ``timeout``."""
        try:
            self.wait_for(
                "() => document.getAnimations().every(a => a.playState !== 'running'"
                " || a.effect?.getComputedTiming().iterations === Infinity)",
                timeout=timeout,
                what="animations to end",
            )
        except TimeoutError:
            return False
        return True

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport, once animations are over (or after 5 s of them)."""
        self.settled()
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(CDPError, OSError):
                    self.send("Browser.close")
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            for fd in (self._in, self._out):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._log.close()
            shutil.rmtree(self.profile, ignore_errors=True)
