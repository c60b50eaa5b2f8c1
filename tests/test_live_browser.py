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
- the "Matrix" page shows each buildout's cells and the unmatched buildout's reason;
- at 1,000 buildouts (a synthetic manifest planned by the configurator's loader, served by a
  real master), the matrix page filters by name, tag and result, pages, and a cell's link
  opens its build; a screenshot of it is kept (``matrix-1000-buildouts.png``).

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
        # the buildout's own form ("force"), beside the admins' "force matching" one
        browser.click("nav form button", "force")
        assert browser.wait_text(".bb-forcebuild-modal .modal-title") == "Force passing"
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


def test_matrix_page_shows_the_cells_and_the_unmatched_reason(
    site: Site, browser: Chromium
) -> None:
    master, major = site.master, site.major
    with screenshot_on_failure(browser, "matrix"):
        browser.navigate(master.url + "#/builders")
        browser.click("a.bb-sidebar-item", "Matrix")
        assert browser.wait_for("() => location.hash === '#/anybox-matrix'", what="Matrix page")
        rows = wait_rows(
            browser, MATRIX_ROWS, ".bb-wsgi-dashboard-view table#matrix", {"passing"}, "matrix"
        )
        by_name = {r["name"]: r["cells"] for r in rows}
        assert sorted(by_name) == ["failing", "passing", "restricted"]
        assert [c["cell"] for c in by_name["passing"]] == [f"passing-pg{major}"]
        assert [c["cell"] for c in by_name["failing"]] == [f"failing-pg{major}"]
        [reason] = by_name["restricted"]
        assert reason["cell"] is None and "wkhtmltopdf" in reason["text"]
        browser.screenshot(ARTIFACTS / "06-matrix.png")

        # The same page straight from the plugin's URL, which the UI embeds.
        browser.navigate(master.url + "plugins/wsgi_dashboards/anybox-matrix/index.html")
        direct = wait_rows(browser, MATRIX_ROWS, "table#matrix", {"passing"}, "plugin page")
        assert [r["name"] for r in direct] == [r["name"] for r in rows]


# ---------------------------------------------------------------- 1,000 buildouts

BIG = 1000
BIG_CFG = """\
import sys
from buildbot.plugins import schedulers, steps, util, worker
from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.www.matrix_page import dashboard

# The plan of the synthetic manifest, by the configurator's own loader; only the cells the
# test builds are registered builders (registering 3,000 would take minutes to start).
anybox = AnyboxConfigurator(basedir)
loaded = anybox.load()
assert not loaded.diagnostics.errors, loaded.diagnostics.errors

def factory(code):
    return util.BuildFactory([steps.ShellCommand(name='run', command=[sys.executable, '-c', code])])

c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['title'] = 'matrix at 1,000 buildouts'
c['buildbotURL'] = 'http://127.0.0.1:{port}/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['protocols'] = {{'null': {{}}}}
c['workers'] = [worker.LocalWorker('local1')]
c['builders'] = [
    util.BuilderConfig(name=name, workernames=['local1'], factory=factory(code))
    for name, code in {builders!r}.items()
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames={names!r})]
c['www'] = {{
    'port': {port},
    'plugins': {{'wsgi_dashboards': [
        dashboard(loaded.matrix, loaded.config.buildouts, anybox.registry)]}},
}}
"""

# The rows of the matrix table: the buildout and, per slot, its cell name (or None) and text.
MATRIX_ROWS = """(css) => {
  const table = document.querySelector(css);
  if (!table) return null;
  return Array.from(table.querySelectorAll('tbody tr')).map(tr => ({
    name: tr.querySelector('th.buildout').dataset.buildout,
    cells: Array.from(tr.querySelectorAll('td:not(.badge)')).map(td => ({
      cell: td.dataset.cell || null, state: td.className, text: td.innerText.trim()})),
  }));
}"""


@dataclass
class Big:
    master: Master
    lo: int
    hi: int
    failing: str
    passing: str


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    from tests.pgfixtures import configured_versions

    majors = sorted(configured_versions())
    lo, hi = majors[0], majors[-1]
    root = tmp_path_factory.mktemp("matrix1000")
    master = Master(root / "master")
    sections = []
    for i in range(BIG):
        extra = ""
        if i % 100 == 42:
            extra = "build-requires = wkhtmltopdf\n"  # no worker has it: a row with a reason
        elif i % 10 == 7:
            extra = f"build-for = postgresql >= {hi}\n"  # slots that say build-for skips them
        category = "odoo" if i % 2 else "site"
        sections.append(
            f"[b{i:04d}]\nbuildout = standalone light.cfg\nbuild-category = {category}\n{extra}"
        )
    manifest = "[DEFAULT]\nbuild-for = postgresql\n\n" + "\n".join(sections)
    offers = "\n    ".join(f"postgresql {v} port={5400 + v}" for v in majors)
    passing, failing = f"b0001-pg{lo}", f"b0002-pg{lo}"
    builders = {passing: "print('ok')", failing: "raise SystemExit(1)", f"b0003-pg{hi}": "0"}
    master.create(
        manifest,
        f"[w1]\npassword = secret:w1\ncapability =\n    {offers}\n",
        config=BIG_CFG.format(port=master.www_port, builders=builders, names=sorted(builders)),
    )
    (master.basedir / "buildouts" / "light.cfg").write_text("[buildout]\nparts =\n")
    with master.running():
        bsids = [master.force(name, "force") for name in sorted(builders)]
        master.wait_buildsets(bsids, 60)
        yield Big(master, lo, hi, failing, passing)


def test_matrix_at_1000_buildouts_filter_page_and_follow_a_cell(
    big: Big, browser: Chromium
) -> None:
    master = big.master
    page_url = master.url + "plugins/wsgi_dashboards/anybox-matrix/index.html"
    with screenshot_on_failure(browser, "matrix-1000"):
        # -- embedded in the web UI: the first page of 50 rows, and the screenshot --------------
        browser.navigate(master.url + "#/anybox-matrix")
        rows = wait_rows(
            browser, MATRIX_ROWS, ".bb-wsgi-dashboard-view table#matrix", {"b0001"}, "matrix"
        )
        assert len(rows) == 50 and rows[0]["name"] == "b0000"
        summary = browser.text(".bb-wsgi-dashboard-view p.summary")
        assert summary.startswith(f"{BIG} buildout(s)"), summary
        b1 = {c["cell"]: c for c in rows[1]["cells"]}
        assert "r-success" in b1[big.passing]["state"], b1
        assert "r-failure" in {c["cell"]: c for c in rows[2]["cells"]}[big.failing]["state"]
        b7 = rows[7]["cells"]
        assert b7[0]["cell"] is None and "not selected by build-for" in b7[0]["text"], b7
        shot = browser.screenshot(ARTIFACTS / "matrix-1000-buildouts.png")
        print(f"\nmatrix page at {BIG} buildouts: {shot}")

        # -- filter by name, from the embedded form: the page itself answers -------------------
        browser.call(
            "(v) => { document.querySelector('form.filter input[name=name]').value = v; }", "b004"
        )
        browser.click("form.filter button", "Filter")
        browser.wait_for(
            "() => location.search === '?name=b004&tag=&result=&size=50'", what="the filtered page"
        )
        rows = wait_rows(browser, MATRIX_ROWS, "table#matrix", {"b0040"}, "filtered")
        assert [r["name"] for r in rows] == [f"b004{i}" for i in range(10)]
        [reason] = rows[2]["cells"]  # b0042 requires wkhtmltopdf
        assert reason["cell"] is None and "wkhtmltopdf" in reason["text"], rows[2]

        # -- paging, by the pager's links -------------------------------------------------------
        browser.navigate(page_url + "?tag=odoo&size=100")
        wait_rows(browser, MATRIX_ROWS, "table#matrix", {"b0001"}, "odoo, page 1")
        assert browser.text(".pager .position") == "page 1 of 5"
        browser.click(".pager a.next", "next")
        # its last row too: a long page may still be arriving when its first row shows
        rows = wait_rows(browser, MATRIX_ROWS, "table#matrix", {"b0201", "b0399"}, "odoo, page 2")
        assert [r["name"] for r in rows] == [f"b{i:04d}" for i in range(201, 400, 2)]
        assert browser.text(".pager .position") == "page 2 of 5"

        # -- filter by result, then follow the failing cell's link to its build -----------------
        browser.navigate(page_url + "?result=failure")
        rows = wait_rows(browser, MATRIX_ROWS, "table#matrix", {"b0002"}, "failures")
        assert [r["name"] for r in rows] == ["b0002"]
        [build] = master.builds(big.failing)
        browser.click(f"td[data-cell='{big.failing}'] a.build")
        browser.wait_for(
            "(h) => location.hash === h",
            f"#/builders/{build['builderid']}/builds/{build['number']}",
            what="the failing build's page",
        )
        assert browser.wait_text(".bb-build-summary .bb-badge-status") == "FAILURE"
