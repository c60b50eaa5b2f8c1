"""Tests of build_utils/bootstrap.py: real virtualenvs, zc.buildout really installed from PyPI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from build_utils import bootstrap
from tests.shipped import ship, summary_of

ROOT = Path(__file__).resolve().parents[1]


def values(stdout: str) -> dict[str, str]:
    keys = ("buildout", "created", "elapsed")
    pairs = (line.split("=", 1) for line in stdout.splitlines() if line.split("=", 1)[0] in keys)
    return {key: value for key, value in pairs}


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ship(tmp_path_factory.mktemp("worker"), "bootstrap")


@pytest.fixture(scope="module")
def shared_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache") / "buildout-venv"


def start(script: Path, venv: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), "--venv", str(venv), "--python", sys.executable, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.live
def test_concurrent_cold_bootstraps_create_once(script: Path, shared_venv: Path) -> None:
    procs = [start(script, shared_venv), start(script, shared_venv)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = [values(out) for out in outputs]
    assert sorted(r["created"] for r in results) == ["0", "1"]  # exactly one created it
    for out, result in zip(outputs, results, strict=True):
        assert result["buildout"] == str(shared_venv / "bin" / "buildout")
        assert Path(result["buildout"]).exists()
        assert summary_of(out).startswith(("created venv with zc.buildout ", "reused venv"))
    waiting = [out for out in outputs if "waiting for" in out]
    assert len(waiting) <= 1
    marker = json.loads((shared_venv / bootstrap.MARKER_NAME).read_text())
    assert marker["buildout_spec"] == bootstrap.DEFAULT_SPEC
    assert marker["buildout_version"].split(".")[0] in {"4", "5", "6"}
    cold = next(float(r["elapsed"]) for r in results if r["created"] == "1")
    print(f"cold bootstrap: {cold:.2f}s")


@pytest.mark.live
def test_warm_bootstrap_is_nearly_instant(script: Path, shared_venv: Path) -> None:
    proc = start(script, shared_venv)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    result = values(out)
    assert result["created"] == "0"
    assert float(result["elapsed"]) < 2.0
    assert summary_of(out).startswith("reused venv (zc.buildout ")
    print(f"warm bootstrap: {float(result['elapsed']):.3f}s")
    # and the buildout it provides runs
    version = subprocess.run(
        [str(shared_venv / "bin" / "python"), "-c", "import zc.buildout; print('ok')"],
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == "ok"


@pytest.mark.live
def test_marker_mismatch_rebuilds(script: Path, shared_venv: Path) -> None:
    marker_path = shared_venv / bootstrap.MARKER_NAME
    marker = json.loads(marker_path.read_text())
    marker["python_version"] = "2.7.18 (some other interpreter)"
    marker_path.write_text(json.dumps(marker))
    (shared_venv / "stale-file").write_text("from the old venv")
    proc = start(script, shared_venv)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert values(out)["created"] == "1"
    assert "rebuilding" in out
    assert not (shared_venv / "stale-file").exists()
    assert json.loads(marker_path.read_text())["python_version"] == sys.version


def test_spec_normalisation() -> None:
    assert bootstrap.normalise_spec("6.0.1") == "zc.buildout==6.0.1"
    assert bootstrap.normalise_spec("zc.buildout<5") == "zc.buildout<5"
    with pytest.raises(bootstrap.BootstrapError):
        bootstrap.normalise_spec("--index-url=https://evil.example/simple")


def test_bad_interpreter_and_spec(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "--venv",
            str(tmp_path / "v"),
            "--python",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert summary_of(proc.stdout).startswith("bootstrap failed: cannot run ")
    proc = subprocess.run(
        [sys.executable, str(script), "--venv", str(tmp_path / "v"), "--python", sys.executable]
        + ["--buildout-version=--index-url=https://evil.example/simple"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "invalid buildout requirement" in summary_of(proc.stdout)
    assert not (tmp_path / "v").exists()
