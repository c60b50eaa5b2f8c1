"""``anybox-ci init DIR`` makes a master folder that Buildbot accepts as it is."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from anybox_ci.cli import main
from anybox_ci.www.htpasswd import check_password

BIN = Path(sys.executable).parent


def test_init_creates_a_valid_master_with_private_generated_secrets(tmp_path: Path) -> None:
    target = tmp_path / "master"
    assert main(["init", str(target)]) == 0
    for name in ("master.cfg", "buildbot.tac", "buildouts/MANIFEST.cfg", "workers.cfg"):
        assert (target / name).is_file(), name
    secrets = target / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    worker_pw = (secrets / "worker-local").read_text().strip()
    admin_pw = (secrets / "admin-password").read_text().strip()
    assert len(worker_pw) >= 24 and len(admin_pw) >= 12
    for path in (secrets / "worker-local", secrets / "admin-password", target / "htpasswd"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user, hashed = (target / "htpasswd").read_text().strip().split(":", 1)
    assert user == "admin" and hashed.startswith("$2")
    assert check_password(admin_pw.encode(), hashed)
    assert worker_pw not in (target / "workers.cfg").read_text()
    assert main(["check", str(target)]) == 0
    checked = subprocess.run(
        [str(BIN / "buildbot"), "checkconfig", str(target)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_refuses_a_non_empty_folder_with_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    assert main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not empty" in err
    assert (tmp_path / "keep.txt").read_text() == "precious"
