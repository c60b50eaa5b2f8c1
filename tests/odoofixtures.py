"""pytest plugin: the real Odoo source the live Odoo tests build.

Loaded by the project's conftest. The source is ``ANYBOX_CI_ODOO_SRC`` (an Odoo source
folder or a ``.tar.xz`` of one), by default the trimmed Odoo 18.0 archive in
``shared/odoo/`` beside the checkout; an archive is unpacked once into
``~/.cache/anybox-ci/odoo/<sha256>`` (the checkout's ``shared/`` may be read-only, and
buildout writes into the source folder).

When it is missing the tests say where they looked. With ``CI=true`` in the environment
that is a failure: a CI run must not pass by testing less. Elsewhere it is a skip.

Fixture:
- ``odoo_src`` (session): the writable Odoo source folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import pytest

from anybox_ci.devtools.localrun import cache_root
from anybox_ci.devtools.odoosamples import SRC_ENV, configured_src, odoo_source


def on_ci(environ: Mapping[str, str]) -> bool:
    """Whether this run is a CI job (``CI=true``, as CI services set it)."""
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str, environ: Mapping[str, str]) -> NoReturn:
    """No Odoo to test with: a failure on CI, a skip elsewhere; the reason either way."""
    if on_ci(environ):
        pytest.fail(f"{reason} (CI=true: the real Odoo tests must run)", pytrace=False)
    pytest.skip(reason)


def resolve(environ: Mapping[str, str], cache: Path) -> Path:
    """The Odoo source folder, or :func:`missing` saying why there is none."""
    src, origin = configured_src(environ)
    if not src.exists():
        missing(
            f"no Odoo source: {src} ({origin}) does not exist; set {SRC_ENV} to an Odoo "
            "18 source folder or a .tar.xz of one",
            environ,
        )
    try:
        return odoo_source(src, cache, print)
    except ValueError as exc:
        # present but unusable: a mistake to fix, wherever the tests run
        pytest.fail(f"{SRC_ENV}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def odoo_src() -> Path:
    """The Odoo source folder the real Odoo samples build."""
    return resolve(os.environ, cache_root() / "odoo")
