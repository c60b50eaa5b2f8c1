"""How ``changes`` runs git, hg and brz: argv lists, no shell, no prompt, a timeout.

An unreachable or password-protected remote fails fast instead of hanging a cron job, and
a timeout kills the whole process group, helpers (ssh, git-remote-*) included.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anybox_ci.core.vcs import redact_url

DEFAULT_TIMEOUT = 600.0


def find_executable(name: str) -> str:
    """``name`` from PATH, else next to the running Python (hg and brz come from the venv)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return found or name


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """Last meaningful stderr line: what a person needs to see first."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        text = lines[-1] if lines else f"exit status {self.returncode}"
        return redact_url(text)[:300]


@dataclass
class Tools:
    """Executables, environment and timeout shared by every command of a run."""

    timeout: float = DEFAULT_TIMEOUT
    executables: Mapping[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        exes = {"git": "git", "hg": "hg", "bzr": "brz"}
        exes.update(self.executables)
        self.executables = {k: find_executable(v) for k, v in exes.items()}
        env = dict(os.environ)
        env.update(
            GIT_TERMINAL_PROMPT="0",
            HGPLAIN="1",
            HGENCODING="utf-8",
            BRZ_PROGRESS_BAR="none",
        )
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        env.update(self.env)
        self.env = env

    def run(self, vcs: str, args: Sequence[str], *, stdin: bytes | None = None) -> Result:
        argv = [self.executables[vcs], *args]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,  # so a timeout can kill helpers (ssh, git-remote-*) too
            )
        except OSError as exc:
            return Result(127, b"", f"cannot run {argv[0]}: {exc.strerror}")
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Result(-9, b"", f"{vcs} timed out after {self.timeout:g} s")
        return Result(proc.returncode, out, err.decode("utf-8", "replace"))
