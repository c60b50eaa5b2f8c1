"""A reconfig reuses what did not change: ``render.memo``.

``configure()`` runs again at every reconfig. The factories and builder configs of the
buildouts whose inputs are unchanged are the very objects of the previous configuration
(a thousand-section master rebuilds only what was edited), and anything edited is made
again: a manifest option, a file a standalone buildout extends, a worker's priority, a
step-set registry. Services (schedulers, workers) are always new instances, which
Buildbot compares with the running ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.util import ComparableMixin

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.render import memo
from anybox_ci.render.stepsets import DEFAULT_STEP_SETS, StepContext

MANIFEST = """\
[DEFAULT]
build-for = postgresql >= 15
post-buildout-steps = install-modules-test

[one]
buildout = standalone one/buildout.cfg
odoo-addons = mod_one

[two]
buildout = standalone two/buildout.cfg
odoo-addons = mod_two
watch = git https://e.com/two.git main

[three]
buildout = git https://e.com/three.git main buildout.cfg
odoo-addons = mod_three
"""

WORKERS = """\
[ci1]
password = pw1
priority = 10
capability =
    postgresql 15 port=5433
    postgresql 17 port=5434

[ci2]
password = pw2
capability = postgresql 17 port=5432
"""


def make_master(root: Path) -> Path:
    root = root.resolve()
    for name in ("one", "two"):
        folder = root / "buildouts" / name
        folder.mkdir(parents=True)
        (folder / "buildout.cfg").write_text("[buildout]\nextends = base.cfg\nparts =\n")
        (folder / "base.cfg").write_text("[versions]\n")
    (root / "buildouts" / "MANIFEST.cfg").write_text(MANIFEST)
    (root / "workers.cfg").write_text(WORKERS)
    return root


def configure(root: Path, **kwargs: Any) -> dict[str, Any]:
    config_dict: dict[str, Any] = {}
    AnyboxConfigurator(root, **kwargs).configure(config_dict)
    assert config_dict["builders"], "nothing generated"
    return config_dict


def builders(config_dict: dict[str, Any]) -> dict[str, Any]:
    return {b.name: b for b in config_dict["builders"]}


def step_named(factory: Any, name: str) -> Any:
    return next(s for s in factory.steps if s.kwargs.get("name") == name)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_nothing_changed_keeps_every_factory_and_builder_config(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    first, second = configure(root), configure(root)
    before, after = builders(first), builders(second)
    assert (
        sorted(before)
        == sorted(after)
        == [
            "one-pg15",
            "one-pg17",
            "three-pg15",
            "three-pg17",
            "two-pg15",
            "two-pg17",
        ]
    )
    for name in before:
        assert after[name] is before[name], name
    # services are new instances (Buildbot runs the old ones) that compare equal to them
    old_scheds = {s.name: s for s in first["schedulers"]}
    for sched in second["schedulers"]:
        assert sched is not old_scheds[sched.name]
    changes = [s for s in second["schedulers"] if s.name.startswith("changes:")]
    assert changes and all(ComparableMixin.isEquivalent(s, old_scheds[s.name]) for s in changes)


def test_an_edited_section_is_made_again_and_the_others_are_kept(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    before = builders(configure(root))
    edit(root / "buildouts" / "MANIFEST.cfg", "odoo-addons = mod_two", "odoo-addons = mod_new")
    after = builders(configure(root))
    for name in ("one-pg15", "one-pg17", "three-pg15", "three-pg17"):
        assert after[name] is before[name], name
    for name in ("two-pg15", "two-pg17"):
        assert after[name] is not before[name], name
    install = step_named(after["two-pg15"].factory, "install_modules_test")
    assert "mod_new" in repr(install.kwargs["command"])
    old_install = step_named(before["two-pg15"].factory, "install_modules_test")
    assert "mod_two" in repr(old_install.kwargs["command"])
    # one factory per buildout, still shared by its cells
    assert after["two-pg15"].factory is after["two-pg17"].factory


def test_a_line_added_above_does_not_remake_the_sections_below(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    before = builders(configure(root))
    edit(
        root / "buildouts" / "MANIFEST.cfg",
        "odoo-addons = mod_one\n",
        "odoo-addons = mod_one\ndescription = The first\n",
    )
    after = builders(configure(root))
    assert after["one-pg15"] is not before["one-pg15"]
    assert after["one-pg15"].description == "The first"
    assert after["two-pg15"] is before["two-pg15"]  # its line moved, nothing else
    assert after["three-pg17"] is before["three-pg17"]


def test_a_new_extends_in_a_base_file_is_downloaded(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    before = builders(configure(root))
    downloads = [
        s.kwargs["workerdest"]
        for s in before["one-pg15"].factory.steps
        if s.kwargs.get("name", "").startswith("download_buildout")
    ]
    assert downloads == ["buildout.cfg", "base.cfg"]
    # the buildout file itself is untouched; a file it extends extends another one now
    (root / "buildouts" / "one" / "more.cfg").write_text("[versions]\nx = 1\n")
    (root / "buildouts" / "one" / "base.cfg").write_text("[buildout]\nextends = more.cfg\n")
    after = builders(configure(root))
    downloads = [
        s.kwargs["workerdest"]
        for s in after["one-pg15"].factory.steps
        if s.kwargs.get("name", "").startswith("download_buildout")
    ]
    assert downloads == ["buildout.cfg", "base.cfg", "more.cfg"]
    assert after["two-pg15"] is before["two-pg15"]


def test_a_worker_priority_change_remakes_builder_configs_not_factories(tmp_path: Path) -> None:
    root = make_master(tmp_path)
    before = builders(configure(root))
    edit(root / "workers.cfg", "priority = 10", "priority = 1")
    after = builders(configure(root))
    for name in before:
        assert after[name] is not before[name], name
        assert after[name].factory is before[name].factory, name
    assert after["one-pg15"].nextWorker.priorities["ci1"] == 1


def test_a_step_set_registered_again_remakes_the_factories_using_it(tmp_path: Path) -> None:
    mine = DEFAULT_STEP_SETS.copy()

    def register(command: list[str]) -> None:
        @mine.register("post-buildout-steps", "smoke")
        def smoke(ctx: StepContext) -> list[Any]:
            return [ctx.shell("smoke", command)]

    root = make_master(tmp_path)
    edit(root / "buildouts" / "MANIFEST.cfg", "[three]\n", "[three]\npost-buildout-steps = smoke\n")
    register(["bin/smoke", "--fast"])
    before = builders(configure(root, step_sets=mine))
    register(["bin/smoke", "--slow"])  # what a master.cfg executed again does
    after = builders(configure(root, step_sets=mine))
    assert step_named(after["three-pg15"].factory, "smoke").kwargs["command"] == [
        "bin/smoke",
        "--slow",
    ]
    assert after["three-pg15"] is not before["three-pg15"]


def test_masters_do_not_share_their_memo_and_a_dry_run_records_nothing(tmp_path: Path) -> None:
    a, b = make_master(tmp_path / "a"), make_master(tmp_path / "b")
    from_a, from_b = builders(configure(a)), builders(configure(b))
    assert from_a["one-pg15"] is not from_b["one-pg15"]
    assert from_a["one-pg15"].factory is not from_b["one-pg15"].factory

    c = make_master(tmp_path / "c")
    configurator = AnyboxConfigurator(c)
    assert configurator.render_problems(configurator.load()) == []
    first = builders(configure(c))
    assert builders(configure(c))["one-pg15"] is first["one-pg15"]
    memo.forget(c)
    assert builders(configure(c))["one-pg15"] is not first["one-pg15"]


def test_a_refused_reconfig_keeps_the_memo_of_the_last_good_one(tmp_path: Path) -> None:
    from buildbot.config.errors import ConfigErrors
    from buildbot.config.master import MasterConfig

    root = make_master(tmp_path)
    good = builders(configure(root))
    manifest = root / "buildouts" / "MANIFEST.cfg"
    text = manifest.read_text()
    manifest.write_text(text.replace("odoo-addons = mod_two", "odoo-addons = mod_x\ncolour = red"))
    config = {
        "configurators": [AnyboxConfigurator(root)],
        "protocols": {"pb": {"port": "tcp:0"}},
        "buildbotNetUsageData": None,
    }
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(config, "master.cfg")
    assert "[two] colour: unknown option" in info.value.errors[0]
    manifest.write_text(text)
    assert builders(configure(root))["two-pg17"] is good["two-pg17"]


def test_only_the_most_recently_configured_masters_keep_a_memo(tmp_path: Path) -> None:
    folders = [tmp_path / f"m{i}" for i in range(memo.MAX_MASTERS + 1)]
    for folder in folders:
        recorder = memo.memo_for(folder)
        recorder.reuse("factory", "erp", 1, object)
        recorder.commit(folder)
    kept = memo.memo_for(folders[1])
    assert kept.reuse("factory", "erp", 1, object) is not None and kept.hits == 1
    gone = memo.memo_for(folders[0])
    gone.reuse("factory", "erp", 1, object)
    assert (gone.hits, gone.misses) == (0, 1)
    for folder in folders:
        memo.forget(folder)
