"""The plan: buildouts and workers in, cells (builders) and the unmatched report out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anybox_ci import cli
from anybox_ci.core.capabilities import CapabilityRegistry, CapabilitySpec
from anybox_ci.core.diagnostics import Diagnostics
from anybox_ci.core.manifest import load_manifests
from anybox_ci.core.plan import Cell, Matrix, Unmatched, plan
from anybox_ci.core.workers import load_workers


def make_plan(
    tmp_path: Path, manifest: str, workers: str, registry: CapabilityRegistry | None = None
) -> Matrix:
    (tmp_path / "b.cfg").write_text("[buildout]\n")
    (tmp_path / "MANIFEST.cfg").write_text(manifest)
    (tmp_path / "workers.cfg").write_text(workers)
    diags = Diagnostics()
    buildouts = load_manifests([tmp_path / "MANIFEST.cfg"], diags)
    found = load_workers([tmp_path / "workers.cfg"], diags)
    assert not diags.errors, [str(d) for d in diags.errors]
    return plan(buildouts, found, registry)


def cells(matrix: Matrix) -> dict[str, Cell]:
    return {c.name: c for c in matrix.cells}


PG_WORKERS = """\
[w13]
password = secret:a
capability =
    postgresql 13 port=5413

[w15-17]
password = secret:b
capability =
    postgresql 15 port=5415
    postgresql 17 port=5417
"""


def test_one_cell_per_matching_version(tmp_path: Path) -> None:
    matrix = make_plan(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql >= 14\n", PG_WORKERS
    )
    assert [c.name for c in matrix.cells] == ["erp-pg15", "erp-pg17"]
    assert [c.workers for c in matrix.cells] == [("w15-17",), ("w15-17",)]
    assert [[(cap, str(v)) for cap, v in c.versions] for c in matrix.cells] == [
        [("postgresql", "15")],
        [("postgresql", "17")],
    ]
    assert matrix.unmatched == ()


def test_every_version_and_every_worker_offering_it(tmp_path: Path) -> None:
    workers = (
        PG_WORKERS
        + "\n[w-all]\npassword = secret:c\ncapability =\n"
        + "".join(f"    postgresql {v}\n" for v in (13, 15, 16))
    )
    matrix = make_plan(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n", workers
    )
    assert {c.name: c.workers for c in matrix.cells} == {
        "erp-pg13": ("w-all", "w13"),
        "erp-pg15": ("w-all", "w15-17"),
        "erp-pg16": ("w-all",),
        "erp-pg17": ("w15-17",),
    }


def test_no_build_for_gives_one_cell_named_after_the_section(tmp_path: Path) -> None:
    matrix = make_plan(tmp_path, "[erp]\nbuildout = standalone b.cfg\n", PG_WORKERS)
    assert [(c.name, c.buildout, c.workers, c.versions) for c in matrix.cells] == [
        ("erp", "erp", ("w13", "w15-17"), ())
    ]
    assert dict(matrix.cells[0].properties) == {"buildout": "erp", "build_requires": []}


WORKERS_PG_PY = """\
[a]
password = secret:a
capability =
    postgresql 15
    postgresql 16
    python 3.11
    python 3.12

[b]
password = secret:b
capability =
    postgresql 15
    python 3.10
"""


def test_cartesian_product_in_line_order(tmp_path: Path) -> None:
    matrix = make_plan(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for =\n    postgresql >= 15\n"
        "    python >= 3.11\n",
        WORKERS_PG_PY,
    )
    assert [c.name for c in matrix.cells] == [
        "erp-pg15-py3.11",
        "erp-pg15-py3.12",
        "erp-pg16-py3.11",
        "erp-pg16-py3.12",
    ]
    c = cells(matrix)["erp-pg16-py3.12"]
    assert c.version_of("postgresql") is not None
    assert str(c.version_of("python")) == "3.12"
    assert dict(c.properties) == {
        "buildout": "erp",
        "build_requires": [],
        "pg_version": "16",
        "py_version": "3.12",
    }


def test_names_follow_the_line_order(tmp_path: Path) -> None:
    matrix = make_plan(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for =\n    python 3.10\n    postgresql 15\n",
        WORKERS_PG_PY,
    )
    assert [(c.name, c.workers) for c in matrix.cells] == [("erp-py3.10-pg15", ("b",))]


def test_combination_no_single_worker_offers(tmp_path: Path) -> None:
    matrix = make_plan(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for =\n    postgresql\n    python <= 3.11\n",
        WORKERS_PG_PY,
    )
    assert {c.name: c.workers for c in matrix.cells} == {
        "erp-pg15-py3.10": ("b",),
        "erp-pg15-py3.11": ("a",),
        "erp-pg16-py3.11": ("a",),
    }
    assert matrix.unmatched == (
        Unmatched(
            "erp", "erp-pg16-py3.10", "no single worker offers postgresql 16 and python 3.10"
        ),
    )


def test_build_requires_is_an_and(tmp_path: Path) -> None:
    workers = """\
[pdf]
password = secret:a
capability =
    postgresql 15
    wkhtmltopdf 0.12.6

[pdf-node]
password = secret:b
capability =
    postgresql 15
    wkhtmltopdf 0.12.6
    nodejs 20

[node]
password = secret:c
capability =
    postgresql 15
    nodejs 20
"""
    matrix = make_plan(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\nbuild-requires =\n"
        "    wkhtmltopdf\n    nodejs >= 18\n\n"
        "[lite]\nbuildout = standalone b.cfg\nbuild-requires = nodejs < 18\n",
        workers,
    )
    assert [(c.name, c.workers) for c in matrix.cells] == [("erp-pg15", ("pdf-node",))]
    assert dict(matrix.cells[0].properties)["build_requires"] == ["nodejs >= 18", "wkhtmltopdf"]
    assert matrix.unmatched == (
        Unmatched(
            "lite",
            "",
            "no eligible worker: node lacks nodejs < 18; pdf lacks nodejs < 18; "
            "pdf-node lacks nodejs < 18",
        ),
    )


def test_build_only_if_requires(tmp_path: Path) -> None:
    workers = """\
[general]
password = secret:a
capability = postgresql 15

[printer]
password = secret:b
build-only-if-requires = wkhtmltopdf
capability =
    postgresql 15
    wkhtmltopdf
"""
    matrix = make_plan(
        tmp_path,
        "[plain]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n\n"
        "[reports]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n"
        "build-requires = wkhtmltopdf\n",
        workers,
    )
    assert {c.name: c.workers for c in matrix.cells} == {
        "plain-pg15": ("general",),
        "reports-pg15": ("printer",),
    }


def test_build_only_if_requires_counts_build_for(tmp_path: Path) -> None:
    workers = (
        "[old-pg]\npassword = secret:a\nbuild-only-if-requires = postgresql\n"
        "capability = postgresql 9.6\n"
    )
    matrix = make_plan(
        tmp_path,
        "[a]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n\n"
        "[b]\nbuildout = standalone b.cfg\n",
        workers,
    )
    assert [c.name for c in matrix.cells] == ["a-pg9.6"]
    assert matrix.unmatched == (
        Unmatched("b", "", "no eligible worker: old-pg only builds what requires postgresql"),
    )


def test_devel_versions(tmp_path: Path) -> None:
    workers = (
        "[w]\npassword = secret:a\ncapability =\n    postgresql 16\n    postgresql 17\n"
        "    postgresql 18-devel\n"
    )
    manifest = (
        "[stable]\nbuildout = standalone b.cfg\nbuild-for = postgresql >= 16 < 18\n\n"
        "[next]\nbuildout = standalone b.cfg\nbuild-for = postgresql > 17\n\n"
        "[released]\nbuildout = standalone b.cfg\nbuild-for = postgresql >= 18\n"
    )
    matrix = make_plan(tmp_path, manifest, workers)
    # 18-devel sorts below 18: it is < 18, > 17, and not >= 18
    assert [c.name for c in matrix.cells] == [
        "next-pg18-devel",
        "stable-pg16",
        "stable-pg17",
        "stable-pg18-devel",
    ]
    assert cells(matrix)["next-pg18-devel"].properties["pg_version"] == "18-devel"
    assert matrix.unmatched == (
        Unmatched(
            "released", "", "no eligible worker offers postgresql >= 18 (offered: 16, 17, 18-devel)"
        ),
    )


def test_unmatched_reasons(tmp_path: Path) -> None:
    manifest = "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql >= 18\n"
    assert make_plan(tmp_path, manifest, "").unmatched == (Unmatched("erp", "", "no worker"),)
    assert make_plan(tmp_path, manifest, PG_WORKERS).unmatched == (
        Unmatched("erp", "", "no eligible worker offers postgresql >= 18 (offered: 13, 15, 17)"),
    )
    no_pg = "[w]\npassword = secret:w\ncapability = python 3.11\n"
    assert make_plan(tmp_path, manifest, no_pg).unmatched == (
        Unmatched("erp", "", "no eligible worker offers postgresql >= 18"),
    )


def test_many_rejections_are_summarised(tmp_path: Path) -> None:
    workers = "".join(f"[w{i}]\npassword = secret:w\n\n" for i in (5, 3, 1, 4, 2))
    matrix = make_plan(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\nbuild-requires = postgresql\n", workers
    )
    assert matrix.unmatched == (
        Unmatched(
            "erp",
            "",
            "no eligible worker: w1 lacks postgresql; w2 lacks postgresql; w3 lacks postgresql; "
            "and 2 more",
        ),
    )


def test_workers_in_priority_order(tmp_path: Path) -> None:
    workers = "".join(
        f"[{name}]\npassword = secret:x\npriority = {prio}\ncapability = postgresql 15\n\n"
        for name, prio in [("a", 1), ("b", 5), ("c", 5), ("d", -2), ("e", 0)]
    )
    workers += "[f]\npassword = secret:x\ncapability = postgresql 15\n"
    matrix = make_plan(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n", workers
    )
    assert matrix.cells[0].workers == ("b", "c", "a", "e", "f", "d")


def test_registry_abbreviations_and_properties(tmp_path: Path) -> None:
    workers = "[w]\npassword = secret:x\ncapability =\n    nodejs 20\n    redis 7.2\n"
    manifest = "[erp]\nbuildout = standalone b.cfg\nbuild-for =\n    nodejs\n    redis\n"
    default = make_plan(tmp_path, manifest, workers)
    assert [c.name for c in default.cells] == ["erp-nodejs20-redis7.2"]
    assert default.cells[0].properties["nodejs_version"] == "20"
    assert default.cells[0].properties["redis_version"] == "7.2"
    registry = CapabilityRegistry().extended(
        {"nodejs": CapabilitySpec("nodejs", "node", "node_version")}
    )
    custom = make_plan(tmp_path, manifest, workers, registry)
    assert [c.name for c in custom.cells] == ["erp-node20-redis7.2"]
    assert custom.cells[0].properties["node_version"] == "20"


def test_equal_versions_spelled_differently_give_one_cell(tmp_path: Path) -> None:
    workers = (
        "[a]\npassword = secret:a\ncapability = postgresql 15.0\n\n"
        "[b]\npassword = secret:b\ncapability = postgresql 15\n"
    )
    matrix = make_plan(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n", workers
    )
    assert [(c.name, c.workers) for c in matrix.cells] == [("erp-pg15", ("a", "b"))]


# ---------------------------------------------------------------- determinism


MANIFEST = """\
[DEFAULT]
build-for = postgresql >= 13

[erp]
buildout = standalone b.cfg
build-for =
    postgresql >= 13
    python
build-requires = wkhtmltopdf

[site]
buildout = standalone b.cfg

[lost]
buildout = standalone b.cfg
build-requires = nosuchtool
"""

WORKER_SECTIONS = [
    "[alpha]\npassword = secret:worker-alpha\npriority = 3\ncapability =\n    postgresql 15.0\n"
    "    python 3.11\n    wkhtmltopdf\n",
    "[beta]\npassword = secret:worker-beta\ncapability =\n    postgresql 15\n    postgresql 17-devel\n"
    "    python 3.11\n    python 3.12\n    wkhtmltopdf 0.12\n",
    "[gamma]\npassword = secret:worker-gamma\ncapability =\n    postgresql 13 port=5433\n",
    "[delta]\npassword = secret:worker-delta\ncapability = postgresql 16\n",
    "[epsilon]\npassword = secret:worker-epsilon\nbuild-only-if-requires = wkhtmltopdf\n"
    "capability =\n    postgresql 16\n    wkhtmltopdf\n",
]


def master_dir(root: Path, layout: list[list[int]]) -> Path:
    """workers.cfg gets ``layout[0]`` sections, workers.d/NN.cfg the next ones."""
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(MANIFEST)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.d").mkdir()
    for i, indexes in enumerate(layout):
        text = "\n".join(WORKER_SECTIONS[j] for j in indexes)
        target = root / "workers.cfg" if i == 0 else root / "workers.d" / f"{i:02d}.cfg"
        target.write_text(text)
    return root


def matrix_json(capsys: pytest.CaptureFixture[str], root: Path) -> str:
    assert cli.main(["matrix", str(root), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_same_input_twice_is_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_dir(tmp_path / "m", [[0, 1, 2], [3, 4]])
    first = matrix_json(capsys, root)
    second = matrix_json(capsys, root)
    assert first == second
    assert json.loads(first)["builders"]


@pytest.mark.parametrize(
    "layout",
    [
        [[4, 3, 2, 1, 0]],
        [[2], [1, 0], [4, 3]],
        [[], [3], [0], [4, 1, 2]],
        [[1, 3], [4, 0, 2]],
    ],
)
def test_order_of_workers_does_not_matter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: list[list[int]]
) -> None:
    reference = matrix_json(capsys, master_dir(tmp_path / "ref", [[0, 1, 2, 3, 4]]))
    shuffled = matrix_json(capsys, master_dir(tmp_path / "shuffled", layout))
    assert shuffled == reference
    data = json.loads(reference)
    assert [b["name"] for b in data["builders"]] == [
        "erp-pg15-py3.11",
        "erp-pg15-py3.12",
        "erp-pg17-devel-py3.11",
        "erp-pg17-devel-py3.12",
        "site-pg13",
        "site-pg15",
        "site-pg16",
        "site-pg17-devel",
    ]
    assert data["unmatched"] == [
        {
            "buildout": "erp",
            "reason": "erp-pg16-py3.11: no single worker offers postgresql 16 and python 3.11",
        },
        {
            "buildout": "erp",
            "reason": "erp-pg16-py3.12: no single worker offers postgresql 16 and python 3.12",
        },
        {
            "buildout": "lost",
            "reason": "no eligible worker: alpha lacks nosuchtool; beta lacks nosuchtool; "
            "delta lacks nosuchtool; and 2 more",
        },
    ]


def test_plan_is_pure(tmp_path: Path) -> None:
    """Planning twice from the same objects gives equal matrices."""
    root = master_dir(tmp_path / "m", [[0, 1, 2, 3, 4]])
    diags = Diagnostics()
    buildouts = load_manifests([root / "buildouts" / "MANIFEST.cfg"], diags)
    found = load_workers([root / "workers.cfg"], diags)
    assert plan(buildouts, found) == plan(buildouts, found)
    assert plan(buildouts, found) == plan(tuple(reversed(buildouts)), tuple(reversed(found)))
