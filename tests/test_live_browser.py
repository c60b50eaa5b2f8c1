"""The web UI in a real headless Chromium, as an operator uses it.

A real master made from master.cfg.sample, with htpasswd login (a bcrypt hash), one real worker
over PB, one real PostgreSQL server and the sample buildouts in local git repositories. Chromium
(Debian's ``chromium``) is driven over the DevTools protocol (tests/browser/cdp.py):

- log in through the top bar's "Anonymous" menu; the server's HTTP Basic challenge is answered the
  way the browser's login prompt would;
- the Projects page lists one project per buildout; a project shows its builders, tagged with the
  capability version (``pg15``);
- from the builder page, the "force" button and its form start a build, which the UI shows
  finishing green;
- the "Matrix" page lists the builders and the unmatched cell.

Screenshots land in ``test-artifacts/browser/`` at the repository root.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from anybox_ci.devtools.localmaster import (
    REPO_ROOT,
    Master,
    WorkerProcess,
    make_sample_repo,
    offer_line,
    sample_manifest,
)
from anybox_ci.www.htpasswd import hash_password
from tests.browser.cdp import CHROMIUM, CDPError, Chromium

pytestmark = pytest.mark.live

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
PREFERRED_MAJOR = 15
ADMIN_PASSWORD = "Adm1n-browser-Secret"
WORKER = "w1"
WORKER_PASSWORD = "w1-browser-Secret-77"
BUILD_TIMEOUT = 150.0

# The builders of a builders table (the Builders page, or a project's builders widget), with
# their tags, in display order.
BUILDER_ROWS = """(css) => {
  const table = document.querySelector(css);
  if (!table) return null;
  return Array.from(table.querySelectorAll('tr'))
    .filter(tr => tr.querySelector('td a[href*="#/builders/"]'))
    .map(tr => ({
      name: tr.querySelector('td a[href*="#/builders/"]').innerText.trim(),
      tags: Array.from(tr.querySelectorAll('.bb-tag-filter-manager-tag'))
        .map(t => t.innerText.trim()),
    }));
}"""

# The rows of a plain HTML table, as lists of cell texts (header row left out).
TABLE_ROWS = """(css) => {
  const table = document.querySelector(css);
  if (!table) return null;
  return Array.from(table.querySelectorAll('tr'))
    .filter(tr => tr.querySelector('td'))
    .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()));
}"""


@dataclass
class Site:
    master: Master
    major: int
    builders: set[str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pg_clusters: dict[int, Any]) -> Iterator[Site]:
    major = PREFERRED_MAJOR if PREFERRED_MAJOR in pg_clusters else min(pg_clusters)
    cluster = pg_clusters[major]
    root = tmp_path_factory.mktemp("browser")
    repos = {n: make_sample_repo(n, root / "repos") for n in ("passing", "failing", "restricted")}
    # One worker offering one PostgreSQL version and no wkhtmltopdf: `passing` and `failing`
    # get one builder each, `restricted` (which requires wkhtmltopdf) stays unmatched.
    workers = f"""
[{WORKER}]
password = secret:worker-{WORKER}
capability =
    {offer_line(cluster)}
"""
    master = Master(root / "master")
    master.create(
        sample_manifest(repos, build_for=f"postgresql == {major}"),
        workers,
        secrets={f"worker-{WORKER}": WORKER_PASSWORD},
    )
    # Written before the first start: master.cfg.sample turns login on when it exists.
    (master.basedir / "htpasswd").write_text(f"admin:{hash_password(ADMIN_PASSWORD)}\n")
    worker = WorkerProcess(root / WORKER, WORKER, WORKER_PASSWORD, master.pb_port)
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {WORKER}, 60, "the worker")
        yield Site(master, major, {f"passing-pg{major}", f"failing-pg{major}"})
    finally:
        worker.stop()
        master.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    chromium = Chromium(ARTIFACTS / "chromium.log")
    try:
        yield chromium
    finally:
        chromium.close()


@contextlib.contextmanager
def screenshot_on_failure(browser: Chromium, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            browser.screenshot(ARTIFACTS / f"FAILED-{name}.png")
        raise


def wait_rows(browser: Chromium, script: str, css: str, must_have: set[str], what: str) -> Any:
    """The rows of a table once every name of ``must_have`` shows in it."""

    def names(rows: Any) -> set[str]:
        return {r["name"] if isinstance(r, dict) else r[0] for r in rows or []}

    deadline = time.monotonic() + 20
    while True:
        try:
            rows = browser.call(script, css)
        except CDPError:  # the page is being replaced
            rows = None
        if must_have <= names(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: expected {sorted(must_have)}, the page shows {rows}")
        browser.idle(0.2)


def open_sidebar_entry(browser: Chromium, entry: str, group: str) -> None:
    """Click a sidebar entry of a group, unfolding the group first when it is folded."""
    if not browser.clickable("a.bb-sidebar-item", entry):
        browser.click("button.bb-sidebar-item", group)
    browser.click("a.bb-sidebar-item", entry)


def test_login_see_builders_per_buildout_force_and_watch_it_go_green(
    site: Site, browser: Chromium
) -> None:
    master, major = site.master, site.major
    tag = f"pg{major}"
    builder = f"passing-pg{major}"
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(master.url))
    with screenshot_on_failure(browser, "login-force"):
        # -- log in through the UI ----------------------------------------------------------
        browser.navigate(master.url + "#/builders")
        assert browser.wait_text("#bb-loginbar-dropdown") == "Anonymous"
        browser.answer_http_auth(f"{master.url}auth/login*", "admin", ADMIN_PASSWORD)
        try:
            browser.click("#bb-loginbar-dropdown")
            browser.click(".dropdown-menu a", "Login")
            assert browser.wait_text("#bb-loginbar-dropdown", "admin") == "admin"
        finally:
            browser.stop_answering_http_auth()
        # The server asked for credentials once (HTTP Basic, Buildbot's realm) and took them.
        assert browser.auth_challenges == [
            {"source": "Server", "origin": origin, "scheme": "basic", "realm": "buildbot"}
        ]
        # ... and sent the browser back where it was, logged in.
        assert browser.wait_for("() => location.hash === '#/builders'", what="back on Builders")

        # -- builders grouped per buildout (Buildbot projects), tagged by capability version --
        browser.click("a.bb-sidebar-item", "Projects")
        projects = browser.wait_for(
            "() => Array.from(document.querySelectorAll('.bb-projects-view-list li'))"
            ".map(li => li.innerText.trim()).filter(Boolean)",
            what="the list of projects",
        )
        assert sorted(projects) == ["failing", "passing"]
        browser.screenshot(ARTIFACTS / "01-projects.png")

        browser.click(".bb-projects-view-list li", "passing")
        rows = wait_rows(
            browser, BUILDER_ROWS, ".bb-project-builders-widget table", {builder}, "project"
        )
        assert [r["name"] for r in rows] == [builder]
        assert tag in rows[0]["tags"], rows
        assert browser.wait_text(".bb-topbar-navbar-elements a", "passing")
        browser.screenshot(ARTIFACTS / "02-project-passing.png")

        open_sidebar_entry(browser, "Builders", group="Builds")
        rows = wait_rows(browser, BUILDER_ROWS, "div.content table", site.builders, "builders")
        assert sorted(r["name"] for r in rows) == sorted(site.builders)
        for row in rows:
            assert tag in row["tags"], row
        browser.screenshot(ARTIFACTS / "03-builders.png")

        # -- force a build from the builder page ------------------------------------------------
        assert master.builds(builder) == []  # nothing built it before the click
        browser.click("div.content table a", builder)
        browser.wait_for(
            "(id) => location.hash === '#/builders/' + id",
            master.builder_ids()[builder],
            what=f"the page of {builder}",
        )
        browser.click("nav form button", "force")
        assert browser.wait_text(".bb-forcebuild-modal .modal-title") == "force"
        browser.screenshot(ARTIFACTS / "04-force-form.png")
        browser.click(".bb-forcebuild-modal .modal-footer button", "Start build")

        # The UI follows the build it started: wait there until it is finished.
        build_hash = browser.wait_for(
            "() => /^#\\/builders\\/\\d+\\/builds\\/\\d+$/.test(location.hash) && location.hash",
            timeout=60,
            what="the page of the new build",
        )
        badge = ".bb-build-summary .bb-build-summary-details .bb-badge-status"
        state = browser.wait_for(
            """(css) => {
                const el = document.querySelector(css);
                if (!el || el.classList.contains('results_PENDING')) return null;
                return {text: el.innerText.trim(), classes: Array.from(el.classList)};
            }""",
            badge,
            timeout=BUILD_TIMEOUT,
            what="the build to finish",
        )
        browser.screenshot(ARTIFACTS / "05-build-finished.png")
        summary = browser.text(".bb-build-summary")
        assert state["text"] == "SUCCESS", summary
        assert "results_SUCCESS" in state["classes"], state
        # The green badge is really green, as rendered.
        colour = browser.call(
            "(css) => getComputedStyle(document.querySelector(css)).backgroundColor", badge
        )
        red, green, blue = map(int, re.findall(r"\d+", colour)[:3])
        assert green > 150 and green > red + 40 and green > blue + 40, colour

    # -- what the UI showed is what the master recorded ---------------------------------------
    builds = master.builds(builder)
    assert len(builds) == 1, builds
    build = builds[0]
    assert build_hash == f"#/builders/{build['builderid']}/builds/{build['number']}"
    assert build["results"] == 0, build["state_string"]
    # Forced by the logged-in user, through the session the login opened.
    assert build["properties"]["owner"][0] == "admin"
    assert master.builds(f"failing-pg{major}") == []


def test_matrix_page_lists_the_builders_and_the_unmatched_cell(
    site: Site, browser: Chromium
) -> None:
    master = site.master
    with screenshot_on_failure(browser, "matrix"):
        browser.navigate(master.url + "#/builders")
        browser.click("a.bb-sidebar-item", "Matrix")
        assert browser.wait_for("() => location.hash === '#/anybox-matrix'", what="Matrix page")
        rows = wait_rows(
            browser, TABLE_ROWS, ".bb-wsgi-dashboard-view table#builders", site.builders, "matrix"
        )
        assert sorted(r[0] for r in rows) == sorted(site.builders)
        assert {r[0]: r[1] for r in rows} == {
            f"passing-pg{site.major}": "passing",
            f"failing-pg{site.major}": "failing",
        }
        assert all(r[2] == WORKER for r in rows), rows
        unmatched = browser.call(TABLE_ROWS, ".bb-wsgi-dashboard-view table#unmatched")
        assert [r[0] for r in unmatched] == ["restricted"]
        assert "wkhtmltopdf" in unmatched[0][2]
        browser.screenshot(ARTIFACTS / "06-matrix.png")

        # The same page straight from the plugin's URL, which the UI embeds.
        browser.navigate(master.url + "plugins/wsgi_dashboards/anybox-matrix/index.html")
        direct = wait_rows(browser, TABLE_ROWS, "table#builders", site.builders, "plugin page")
        assert direct == rows
