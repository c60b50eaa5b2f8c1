"""``anybox-ci run``: what it decides before starting anything (cells, sections, errors).

Bad input is one line and exit 1, and nothing is left behind in the temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anybox_ci import cli
from anybox_ci.cli.run import Refused, Request, plan

MANIFEST = """\
[DEFAULT]
build-for = postgresql >= 13

[erp]
buildout = standalone b.cfg

[pdf]
buildout = standalone b.cfg
build-requires = wkhtmltopdf

[new]
buildout = standalone b.cfg
build-for = postgresql >= 16
"""


def master_folder(root: Path, manifest: str = MANIFEST) -> Path:
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    return root


def request(root: Path, **kwargs: object) -> Request:
    return Request(manifests=[root / "buildouts" / "MANIFEST.cfg"], majors=[13, 15], **kwargs)  # type: ignore[arg-type]


def test_cells_follow_the_local_postgresql_versions(tmp_path: Path) -> None:
    root = master_folder(tmp_path / "m")
    found = plan(request(root), tmp_path)
    assert found.cells == {"erp-pg13": "erp", "erp-pg15": "erp"}
    assert {cell.split()[0] for cell, _ in found.not_run} == {"pdf", "new"}


def test_a_capability_lets_more_cells_run_and_only_narrows(tmp_path: Path) -> None:
    root = master_folder(tmp_path / "m")
    found = plan(request(root, capabilities=["wkhtmltopdf 0.12.6"], only=["pdf"]), tmp_path)
    assert found.cells == {"pdf-pg13": "pdf", "pdf-pg15": "pdf"}
    assert found.not_run == []


def test_unknown_sections_are_refused(tmp_path: Path) -> None:
    root = master_folder(tmp_path / "m")
    with pytest.raises(
        Refused, match=r"--expect-fail: no section nope \(sections: erp, new, pdf\)"
    ):
        plan(request(root, expect_fail=["nope"]), tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["run", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    return scratch


def test_no_manifest_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, str(tmp_path))
    assert rc == 1 and out == ""
    assert err == f"anybox-ci run: error: no manifest {tmp_path}/buildouts/MANIFEST.cfg\n"


def test_bad_manifest_stops_before_anything_starts(
    tmp_path: Path, scratch_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_folder(tmp_path / "m", "[erp]\nbuildout = standalone b.cfg\ncolour = red\n")
    rc, out, err = run(capsys, str(root))
    assert rc == 1
    assert err.splitlines() == [
        f"{root}/buildouts/MANIFEST.cfg:3: [erp] colour: unknown option",
        "anybox-ci run: error: 1 error(s) in the manifests",
    ]
    assert list(scratch_tmp.iterdir()) == []


def test_unknown_only_section(
    tmp_path: Path, scratch_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_folder(tmp_path / "m")
    rc, _, err = run(capsys, str(root), "--only", "erp", "nope")
    assert rc == 1
    assert err == "anybox-ci run: error: --only: no section nope (sections: erp, new, pdf)\n"
    assert list(scratch_tmp.iterdir()) == []


def test_nothing_to_run_shows_why(
    tmp_path: Path, scratch_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = master_folder(tmp_path / "m")
    rc, out, err = run(capsys, str(root), "--only", "pdf", "new", "--pg", "13")
    assert rc == 1
    assert "NOT RUN" in out and "wkhtmltopdf" in out
    assert err == "anybox-ci run: error: no cell can run on this machine\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pg", "x"], "argument --pg: expected majors like 13,15,17, got 'x'"),
        (["--jobs", "0"], "--jobs must be at least 1"),
    ],
)
def test_bad_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    root = master_folder(tmp_path / "m")
    try:
        rc, _, err = run(capsys, str(root), *argv)
    except SystemExit as exc:
        rc, err = int(str(exc.code)), capsys.readouterr().err
    assert rc in (1, 2)
    assert err.count("\n") == 1 and message in err
