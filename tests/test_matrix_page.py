"""The matrix page of the web UI (a WSGI dashboard): rows, columns, reasons, filter, paging.

The build data comes from a small in-memory :class:`BuildSource` that counts its queries;
the live tests (tests/test_live_browser.py, tests/test_live_force_forms.py) read a real
master's database.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import replace
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core.plan import Broken, Cell, Matrix, Unmatched
from anybox_ci.core.versions import Version
from anybox_ci.www.matrix_data import LastBuild
from anybox_ci.www.matrix_page import (
    PAGE_PATH,
    BadQuery,
    MatrixPage,
    Query,
    parse_query,
    render_html,
    select_page,
)

BASE = "http://ci.example.com/"


def _cell(buildout: str, *versions: int) -> Cell:
    return Cell(
        buildout + "".join(f"-pg{v}" for v in versions),
        buildout,
        tuple(("postgresql", Version.parse(str(v))) for v in versions),
        ("w1", "w2"),
        MappingProxyType({}),
    )


def _matrix() -> Matrix:
    return Matrix(
        (_cell("erp", 15), _cell("erp", 17), _cell("crm", 15)),
        (
            Unmatched("crm", "crm-pg17", "no single worker offers postgresql 17"),
            Unmatched("<script>x</script>", "", "no worker offers python 3.13"),
        ),
    )


class Source:
    """Builder ids and last builds held in memory; it counts the queries the page makes."""

    def __init__(self, ids: dict[str, int], builds: dict[int, LastBuild]):
        self.ids, self.builds, self.queries = ids, builds, 0

    def builder_ids(self) -> dict[str, int]:
        self.queries += 1
        return dict(self.ids)

    def last_builds(self, builderids: Collection[int] | None) -> dict[int, LastBuild]:
        self.queries += 1
        wanted = set(self.builds) if builderids is None else set(builderids)
        return {i: b for i, b in self.builds.items() if i in wanted}


def _build(builderid: int, number: int, results: int | None, done: bool = True) -> LastBuild:
    return LastBuild(
        builderid, 100 + builderid, number, results, 1_700_000_000, 1_700_000_060 if done else None
    )


def _served(app: MatrixPage, source: Source | None = None) -> MatrixPage:
    """As Buildbot's wsgi_dashboards plugin serves it: with a master, here one without authz."""
    master = SimpleNamespace(
        www=SimpleNamespace(authz=None), config=SimpleNamespace(buildbotURL=BASE)
    )
    app.buildbot_api = SimpleNamespace(master=master)
    app.source_override = source or Source({}, {})
    return app


def _call(
    app: MatrixPage, method: str = "GET", path: str = "/index.html", query: str = ""
) -> tuple[str, bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    body = b"".join(app(environ, start_response))
    return seen["status"], body


def _rows(page: str) -> dict[str, list[str]]:
    """buildout -> the class of each of its cells (or its reason), as the page shows them."""
    rows: dict[str, list[str]] = {}
    for name, cells in re.findall(
        r"<th class='buildout' data-buildout='([^']*)'>.*?</th>(.*?)</tr>", page
    ):
        rows[name] = re.findall(r"<td class='([^']*)'", cells)
    return rows


def test_rows_are_buildouts_columns_are_versions_and_slots_say_why() -> None:
    source = Source({"erp-pg15": 1, "erp-pg17": 2}, {1: _build(1, 7, 2)})
    status, body = _call(_served(MatrixPage(_matrix()), source))
    page = body.decode()
    assert status.startswith("200")
    headers = re.findall(r"<th class='version' data-column='[^']*'>([^<]*)</th>", page)
    assert headers == ["postgresql 15", "postgresql 17"]
    rows = _rows(page)
    assert list(rows) == ["&lt;script&gt;x&lt;/script&gt;", "crm", "erp"]  # sorted by name
    assert rows["erp"] == ["cell r-failure", "cell r-never"]
    assert rows["crm"] == ["cell r-never", "none"]
    assert rows["&lt;script&gt;x&lt;/script&gt;"] == ["row-reason unmatched"]
    assert "no single worker offers postgresql 17" in page
    assert "no worker offers python 3.13" in page
    assert "<script>x</script>" not in page
    # the failing cell links to its builder and its last build, with the time it finished
    assert f"href='{BASE}#/builders/1'>erp-pg15</a>" in page
    assert f"href='{BASE}#/builders/1/builds/7'>#7 failure</a>" in page
    assert "2023-11-14 22:14 UTC" in page
    # a cell never built (and not in the database yet, a virtual builder say) has no link
    assert "<span class='builder'>crm-pg15</span>" in page
    assert f"href='{BASE}{PAGE_PATH}badges/erp.svg'>badge</a>" in page


def test_a_column_without_a_cell_of_the_buildout_is_never_blank() -> None:
    """Without the Buildout objects (the configurator passes them, see below) the reason
    is generic, never an empty slot."""
    from anybox_ci.www.matrix_model import build_model

    matrix = Matrix((_cell("erp", 15), _cell("erp", 17), _cell("site", 17)), ())
    model = build_model(matrix)
    assert model.by_name["site"].slots["-pg15"].reason == "not planned"


def test_filter_by_name_tag_and_result_then_page() -> None:
    cells = tuple(_cell(f"b{i:04d}", 15) for i in range(120))
    page = _served(MatrixPage(Matrix(cells, ())))
    ids = {c.name: i for i, c in enumerate(cells, start=1)}
    builds = {
        ids["b0007-pg15"]: _build(ids["b0007-pg15"], 1, 2),
        ids["b0100-pg15"]: _build(ids["b0100-pg15"], 3, 0),
    }
    source = Source(ids, builds)
    model = page.model

    view = select_page(model, Query(size=50), source)
    assert (view.total, view.pages, len(view.rows)) == (120, 3, 50)
    assert source.queries == 2  # names and last builds, whatever the page size
    view = select_page(model, Query(size=50, page=3), source)
    assert [r.buildout for r in view.rows][:2] == ["b0100", "b0101"] and len(view.rows) == 20
    assert view.last("b0100-pg15") == builds[ids["b0100-pg15"]]

    source.queries = 0
    assert [r.buildout for r in select_page(model, Query(result="failure"), source).rows] == [
        "b0007"
    ]
    assert [r.buildout for r in select_page(model, Query(result="success"), source).rows] == [
        "b0100"
    ]
    assert len(select_page(model, Query(result="never"), source).rows) == 50
    assert source.queries == 6  # still two per page, the result filter included
    assert [r.buildout for r in select_page(model, Query(name="B001"), source).rows] == [
        f"b001{i}" for i in range(10)
    ]
    assert select_page(model, Query(tag="pg15"), source).total == 120


def test_pager_links_keep_the_filter() -> None:
    cells = tuple(_cell(f"b{i:03d}", 15) for i in range(30))
    app = _served(MatrixPage(Matrix(cells, ())))
    status, body = _call(app, query="name=b0&size=10&page=2")
    page = body.decode()
    assert status.startswith("200") and "page 2 of 3" in page
    assert f"<a class='prev' href='{BASE}{PAGE_PATH}index.html?name=b0&amp;size=10'>" in page
    assert (
        f"<a class='next' href='{BASE}{PAGE_PATH}index.html?name=b0&amp;size=10&amp;page=3'>"
        in page
    )
    assert list(_rows(page)) == [f"b0{i}" for i in range(10, 20)]


@pytest.mark.parametrize(
    "query, message",
    [
        ("page=0", "page"),
        ("page=x", "whole numbers"),
        ("size=7", "size"),
        ("result=green", "result"),
        ("tag=<b>", "tag"),
        ("name=" + "a" * 101, "name"),
        ("name=a%0Ab", "name"),
        ("evil=1", "unknown parameter"),
        ("page=1&page=2", "twice"),
        ("x" * 2001, "too long"),
    ],
)
def test_bad_queries_are_refused_on_one_line(query: str, message: str) -> None:
    with pytest.raises(BadQuery, match=message):
        parse_query(query, MatrixPage(_matrix()).model)
    status, body = _call(_served(MatrixPage(_matrix())), query=query)
    assert status.startswith("400") and body.count(b"\n") == 1 and b"<" not in body[:1]


def test_filter_values_are_escaped_in_the_form() -> None:
    page = render_html(
        MatrixPage(_matrix()).model,
        Query(name="'><script>alert(1)</script>"),
        select_page(MatrixPage(_matrix()).model, Query(), Source({}, {})),
        BASE,
    )
    assert "<script>alert(1)" not in page and "&#x27;&gt;&lt;script&gt;" in page


def test_page_is_read_only_and_unknown_paths_are_404() -> None:
    app = _served(MatrixPage(_matrix()))
    assert _call(app)[0].startswith("200")
    assert _call(app, path="")[0].startswith("200")
    assert _call(app, "POST")[0].startswith("405")
    assert _call(app, path="/../../etc/passwd")[0].startswith("404")
    assert _call(app, path="/badges/nope.svg")[0].startswith("404")


def test_configurator_adds_the_page_with_the_build_for_reasons(tmp_path) -> None:
    (tmp_path / "buildouts").mkdir()
    (tmp_path / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (tmp_path / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\nbuild-category = odoo\n\n"
        "[new]\nbuildout = standalone b.cfg\nbuild-for = postgresql >= 16\n"
    )
    (tmp_path / "workers.cfg").write_text(
        "[w1]\npassword = secret:w1\ncapability =\n    postgresql 15\n    postgresql 17\n"
    )
    config: dict[str, Any] = {"www": {"port": 8010}}
    AnyboxConfigurator(tmp_path).configure(config)
    [entry] = config["www"]["plugins"]["wsgi_dashboards"]
    assert entry["name"] == "anybox-matrix"
    app = _served(entry["app"])
    page = _call(app)[1].decode()
    assert _rows(page) == {"erp": ["cell r-never", "cell r-never"], "new": ["none", "cell r-never"]}
    assert "not selected by build-for = postgresql &gt;= 16" in page
    assert app.model.by_name["erp"].tags == ("odoo", "pg15", "pg17")
    assert _call(app, query="tag=odoo")[0].startswith("200")


def test_page_outside_a_master_is_refused() -> None:
    status, body = _call(MatrixPage(_matrix()))
    assert status.startswith("403") and b"erp-pg15" not in body


def test_broken_buildouts_are_rows_with_their_reason() -> None:
    reason = (
        "/m/MANIFEST.cfg:7: [crm] db-steps: unknown step set 'restor' (did you mean 'restore'?)"
    )
    matrix = replace(_matrix(), broken=(Broken("zz", reason),))
    page = _call(_served(MatrixPage(matrix)))[1].decode()
    assert _rows(page)["zz"] == ["row-reason broken"]
    assert "did you mean &#x27;restore&#x27;" in page
