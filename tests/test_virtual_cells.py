"""Virtual cells (``virtual_builders=True``): what the configurator generates, and the
cell table the schedulers and builders consult. The live path (builds, force forms,
changes) is ``test_live_virtual_builders``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from buildbot.config.master import MasterConfig
from buildbot.process.properties import Properties

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core.selection import FORCE_MATCHING_SCHEDULER
from anybox_ci.render.cells import (
    CELL_PROP,
    CELLS_PROP,
    CellTable,
    CellWorkers,
    FanoutMixin,
    real_builder_name,
)
from tests.test_render import base_config, by_name, make_master


def _configured(root: Path) -> dict[str, Any]:
    config_dict: dict[str, Any] = {}
    AnyboxConfigurator(root, virtual_builders=True).configure(config_dict)
    return config_dict


def _table(config_dict: dict[str, Any]) -> CellTable:
    [table] = [s for s in config_dict["services"] if isinstance(s, CellTable)]
    table.reconfigService(*table._config_args, **table._config_kwargs)
    return table


def test_one_real_builder_per_buildout_and_a_virtual_cell_per_cell(tmp_path: Path) -> None:
    d = _configured(make_master(tmp_path))
    builders = by_name(d["builders"])
    assert sorted(builders) == [real_builder_name("erp"), real_builder_name("site")]
    erp = builders[real_builder_name("erp")]
    assert erp.workernames == ["ci1", "ci2"]
    assert erp.project is None  # each cell's build names the project
    assert [p.name for p in d["projects"]] == ["erp", "site"]
    assert isinstance(erp.canStartBuild, CellWorkers)
    assert not erp.properties  # a cell's properties travel with its build requests
    table = _table(d)
    cells = {c.name: c for c in table.by_builder[real_builder_name("erp")]}
    assert sorted(cells) == ["erp-pg15", "erp-pg17"]
    assert cells["erp-pg15"].workers == {"ci1"}
    assert cells["erp-pg17"].workers == {"ci1", "ci2"}
    props = cells["erp-pg15"].props()
    assert props[CELL_PROP] == "erp-pg15"
    assert props["pg_version"] == "15" and props["buildout"] == "erp"
    assert props["virtual_builder_tags"] == ["odoo", "pg15"]
    assert props["virtual_builder_project"] == "erp"
    assert props["virtual_builder_description"] == "The ERP"


def test_schedulers_name_the_real_builders_and_the_force_form_offers_the_cells(
    tmp_path: Path,
) -> None:
    d = _configured(make_master(tmp_path))
    scheds = by_name(d["schedulers"])
    assert scheds["changes:erp"].builderNames == [real_builder_name("erp")]
    form = scheds["force-erp"]
    assert form.builderNames == [real_builder_name("erp")]
    [cells] = [p for p in form._config_kwargs["properties"] if p.name == CELLS_PROP]
    assert cells.choices == ["erp-pg15", "erp-pg17"] and cells.multiple
    assert sorted(scheds[FORCE_MATCHING_SCHEDULER].builderNames) == sorted(
        [real_builder_name("erp"), real_builder_name("site")]
    )
    # Buildbot's own loader accepts it: every scheduler names a builder it knows
    config = MasterConfig.loadFromDict(
        base_config(AnyboxConfigurator(make_master(tmp_path), virtual_builders=True)), "m.cfg"
    )
    assert len(config.builders) == 2


def test_a_buildout_with_commit_status_keeps_a_builder_per_cell(tmp_path: Path) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = git https://e.com/erp.git main b.cfg\nbuild-for = postgresql\n"
        "commit-status = gitea https://gitea.example.com gitea-token\n"
        "[crm]\nbuildout = git https://e.com/crm.git main b.cfg\nbuild-for = postgresql\n",
    )
    names = sorted(b.name for b in _configured(root)["builders"])
    assert names == [real_builder_name("crm"), "erp-pg15", "erp-pg17"]


def test_the_table_expands_real_builders_into_their_cells(tmp_path: Path) -> None:
    table = _table(_configured(make_master(tmp_path)))
    erp, site = real_builder_name("erp"), real_builder_name("site")

    def expand(names: list[str], **props: Any) -> list[tuple[list[str], str | None]]:
        given = Properties(**props) if props else None
        return [(b, c.name if c else None) for b, c in table.expand(names, given)]

    assert expand([erp, site]) == [
        ([erp], "erp-pg15"),
        ([erp], "erp-pg17"),
        ([site], "site-pg15"),
    ]
    # a Trigger's cell, a force form's choice, a cell named directly
    assert expand([erp], **{CELL_PROP: "erp-pg17"}) == [([erp], "erp-pg17")]
    assert expand([erp], **{CELLS_PROP: ["erp-pg15", "site-pg15"]}) == [([erp], "erp-pg15")]
    assert expand([erp], **{CELLS_PROP: []}) == []
    assert expand(["site-pg15"]) == [([site], "site-pg15")]
    # builders without cells stay in one buildset of their own
    assert expand(["erp-acceptance", erp], **{CELL_PROP: "erp-pg15"}) == [
        (["erp-acceptance"], None),
        ([erp], "erp-pg15"),
    ]
    assert table.names_virtual([erp]) and not table.names_virtual(["erp-acceptance"])


def test_a_cell_runs_only_on_its_own_workers(tmp_path: Path) -> None:
    table = _table(_configured(make_master(tmp_path)))
    master = SimpleNamespace(service_manager=SimpleNamespace(namedServices={table.name: table}))
    erp = SimpleNamespace(name=real_builder_name("erp"), master=master)
    site = SimpleNamespace(name=real_builder_name("site"), master=master)

    def can(builder: Any, worker: str, cell: Any) -> bool:
        wfb = SimpleNamespace(worker=SimpleNamespace(workername=worker))
        request = SimpleNamespace(properties=Properties(**{CELL_PROP: cell}))
        return CellWorkers()(builder, wfb, request)

    assert can(erp, "ci1", "erp-pg15") and not can(erp, "ci2", "erp-pg15")
    assert can(erp, "ci2", "erp-pg17")
    assert not can(site, "ci1", "erp-pg15")  # a cell of another builder
    assert not can(erp, "ci1", "gone") and not can(erp, "ci1", None)


def test_every_generated_scheduler_fans_out() -> None:
    from anybox_ci.render import cells, changes

    for cls in (cells.AnyBranchScheduler, cells.Nightly, cells.Triggerable):
        assert issubclass(cls, FanoutMixin)
    assert issubclass(changes.BuildoutForceScheduler, FanoutMixin)
    assert issubclass(changes.MatchingForceScheduler, FanoutMixin)


def test_a_reconfig_lists_only_new_and_changed_projects(tmp_path: Path) -> None:
    # Buildbot rewrites each listed project at every reconfig and never deletes one
    root = make_master(tmp_path)
    assert [p.name for p in _configured(root)["projects"]] == ["erp", "site"]
    assert _configured(root)["projects"] == []
    manifest = root / "buildouts" / "MANIFEST.cfg"
    manifest.write_text(manifest.read_text().replace("The ERP", "The new ERP"))
    [project] = _configured(root)["projects"]
    assert (project.name, project.description) == ("erp", "The new ERP")
    # and Buildbot accepts such a configuration: no builder names a project
    config = MasterConfig.loadFromDict(
        base_config(AnyboxConfigurator(root, virtual_builders=True)), "m.cfg"
    )
    assert config.projects == [] and len(config.builders) == 2
