"""The read-only matrix page of the web UI (a WSGI dashboard)."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Any

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core.plan import Cell, Matrix, Unmatched
from anybox_ci.core.versions import Version
from anybox_ci.www.matrix_page import MatrixPage, render_html


def _matrix() -> Matrix:
    cell = Cell(
        "erp-pg15",
        "erp",
        (("postgresql", Version.parse("15")),),
        ("w1", "w2"),
        MappingProxyType({"pg_version": "15"}),
    )
    return Matrix((cell,), (Unmatched("<script>x</script>", "", "no worker offers python 3.13"),))


def _served(app: MatrixPage) -> MatrixPage:
    """As Buildbot's wsgi_dashboards plugin serves it: with a master, here one without authz."""
    app.buildbot_api = SimpleNamespace(master=SimpleNamespace(www=SimpleNamespace(authz=None)))
    return app


def _call(app: MatrixPage, method: str) -> tuple[str, bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(app({"REQUEST_METHOD": method}, start_response))
    return seen["status"], body


def test_page_lists_builders_and_unmatched_reasons_escaped() -> None:
    page = render_html(_matrix())
    assert "<code>erp-pg15</code>" in page and "w1, w2" in page
    assert "no worker offers python 3.13" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page


def test_page_is_read_only() -> None:
    app = _served(MatrixPage(_matrix()))
    assert _call(app, "GET")[0].startswith("200")
    assert b"erp-pg15" in _call(app, "GET")[1]
    assert _call(app, "POST")[0].startswith("405")


def test_configurator_adds_the_page_to_the_web_ui(tmp_path) -> None:
    (tmp_path / "buildouts").mkdir()
    (tmp_path / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (tmp_path / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n"
    )
    (tmp_path / "workers.cfg").write_text(
        "[w1]\npassword = secret:w1\ncapability = postgresql 15\n"
    )
    config: dict[str, Any] = {"www": {"port": 8010}}
    AnyboxConfigurator(tmp_path).configure(config)
    [entry] = config["www"]["plugins"]["wsgi_dashboards"]
    assert entry["name"] == "anybox-matrix"
    assert b"erp-pg15" in _call(_served(entry["app"]), "GET")[1]


def test_page_outside_a_master_is_refused() -> None:
    status, body = _call(MatrixPage(_matrix()), "GET")
    assert status.startswith("403") and b"erp-pg15" not in body


def test_broken_buildouts_are_shown_with_their_reason() -> None:
    from dataclasses import replace

    from anybox_ci.core.plan import Broken

    reason = (
        "/m/MANIFEST.cfg:7: [crm] db-steps: unknown step set 'restor' (did you mean 'restore'?)"
    )
    page = render_html(replace(_matrix(), broken=(Broken("crm", reason),)))
    assert "<table id='broken'>" in page
    assert "<td>crm</td>" in page and "did you mean &#x27;restore&#x27;" in page
    assert "id='broken'" not in render_html(_matrix())
