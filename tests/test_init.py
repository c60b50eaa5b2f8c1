"""``anybox-ci init DIR`` makes a master folder that Buildbot accepts as it is, all or
nothing: a failure leaves no half-made folder behind."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from anybox_ci.cli import init as init_module
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


def test_init_refuses_a_file_with_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "master").write_text("not a folder")
    assert main(["init", str(tmp_path / "master")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a folder" in err


def test_init_fills_an_existing_empty_folder_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "master"
    target.mkdir(mode=0o750)
    target.chmod(0o750)
    assert main(["init", str(target)]) == 0
    assert (target / "master.cfg").is_file()
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master"]  # no staging folder left


def test_init_makes_a_relocatable_master(tmp_path: Path) -> None:
    """buildbot.tac finds its folder itself: the master still works after a move."""
    assert main(["init", str(tmp_path / "a")]) == 0
    (tmp_path / "a").rename(tmp_path / "b")
    assert "basedir = '.'" in (tmp_path / "b" / "buildbot.tac").read_text()
    assert main(["check", str(tmp_path / "b")]) == 0


def test_init_leaves_nothing_behind_when_it_fails(tmp_path: Path, capsys, monkeypatch) -> None:
    """A failing ``buildbot create-master``: no master, no staging folder, no new parents."""
    monkeypatch.setattr(init_module, "console_script", lambda name: "false")
    target = tmp_path / "new" / "deeper" / "master"
    assert main(["init", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "create-master failed" in err
    assert list(tmp_path.iterdir()) == []


def test_init_leaves_nothing_behind_when_interrupted(tmp_path: Path, monkeypatch) -> None:
    def interrupted(directory: Path) -> None:
        (directory / "half-made").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr(init_module, "_fill", interrupted)
    (tmp_path / "master").mkdir()
    assert main(["init", str(tmp_path / "master")]) == 130
    assert [p.name for p in tmp_path.iterdir()] == ["master"]
    assert list((tmp_path / "master").iterdir()) == []
