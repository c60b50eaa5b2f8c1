"""``buildbot checkconfig`` on a master made from master.cfg.sample and the sample files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anybox_ci.core.diagnostics import Diagnostics
from anybox_ci.core.workers import load_workers

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parent.parent
BUILDBOT = Path(sys.executable).parent / "buildbot"


def buildbot(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUILDBOT), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


@pytest.fixture
def master(tmp_path: Path) -> Path:
    root = tmp_path.resolve() / "master"
    created = buildbot("create-master", "-q", root)
    assert created.returncode == 0, created.stdout + created.stderr
    shutil.copy(REPO / "master.cfg.sample", root / "master.cfg")
    shutil.copytree(REPO / "buildouts", root / "buildouts")
    shutil.copy(REPO / "workers.cfg.sample", root / "workers.cfg")
    # one file per secret: password of the sample workers
    diags = Diagnostics()
    secrets = sorted(
        w.password.secret for w in load_workers([root / "workers.cfg"], diags) if w.password.secret
    )
    assert secrets, "the sample workers use secret: passwords"
    assert not diags.errors
    (root / "secrets").mkdir(mode=0o700)
    (root / "secrets").chmod(0o700)
    for name in secrets:
        path = root / "secrets" / name
        path.write_text(f"password-of-{name}\n")
        path.chmod(0o600)
    return root


def test_sample_master_checks_clean(master: Path) -> None:
    proc = buildbot("checkconfig", master)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Config file is good!" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_broken_manifest_is_reported_in_our_format(master: Path) -> None:
    manifest = master / "buildouts" / "MANIFEST.cfg"
    lines = manifest.read_text().splitlines()
    # an unknown option right after the first buildout section's header
    header = next(
        i for i, line in enumerate(lines) if line.startswith("[") and "DEFAULT" not in line
    )
    section = lines[header].strip("[]")
    lines.insert(header + 1, "colour = red")
    manifest.write_text("\n".join(lines) + "\n")
    proc = buildbot("checkconfig", master)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    expected = f"{manifest}:{header + 2}: [{section}] colour: unknown option"
    assert expected in [line.strip() for line in output.splitlines()]
    assert "Traceback" not in output
    assert "anybox_ci" not in output  # no frame of ours
