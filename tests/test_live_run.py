"""``anybox-ci run DIR`` end to end: any master folder on throwaway PostgreSQL, one local
worker, a table at the end, and nothing left running afterwards, Ctrl-C included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anybox_ci.devtools.localmaster import make_sample_repo, sample_manifest

pytestmark = pytest.mark.live

ANYBOX_CI = Path(sys.executable).parent / "anybox-ci"


def master_folder(root: Path) -> Path:
    """A master folder whose manifest builds the samples from their git repositories."""
    repos = {n: make_sample_repo(n, root / "repos") for n in ("passing", "failing", "restricted")}
    folder = root / "master"
    (folder / "buildouts").mkdir(parents=True)
    (folder / "buildouts" / "MANIFEST.cfg").write_text(sample_manifest(repos))
    # the folder's own workers are not used by run
    (folder / "workers.cfg").write_text("[elsewhere]\npassword = x\ncapability = postgresql 9\n")
    return folder


def processes_under(root: Path) -> list[str]:
    """Command lines of live processes that mention ``root`` (masters, workers, postgres)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(root) in cmdline and state not in ("Z", "X"):
            found.append(cmdline)
    return found


def table_rows(out: str) -> dict[str, list[str]]:
    """The final table's rows by cell: the lines after its header, up to the blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["cell", "worker"])
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows[line.split()[0]] = line.split()
    return rows


def env_with_tmp(tmp: Path) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp))


def test_run_builds_the_selected_cells_and_prints_the_table(tmp_path: Path) -> None:
    folder = master_folder(tmp_path)
    scratch = tmp_path / "tmp"
    proc = subprocess.run(
        [str(ANYBOX_CI), "run", str(folder), "--only", "passing", "failing"]
        + ["--expect-fail", "failing", "--pg", "15"],
        env=env_with_tmp(scratch),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in out + proc.stderr
    assert "[run] passing-pg15: step buildout" in out  # live progress
    rows = table_rows(out)
    assert set(rows) == {"passing-pg15", "failing-pg15"}  # --only
    assert rows["passing-pg15"][1:3] == ["local", "SUCCESS"]
    assert rows["passing-pg15"][4] == "2/0"
    assert rows["failing-pg15"][2:4] == ["FAILURE", "(expected)"]
    assert rows["failing-pg15"][5] == "2/1"
    assert "test_invoice_rounding" in " ".join(rows["failing-pg15"])
    assert processes_under(scratch) == []
    assert list(scratch.iterdir()) == []


def test_an_unexpected_failure_exits_1(tmp_path: Path) -> None:
    folder = master_folder(tmp_path)
    proc = subprocess.run(
        [str(ANYBOX_CI), "run", str(folder), "--only", "failing", "--pg", "15"],
        env=env_with_tmp(tmp_path / "tmp"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list(table_rows(proc.stdout)) == ["failing-pg15"]
    assert table_rows(proc.stdout)["failing-pg15"][2:4] == ["FAILURE", "!"]


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    folder = master_folder(tmp_path)
    scratch = tmp_path / "tmp"
    proc = subprocess.Popen(
        [str(ANYBOX_CI), "run", str(folder), "--pg", "15"],
        env=env_with_tmp(scratch),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        if ": step " in line or time.monotonic() > deadline:
            break
    assert any(": step " in line for line in seen), "".join(seen)
    assert processes_under(scratch)  # master, worker and PostgreSQL are up
    # a loaded machine may deliver Ctrl-C while the run is still settling: press it until
    # the run stops (a second press during the cleanup is ignored, as for a person)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "Traceback" not in rest
    assert "stopping the worker, the master and PostgreSQL" in rest
    assert processes_under(scratch) == []
    assert list(scratch.iterdir()) == []
