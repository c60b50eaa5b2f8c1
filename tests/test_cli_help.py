"""``anybox-ci --help`` says what each command is for, and every command answers ``--help``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from anybox_ci import cli

ANYBOX_CI = Path(sys.executable).parent / "anybox-ci"


def test_help_lists_every_command_with_one_line_of_purpose() -> None:
    proc = subprocess.run([str(ANYBOX_CI), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name, command in cli.COMMANDS.items():
        assert any(line.split() == [name, *command.help.split()] for line in lines), name
    assert "layers" not in proc.stdout  # said to users, not to developers


def test_the_documented_commands_are_there() -> None:
    assert {"check", "matrix", "run", "demo", "init", "update-mirrors", "docs"} <= set(cli.COMMANDS)
    assert {"install-hooks", "notify-push"} <= set(cli.COMMANDS)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_command_module_has_its_entry_point(name: str) -> None:
    command = cli.COMMANDS[name]
    assert callable(getattr(importlib.import_module(command.module), command.function))


@pytest.mark.parametrize("name", ["check", "matrix", "run", "demo", "init"])
def test_each_command_explains_itself(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: anybox-ci {name}")


def test_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["nosuch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid choice: 'nosuch'" in err


def test_help_does_not_import_buildbot() -> None:
    code = "import sys; from anybox_ci import cli; cli.build_parser(); print('buildbot' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr
