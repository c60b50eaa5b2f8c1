"""Ship ``build_utils/`` to workers as one zip application.

One file means one transfer step per build instead of one per script; Python runs a
zip with a ``__main__.py`` directly (``python3 anybox-ci-utils.pyz SCRIPT ARGS``), and
the scripts stay plain standard-library files that also run on their own.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import resources
from pathlib import Path

BUNDLE_NAME = "anybox-ci-utils.pyz"

_MAIN = '''"""Dispatch ``python3 anybox-ci-utils.pyz SCRIPT ARGS`` to build_utils/SCRIPT.py."""
import runpy
import sys

if len(sys.argv) < 2:
    sys.exit("usage: anybox-ci-utils.pyz SCRIPT [ARGS...]")
script = sys.argv.pop(1)
sys.argv[0] = script
runpy.run_module(script.replace("-", "_"), run_name="__main__", alter_sys=True)
'''


def script_sources() -> dict[str, bytes]:
    """The build_utils modules, by file name."""
    root = resources.files("anybox_ci.build_utils")
    sources = {}
    for entry in root.iterdir():
        name = entry.name
        if name.endswith(".py") and name != "__init__.py":
            sources[name] = entry.read_bytes()
    return dict(sorted(sources.items()))


def bundle_bytes() -> bytes:
    """A deterministic zip: same scripts, same bytes (fixed timestamps, sorted names)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        files = {"__main__.py": _MAIN.encode(), **script_sources()}
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def write_bundle(directory: Path) -> Path:
    """Write the bundle under ``directory`` unless an identical one is there."""
    data = bundle_bytes()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / BUNDLE_NAME
    if (
        not target.exists()
        or hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(data).digest()
    ):
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target
