"""The ancestor's files load unchanged: a manifest and a workers file of each of its branches
(``tests/data/ancestor/master``: anybox.buildbot.openerp; ``.../nine``: anybox.buildbot.odoo),
written here in its dialect with every option and step-set name it knew, give only the
expected warnings, and the builders its own tests expected.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anybox_ci.core import schema
from anybox_ci.core.loader import Loaded, check
from anybox_ci.core.stepset_catalogue import ANCESTOR_STEP_SETS

DATA = Path(__file__).resolve().parent / "data" / "ancestor"


def copied(tmp_path: Path, branch: str) -> Path:
    root = tmp_path.resolve() / branch
    shutil.copytree(DATA / branch, root)
    return root


def lines(loaded: Loaded, root: Path) -> list[str]:
    """The diagnostics, paths relative to the master folder."""
    return [str(d).replace(f"{root}/", "") for d in loaded.diagnostics.items]


IGNORED = "; remove it (anybox-ci migrate does)"
NO_BOOTSTRAP_PY = (
    "there is no bootstrap.py any more: zc.buildout (`bootstrap-version`) is installed with "
    "pip into a per-worker virtualenv"
)
PORTS = "ports are chosen by the kernel and locked by the worker (no range to scan, no race)"
PRECEDENCE = (
    "line ignored: the buildout's own branch {!r} of this repository is watched, and takes "
    "precedence (as in the ancestor)"
)
RELEASE = (
    "step set 'packaging': ignored since anybox_ci 0.1: the release tarball is made from "
    "the built buildout by the `packaging` post-buildout step set (name it in "
    "post-buildout-steps)" + IGNORED
)
PARTS = "ignored since anybox_ci 0.1: a release tarball holds the whole built buildout" + IGNORED
VCS = (
    "ignored since anybox_ci 0.1: a release tarball is made from the built buildout, "
    "whatever its version control" + IGNORED
)
M = "buildouts/MANIFEST.cfg"


def since(why: str) -> str:
    return f"ignored since anybox_ci 0.1: {why}{IGNORED}"


def test_master_branch_files_load_with_the_expected_warnings(tmp_path: Path) -> None:
    root = copied(tmp_path, "master")
    loaded = check(root)
    assert lines(loaded, root) == [
        f"{M}:11: warning: [DEFAULT] bootstrap-type: {since(NO_BOOTSTRAP_PY)}",
        f"{M}:19: warning: [openerp-7] openerp-addons: deprecated option name, use 'odoo-addons'",
        f"{M}:22: warning: [openerp-7] bootstrap-script: {since(NO_BOOTSTRAP_PY)}",
        f"{M}:23: warning: [openerp-7] bootstrap-offline: "
        + since(NO_BOOTSTRAP_PY + ", which takes no other option"),
        f"{M}:24: warning: [openerp-7] post-buildout-steps: deprecated step set name "
        "'test-openerp', use 'install-modules-test'",
        f"{M}:39: warning: [openerp-7] odoo.http-port-min: {since(PORTS)}",
        f"{M}:40: warning: [openerp-7] odoo.http-port-max: {since(PORTS)}",
        f"{M}:41: warning: [openerp-7] odoo.http-port-step: {since(PORTS)}",
        f"{M}:48: warning: [standard-test] post-buildout-steps: deprecated step set name "
        "'standard', use 'install-modules-test'",
        f"{M}:53: warning: [oecommand] watch: " + PRECEDENCE.format("default"),
        f"{M}:80: warning: [updates] db-steps: deprecated step set name 'simple-create', "
        "use 'simple_create'",
        f"{M}:81: warning: [updates] post-buildout-steps: deprecated step set name "
        "'update-openerp', use 'update-modules'",
        f"{M}:86: warning: [release] post-dl-steps: {RELEASE}",
        f"{M}:90: warning: [release] packaging.parts: {PARTS}",
        f"{M}:91: warning: [release] packaging.vcs: {VCS}",
        f"{M}:97: warning: [functional-tests] post-buildout-steps: deprecated step set name "
        "'test-odoo', use 'install-modules-test'",
        f"{M}:100: warning: [functional-tests] functional.wait: deprecated option name, use "
        "'functional.timeout'",
        "slaves.cfg:5: warning: [ci-pg] password: password written in clear; prefer 'secret:NAME'",
        "slaves.cfg:14: warning: [ci-pg] slave_priority: deprecated option name, use 'priority'",
        "slaves.cfg:18: warning: [ci-selenium] passwd: deprecated option name, use 'password'",
        "slaves.cfg:18: warning: [ci-selenium] password: password written in clear; prefer "
        "'secret:NAME'",
    ]
    cells = {c.name: c for c in loaded.matrix.cells}
    assert sorted(cells) == [
        "frozen",
        "functional-tests",
        "nose-tests",
        "oecommand",
        "openerp-7-pg8.4",
        "openerp-7-pg8.4-special",
        "openerp-7-pg9.1-devel",
        "openerp-7-pg9.2devel",
        "release",
        "standard-test-pg8.4",
        "standard-test-pg8.4-special",
        "standard-test-pg9.1-devel",
        "standard-test-pg9.2devel",
        "updates-pg8.4",
        "updates-pg8.4-special",
        "updates-pg9.1-devel",
        "updates-pg9.2devel",
    ]
    # selenium-server is kept for the builds that require it
    assert {w for c in cells.values() for w in c.workers} == {"ci-pg"}
    assert loaded.matrix.unmatched == ()


def test_nine_branch_files_load_with_the_expected_warnings(tmp_path: Path) -> None:
    root = copied(tmp_path, "nine")
    loaded = check(root)
    url = "http://releases.example.com/%(prop:release_subdir)s/%(prop:release_name)s.tar.bz2"
    assert lines(loaded, root) == [
        f"{M}:6: warning: [DEFAULT] bootstrap-virtualenv: "
        + since("the bootstrap always uses a per-worker virtualenv"),
        f"{M}:7: warning: [DEFAULT] virtualenv: " + since(schema.VIRTUALENV.ignored),
        # the ancestor ignored it too: a section without buildout makes no builder
        f"{M}:15: warning: [a.r.odoo] build-for: has no effect: a section without 'buildout' "
        "only watches",
        f"{M}:27: warning: [odoo-recipe-10] watch: " + PRECEDENCE.format("master"),
        f"{M}:37: warning: [addons-list] post-buildout-steps: deprecated step set name "
        "'update-odoo', use 'update-modules'",
        f"{M}:51: warning: [from-archive] buildout: the ancestor's archive form: the worker "
        f"fetches {url}; write 'archive URL FILE' to say so",
        f"{M}:58: warning: [releases] post-dl-steps: {RELEASE}",
        f"{M}:62: warning: [releases] packaging.parts: {PARTS}",
        f"{M}:63: warning: [releases] packaging.vcs: {VCS}",
        "workers.cfg:11: warning: [privcode] worker_priority: deprecated option name, use "
        "'priority'",
    ]
    cells = {c.name: c for c in loaded.matrix.cells}
    assert {name: c.workers for name, c in cells.items()} == {
        "addons-list-pg9.4-py2.7": ("py26",),
        "from-archive": ("privcode",),
        "inheritor-pg9.4-py2.7": ("py26",),
        # privcode only takes what requires both private-code-access and rabbitmq
        "no-pg": ("private",),
        "odoo-recipe-10-pg9.4": ("py26",),
        "releases": ("py26",),
    }
    assert dict(cells["addons-list-pg9.4-py2.7"].properties) == {
        "buildout": "addons-list",
        "build_requires": [],
        "pg_version": "9.4",
        "py_version": "2.7",
    }
    buildouts = {b.name: b for b in loaded.config.buildouts}
    assert buildouts["inheritor"].get(schema.ODOO_ADDONS) == ("sale",)
    assert buildouts["inheritor"].get(schema.BUILD_CATEGORY) == ("recipe",)
    assert buildouts["from-archive"].source.url == url


@pytest.mark.parametrize("branch", ["master", "nine"])
def test_every_ancestor_name_appears_in_the_dialect_files(branch: str) -> None:
    """The files above use every option and step-set name the ancestor knew (across both
    branches), so that the tests above cover them all."""
    both = "\n".join(
        (DATA / b / "buildouts" / "MANIFEST.cfg").read_text() for b in ("master", "nine")
    )
    for name in schema.ANCESTOR_MANIFEST_OPTIONS:
        assert f"\n{name} =" in both, name
    for names in ANCESTOR_STEP_SETS.values():
        for name in names:
            assert name in both, name
    workers = (DATA / "master" / "slaves.cfg").read_text()
    workers += (DATA / "nine" / "workers.cfg").read_text()
    for name in schema.ANCESTOR_WORKER_OPTIONS:
        assert f"\n{name} =" in workers, name
