"""``anybox-ci matrix [DIR] [--json]``: the interface contract of PRODUCT.md."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anybox_ci import cli

REPO = Path(__file__).resolve().parent.parent
ANYBOX_CI = Path(sys.executable).parent / "anybox-ci"

MANIFEST = """\
[erp]
buildout = standalone b.cfg
build-for =
    postgresql >= 13
    python
build-requires = wkhtmltopdf
build-category = odoo

[site]
buildout = standalone b.cfg
build-for = postgresql

[nowhere]
buildout = standalone b.cfg
build-requires = nosuchtool
"""

WORKERS = """\
[zeta]
password = secret:zeta
capability =
    postgresql 16 port=5436
    python 3.12
    wkhtmltopdf

[alpha]
password = secret:alpha
priority = 5
capability =
    postgresql 16 port=5433
    postgresql 13 port=5432
    python 3.12
    wkhtmltopdf
"""


def make_master(root: Path, manifest: str = MANIFEST, workers: str = WORKERS) -> Path:
    root = root.resolve()
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.cfg").write_text(workers)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def check_contract(data: Any) -> None:
    """Exactly the contract's keys and types, every list sorted."""
    assert isinstance(data, dict)
    assert set(data) == {"builders", "unmatched"}
    builders, unmatched = data["builders"], data["unmatched"]
    assert isinstance(builders, list)
    assert isinstance(unmatched, list)
    for builder in builders:
        assert set(builder) == {"name", "buildout", "workers", "properties"}
        assert isinstance(builder["name"], str)
        assert builder["name"].startswith(builder["buildout"])
        assert isinstance(builder["properties"], dict)
        assert builder["workers"] == sorted(builder["workers"])
        assert all(isinstance(w, str) for w in builder["workers"])
        for value in builder["properties"].values():
            if isinstance(value, list):
                assert value == sorted(value)
    assert [b["name"] for b in builders] == sorted(b["name"] for b in builders)
    assert len({b["name"] for b in builders}) == len(builders)
    for entry in unmatched:
        assert set(entry) == {"buildout", "reason"}
        assert isinstance(entry["reason"], str) and entry["reason"]
    keys = [(u["buildout"], u["reason"]) for u in unmatched]
    assert keys == sorted(keys)


def test_json_is_exactly_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_master(tmp_path)
    rc, out, err = run(capsys, "matrix", str(root), "--json")
    assert (rc, err) == (0, "")
    data = json.loads(out)
    check_contract(data)
    assert data == {
        "builders": [
            {
                "name": "erp-pg13-py3.12",
                "buildout": "erp",
                "workers": ["alpha"],
                "properties": {
                    "buildout": "erp",
                    "build_requires": ["wkhtmltopdf"],
                    "pg_version": "13",
                    "py_version": "3.12",
                },
            },
            {
                "name": "erp-pg16-py3.12",
                "buildout": "erp",
                "workers": ["alpha", "zeta"],
                "properties": {
                    "buildout": "erp",
                    "build_requires": ["wkhtmltopdf"],
                    "pg_version": "16",
                    "py_version": "3.12",
                },
            },
            {
                "name": "site-pg13",
                "buildout": "site",
                "workers": ["alpha"],
                "properties": {"buildout": "site", "build_requires": [], "pg_version": "13"},
            },
            {
                "name": "site-pg16",
                "buildout": "site",
                "workers": ["alpha", "zeta"],
                "properties": {"buildout": "site", "build_requires": [], "pg_version": "16"},
            },
        ],
        "unmatched": [
            {
                "buildout": "nowhere",
                "reason": "no eligible worker: alpha lacks nosuchtool; zeta lacks nosuchtool",
            }
        ],
    }
    # machine-readable and stable: keys sorted, one document
    assert out == json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_unmatched_cell_in_json_and_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workers = (
        "[a]\npassword = secret:a\ncapability =\n    postgresql 15\n    python 3.10\n\n"
        "[b]\npassword = secret:b\ncapability =\n    postgresql 16\n    python 3.11\n"
    )
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nbuild-for =\n    postgresql\n    python\n",
        workers,
    )
    rc, out, _ = run(capsys, "matrix", str(root), "--json")
    assert rc == 0
    data = json.loads(out)
    check_contract(data)
    assert [b["name"] for b in data["builders"]] == ["erp-pg15-py3.10", "erp-pg16-py3.11"]
    assert data["unmatched"] == [
        {
            "buildout": "erp",
            "reason": "erp-pg15-py3.11: no single worker offers postgresql 15 and python 3.11",
        },
        {
            "buildout": "erp",
            "reason": "erp-pg16-py3.10: no single worker offers postgresql 16 and python 3.10",
        },
    ]

    rc, out, err = run(capsys, "matrix", str(root))
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "builder          workers",
        "erp-pg15-py3.10  a",
        "erp-pg16-py3.11  b",
        "unmatched: [erp] erp-pg15-py3.11: no single worker offers postgresql 15 and python 3.11",
        "unmatched: [erp] erp-pg16-py3.10: no single worker offers postgresql 16 and python 3.10",
    ]


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_master(tmp_path)
    rc, out, err = run(capsys, "matrix", str(root))
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "builder          workers",
        "erp-pg13-py3.12  alpha",
        "erp-pg16-py3.12  alpha, zeta",
        "site-pg13        alpha",
        "site-pg16        alpha, zeta",
        "unmatched: [nowhere]: no eligible worker: alpha lacks nosuchtool; zeta lacks nosuchtool",
    ]


def test_matrix_shows_a_broken_section_as_a_starting_master_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The broken section is left out (``broken``), the others are shown; exit 1."""
    root = make_master(tmp_path, MANIFEST + "colour = red\n")
    rc, out, err = run(capsys, "matrix", str(root), "--json")
    assert rc == 1
    error = f"{root}/buildouts/MANIFEST.cfg:16: [nowhere] colour: unknown option"
    assert err.splitlines() == [error]
    data = json.loads(out)
    assert set(data) == {"builders", "unmatched", "broken"}
    assert data["broken"] == [{"buildout": "nowhere", "reason": error}]
    assert data["unmatched"] == []
    assert {b["buildout"] for b in data["builders"]} == {"erp", "site"}


def test_matrix_refuses_an_error_of_no_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_master(tmp_path, workers=WORKERS + "max_builds = many\n")
    rc, out, err = run(capsys, "matrix", str(root), "--json")
    assert rc == 1
    assert out == ""
    assert err.splitlines() == [
        f"{root}/workers.cfg:16: [alpha] max_builds: expected an integer, got 'many'",
    ]


def test_default_directory_is_the_current_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_master(tmp_path)
    rc, expected, _ = run(capsys, "matrix", str(root), "--json")
    monkeypatch.chdir(root)
    rc2, out, _ = run(capsys, "matrix", "--json")
    assert rc == rc2 == 0
    assert out == expected


def test_sample_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The repository's sample manifest and workers file plan without error."""
    root = tmp_path.resolve()
    shutil.copytree(REPO / "buildouts", root / "buildouts")
    shutil.copy(REPO / "workers.cfg.sample", root / "workers.cfg")
    rc, out, err = run(capsys, "matrix", str(root), "--json")
    assert (rc, err) == (0, "")
    data = json.loads(out)
    check_contract(data)
    assert data["builders"]
    for builder in data["builders"]:
        assert builder["name"].startswith(builder["buildout"] + "-pg")
        assert builder["name"] == f"{builder['buildout']}-pg{builder['properties']['pg_version']}"


def test_installed_script_matches_the_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_master(tmp_path)
    _, expected, _ = run(capsys, "matrix", str(root), "--json")
    proc = subprocess.run(
        [str(ANYBOX_CI), "matrix", str(root), "--json"], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == expected
