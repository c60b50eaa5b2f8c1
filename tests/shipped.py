"""Worker-side scripts as the master ships them, for the build_utils tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from build_utils.summary import SUMMARY_PREFIX

BUILD_UTILS = Path(__file__).resolve().parents[1] / "build_utils"


def ship(parent: Path, script: str, *companions: str) -> Path:
    """Copy ``script`` (and the modules shipped with it) alone into ``parent/build_utils``."""
    folder = parent / "build_utils"
    folder.mkdir()
    for name in ("summary", *companions):
        shutil.copy(BUILD_UTILS / f"{name}.py", folder)
    return Path(shutil.copy(BUILD_UTILS / f"{script}.py", folder))


def summary_of(stdout: str) -> str:
    """The text of the script's last line, which must be its summary line."""
    last = stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith(SUMMARY_PREFIX), last
    return last[len(SUMMARY_PREFIX) :]
