"""The package finds its own data (master.cfg.sample, the sample buildouts) wherever it is
installed, not in a source checkout; the repository keeps one copy of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from anybox_ci import resources

REPO = Path(__file__).resolve().parent.parent


def test_master_cfg_sample_is_package_data_and_the_top_level_file_is_the_same() -> None:
    text = resources.master_cfg_sample()
    assert "c['configurators'] = [AnyboxConfigurator(" in text
    top = REPO / "master.cfg.sample"
    assert top.read_text() == text
    assert top.is_symlink() and top.resolve() == REPO / "anybox_ci" / "data" / "master.cfg.sample"


@pytest.mark.parametrize("name", ["passing", "failing", "restricted", "fake-odoo"])
def test_sample_buildouts_are_found_as_folders(name: str) -> None:
    found = resources.sample_dir(name)
    assert found.is_dir()
    assert any(found.iterdir())


def test_sample_folders_are_those_of_the_repository() -> None:
    assert resources.sample_dir("passing").resolve() == REPO / "buildouts" / "samples" / "passing"


def test_unknown_sample_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="'nosuch' is not installed"):
        resources.sample_dir("nosuch")


def test_console_scripts_are_found_beside_the_interpreter() -> None:
    assert Path(resources.console_script("buildbot")).is_file()
