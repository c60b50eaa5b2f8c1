"""What is installed with the package: master.cfg.sample, the sample buildouts, and
the Buildbot commands beside this Python.

The files are package data (see pyproject.toml), so that a plain ``pip install`` gives
a working ``anybox-ci init`` and ``anybox-ci demo``: nothing here looks for a source
checkout. Standard library only.
"""

from __future__ import annotations

import shutil
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

DATA_PACKAGE = "anybox_ci.data"
#: ``buildouts/samples`` of the repository, installed as this package
SAMPLES_PACKAGE = "anybox_ci.samples"


def _package(name: str) -> Traversable:
    try:
        return files(name)
    except ModuleNotFoundError:
        # an editable install made before the package data existed
        raise FileNotFoundError(f"{name} is not installed: reinstall anybox_ci") from None


def master_cfg_sample() -> str:
    """The text of master.cfg.sample: the master.cfg that ``init`` and ``run`` start from."""
    return _package(DATA_PACKAGE).joinpath("master.cfg.sample").read_text(encoding="utf-8")


def sample_dir(name: str) -> Path:
    """The folder of the shipped sample buildout ``name`` (``passing``, ``fake-odoo``...).

    A real folder on disk: samples are copied into git repositories and given to buildout.
    """
    found = _package(SAMPLES_PACKAGE).joinpath(name)
    if not isinstance(found, Path) or not found.is_dir():
        raise FileNotFoundError(f"sample buildout {name!r} is not installed with anybox_ci")
    return found


def console_script(name: str) -> str:
    """A command installed with this Python (``buildbot``, ``buildbot-worker``): the one
    beside the running interpreter first, so a virtualenv works without being activated."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)
