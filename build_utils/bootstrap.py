"""Provide zc.buildout in a per-worker virtualenv, created once (Python standard library only).

    python3 bootstrap.py --venv DIR --python INTERP [--buildout-version SPEC]

Why: every build needs ``bin/buildout``; installing it per build is slow and hammers the
package index, and concurrent builds on one worker must not create the same virtualenv at the
same time. So:

* an exclusive ``fcntl.flock`` on ``DIR.lock`` serialises bootstraps of one DIR (the kernel
  drops it if the process dies, so it never goes stale);
* a marker file, ``DIR/anybox-ci-bootstrap.json``, written last and atomically, records the
  interpreter (version and real path) and the buildout requirement. If it matches, the
  virtualenv is reused at once; if it is missing (interrupted creation) or differs, DIR is
  removed and rebuilt with ``INTERP -m venv DIR`` and ``DIR/bin/python -m pip install SPEC``.

SPEC defaults to ``zc.buildout>=4,<7``; a bare version such as ``6.0`` means
``zc.buildout==6.0``. Output: ``buildout=<DIR/bin/buildout>`` and ``created=0|1`` before the
summary line.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]


DEFAULT_SPEC = "zc.buildout>=4,<7"
MARKER_NAME = "anybox-ci-bootstrap.json"
MARKER_FORMAT = 1
INTERP_PROBE = (
    "import json, os, sys; "
    "print(json.dumps({'version': sys.version, 'executable': os.path.realpath(sys.executable),"
    " 'base': os.path.realpath(getattr(sys, '_base_executable', sys.executable))}))"
)


class BootstrapError(RuntimeError):
    """Bootstrap failed; the message is fit for the summary line."""


def normalise_spec(spec: str) -> str:
    spec = spec.strip()
    if not spec or spec.startswith("-"):
        raise BootstrapError(f"invalid buildout requirement: {spec!r}")
    if spec[0].isdigit():
        return f"zc.buildout=={spec}"
    return spec


def interpreter_info(python: str) -> dict[str, str]:
    """Identify INTERP (version and real path) by asking it."""
    try:
        proc = subprocess.run(
            [python, "-c", INTERP_PROBE], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise BootstrapError(f"cannot run {python}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise BootstrapError(f"{python} failed: {proc.stderr.strip().splitlines()[-1:]}")
    info = json.loads(proc.stdout)
    return {"version": info["version"], "executable": info["base"]}


def read_marker(venv: Path) -> dict[str, object] | None:
    try:
        with open(venv / MARKER_NAME, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(venv: Path, data: dict[str, object]) -> None:
    tmp = venv / (MARKER_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, venv / MARKER_NAME)


def marker_matches(marker: dict[str, object] | None, wanted: dict[str, object], venv: Path) -> bool:
    if marker is None or not (venv / "bin" / "buildout").exists():
        return False
    return all(marker.get(key) == value for key, value in wanted.items())


def run(argv: Sequence[str]) -> None:
    print("$ " + " ".join(argv), flush=True)
    code = subprocess.call(list(argv), stdin=subprocess.DEVNULL)
    if code != 0:
        raise BootstrapError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed (exit {code})")


def create_venv(venv: Path, python: str, spec: str) -> str:
    """(Re)create the virtualenv and install ``spec``; return the installed buildout version."""
    if venv.is_symlink() or venv.is_file():
        venv.unlink()
    elif venv.exists():
        shutil.rmtree(venv)
    run([python, "-m", "venv", str(venv)])
    vpython = str(venv / "bin" / "python")
    run(
        [
            vpython,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar=off",
            spec,
        ]
    )
    proc = subprocess.run(
        [vpython, "-c", "from importlib.metadata import version; print(version('zc.buildout'))"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not (venv / "bin" / "buildout").exists():
        raise BootstrapError(f"{spec} installed no bin/buildout")
    return proc.stdout.strip()


def bootstrap(venv_dir: str, python: str, spec: str = DEFAULT_SPEC) -> tuple[Path, bool, str]:
    """Ensure the virtualenv; return (buildout script, created now?, buildout version)."""
    spec = normalise_spec(spec)
    venv = Path(os.path.abspath(venv_dir))
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.with_name(venv.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {lock_path} (another build is bootstrapping)", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        info = interpreter_info(python)
        wanted: dict[str, object] = {
            "format": MARKER_FORMAT,
            "python_version": info["version"],
            "python_executable": info["executable"],
            "buildout_spec": spec,
        }
        marker = read_marker(venv)
        if marker_matches(marker, wanted, venv):
            assert marker is not None
            return venv / "bin" / "buildout", False, str(marker.get("buildout_version", "?"))
        if marker is not None:
            print(f"rebuilding {venv}: marker differs from the requested interpreter/spec")
        version = create_venv(venv, python, spec)
        write_marker(venv, {**wanted, "buildout_version": version, "created_at": time.time()})
        return venv / "bin" / "buildout", True, version
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description="Create (once) a virtualenv with zc.buildout.")
    parser.add_argument("--venv", required=True, help="virtualenv directory, shared per worker")
    parser.add_argument("--python", required=True, help="interpreter creating the virtualenv")
    parser.add_argument("--buildout-version", default=DEFAULT_SPEC, help="pip requirement")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        buildout, created, version = bootstrap(args.venv, args.python, args.buildout_version)
    except (BootstrapError, OSError) as exc:
        print_summary(f"bootstrap failed: {exc}")
        return 1
    elapsed = time.monotonic() - started
    print(f"buildout={buildout}")
    print(f"created={int(created)}")
    print(f"elapsed={elapsed:.3f}")
    if created:
        print_summary(f"created venv with zc.buildout {version} in {elapsed:.1f}s")
    else:
        print_summary(f"reused venv (zc.buildout {version}) in {elapsed:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
