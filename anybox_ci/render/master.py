"""The render loop: a loaded configuration in, the Buildbot objects of a master out.

Everything it makes is appended to the user's own master.cfg by the configurator. A
problem that only shows while rendering (a step set of master.cfg that refuses its
buildout, bad URL rewrite rules) becomes a :class:`RenderError`; ``dry_run`` finds them
without writing anything to the master directory. The built-in step sets declare what
they need in the core catalogue, so the loader reports that before rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildbot.plugins import util
from buildbot.plugins import worker as bbworker
from twisted.python import log

from ..core import schema
from ..core.capabilities import CapabilityRegistry
from ..core.diagnostics import Diagnostic, Diagnostics
from ..core.discovered import watch_file
from ..core.loader import Loaded, read_rewrites
from ..core.model import Buildout, Watch, WorkerDef
from ..core.plan import Cell
from ..core.rewrites import RewriteRule, rewrite_url
from ..core.selection import cell_tags
from .buildsteps import (
    CELL_REQUIRES_PROP,
    CELL_VERSIONS_PROP,
    WORKER_CAPS_PROP,
    CellEnv,
    priority_next_worker,
    uses_pgpass,
)
from .cells import CellTable, CellWorkers, VirtualCell, real_builder_name, virtual_cell
from .changes import CodebaseGenerator, buildout_schedulers, force_schedulers, pollers
from .factory import make_factory
from .memo import RenderMemo, Same, file_signature, input_key, memo_for
from .reporters import status_reporters
from .secrets import WorkerPassword
from .stacks import stack_objects
from .steps_release import release_schedulers
from .stepset_registry import StepSets
from .utils_bundle import BUNDLE_NAME, write_bundle


class RenderError(Exception):
    """The configuration cannot be rendered; ``problems`` says where and why."""

    def __init__(self, problems: list[Diagnostic]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Site:
    """What the master directory and master.cfg decide, beyond the manifests."""

    basedir: Path
    registry: CapabilityRegistry
    step_sets: StepSets
    hook_mode: bool
    poll_interval: int
    url_rewrites: Path
    #: one real builder per buildout and a virtual builder per cell (``render.cells``)
    virtual_builders: bool = False


@dataclass(frozen=True)
class RewrittenUrl:
    """The URL workers fetch: the manifest's, rewritten by the rules (equal when they are)."""

    rules: tuple[RewriteRule, ...]

    def __call__(self, url: str) -> str:
        return rewrite_url(url, self.rules)


def fetch_url(url_rewrites: Path, diags: Diagnostics) -> Callable[[str], str]:
    """URL rewriting for fetches, from the rules file; its problems go to ``diags``."""
    rules = read_rewrites(url_rewrites, diags)
    if not rules:
        return str
    return RewrittenUrl(tuple(rules))


def render(loaded: Loaded, site: Site, dry_run: bool = False) -> dict[str, Any]:
    """Buildbot objects for a loaded configuration; raises :class:`RenderError`."""
    config, matrix = loaded.config, loaded.matrix
    bundle = Path(BUNDLE_NAME) if dry_run else write_bundle(site.basedir / "anybox-ci")
    # what a reconfig can keep of the previous configuration (not a dry run's)
    memo = memo_for(site.basedir) if not dry_run else RenderMemo({})
    testing_db = util.Property("testing_db", default="")
    env_vars = {"ANYBOX_CI_DB": testing_db, "PGDATABASE": testing_db}
    env = memo.reuse("env", "", (site.registry, env_vars), CellEnv, site.registry, env_vars)
    by_buildout: dict[str, list[Cell]] = {}
    for cell in matrix.cells:
        by_buildout.setdefault(cell.buildout, []).append(cell)
    priorities = {w.name: w.priority for w in config.workers}
    next_worker = memo.reuse("next_worker", "", priorities, priority_next_worker, priorities)
    rewrite_problems = Diagnostics()
    fetch = fetch_url(site.url_rewrites, rewrite_problems)
    pgpass = uses_pgpass(site.registry, [o for w in config.workers for o in w.offers])
    problems: list[Diagnostic] = list(rewrite_problems.items)

    builders, scheds, projects, services = [], [], [], []
    #: per buildout, the builders its schedulers name: its cells, or its real builder
    scheduled: dict[str, list[str]] = {}
    virtual: dict[str, list[VirtualCell]] = {}
    polled: dict[Watch, None] = {}  # ordered, each once
    by_name = {b.name: b for b in config.buildouts}
    for buildout in config.buildouts:
        cells = by_buildout.get(buildout.name, [])
        if not cells and not dry_run:
            continue
        watch_target = None
        if buildout.get(schema.AUTO_WATCH):
            watch_target = watch_file(site.basedir, buildout.name)
            if not dry_run:
                watch_target.parent.mkdir(parents=True, exist_ok=True)
        # every input of the factory, so that an equal set reuses the previous one
        factory_args: dict[str, Any] = dict(
            buildout=buildout,
            step_sets=site.step_sets,
            env=env,
            utils_bundle=bundle,
            watch_target=watch_target,
            pins=loaded.pins.get(buildout.name),
            fetch_url=fetch,
            pgpass=pgpass,
            release_source=by_name.get(buildout.get(schema.ARCHIVE_FROM)),
        )
        key = input_key(factory_args)
        if buildout.source.path is not None:  # standalone: the files it extends too
            key += (file_signature(buildout.source.path),)
        try:
            factory = memo.reuse("factory", buildout.name, key, make_factory, **factory_args)
        except ValueError as exc:
            problems.append(
                Diagnostic(buildout.manifest, buildout.line, buildout.name, "", str(exc))
            )
            continue
        if not cells:
            continue
        description = buildout.get(schema.DESCRIPTION) or None
        commit_status = buildout.get(schema.COMMIT_STATUS)
        # forge statuses follow each cell's own build requests: those keep real builders
        is_virtual = site.virtual_builders and not commit_status
        # Buildbot rewrites every project of c['projects'] at each reconfig, a commit each,
        # and never deletes one. A builder's project must be listed; virtual cells name
        # theirs in their builds, so a reconfig lists only their new and changed ones.
        changed = memo.changed("project", buildout.name, description)
        if changed or not is_virtual:
            projects.append(util.Project(name=buildout.name, description=description))
        if is_virtual:
            real = real_builder_name(buildout.name)
            builders.append(
                memo.reuse(
                    "builder",
                    real,
                    (tuple(cells), Same(factory), next_worker, site.registry),
                    _real_builder,
                    buildout,
                    cells,
                    factory,
                    next_worker,
                )
            )
            virtual[real] = memo.reuse(
                "cells",
                buildout.name,
                input_key({"section": buildout, "cells": tuple(cells), "registry": site.registry}),
                _virtual_cells,
                site.registry,
                buildout,
                cells,
            )
            names = [real]
        else:
            builders += [
                memo.reuse(
                    "builder",
                    cell.name,
                    (cell, Same(factory), next_worker, site.registry),
                    _builder,
                    site.registry,
                    buildout,
                    cell,
                    factory,
                    next_worker,
                )
                for cell in cells
            ]
            names = [c.name for c in cells]
        scheduled[buildout.name] = names
        scheds += buildout_schedulers(buildout, names)
        if commit_status:
            forge, api_url, secret = commit_status
            services += status_reporters(
                forge, api_url, util.Interpolate(f"%(secret:{secret})s"), names, buildout.name
            )
        if not site.hook_mode or buildout.get(schema.POLL):
            polled.update(dict.fromkeys(buildout.all_watches))
    # sections without a buildout: their watch lines are a change source only
    for section in config.watch_sections:
        if not site.hook_mode or section.poll:
            polled.update(dict.fromkeys(section.watches))
    if problems:
        raise RenderError(problems)
    scheds += release_schedulers(config.buildouts, scheduled)
    generated: dict[str, Any] = {
        "workers": [_worker(w) for w in config.workers],
        "builders": builders,
        "projects": projects,
        "schedulers": scheds,
        "change_source": pollers(list(polled), site.poll_interval),
        "services": services,
    }
    if builders:
        all_watches = loaded.watches
        scheds += force_schedulers(
            [b for b in config.buildouts if b.name in scheduled],
            matrix.cells,
            site.registry,
            scheduled,
        )
        generated["codebaseGenerator"] = CodebaseGenerator(all_watches)
    if virtual:
        generated["services"].append(CellTable(cells=virtual))
    stack_objects(loaded, by_buildout, scheduled, str(bundle)).add_to(generated)  # [domain:NAME]
    if not dry_run:
        if memo.hits:  # a reconfig: say how much of the previous configuration it kept
            log.msg(f"anybox-ci: {memo.summary('factory', 'builder')} from the last configuration")
        memo.commit(site.basedir)
    return generated


def _cell_properties(buildout: Buildout, cell: Cell) -> dict[str, Any]:
    props = dict(cell.properties)
    props[CELL_VERSIONS_PROP] = [[cap, str(v)] for cap, v in cell.versions]
    props[CELL_REQUIRES_PROP] = [[r.capability, str(r.filter)] for r in buildout.build_requires]
    return props


def _builder(
    registry: CapabilityRegistry, buildout: Buildout, cell: Cell, factory: Any, next_worker: Any
) -> Any:
    tags = cell_tags(buildout.get(schema.BUILD_CATEGORY), cell.versions, registry)
    return util.BuilderConfig(
        name=cell.name,
        workernames=list(cell.workers),
        factory=factory,
        properties=_cell_properties(buildout, cell),
        tags=list(tags) or None,
        project=buildout.name,
        nextWorker=next_worker,
        description=buildout.get(schema.DESCRIPTION) or None,
    )


def _real_builder(buildout: Buildout, cells: list[Cell], factory: Any, next_worker: Any) -> Any:
    """The one real builder of a buildout's virtual cells: every cell's workers, each
    build on its own cell's (``CellWorkers``)."""
    workers = dict.fromkeys(w for c in cells for w in c.workers)
    return util.BuilderConfig(
        name=real_builder_name(buildout.name),
        workernames=list(workers),
        factory=factory,
        tags=["cells"],
        project=None,  # the project shows the cells, this builder builds nothing of its own
        nextWorker=next_worker,
        canStartBuild=CellWorkers(),
        description=f"the cells of {buildout.name}: each build shows as its cell",
    )


def _virtual_cells(
    registry: CapabilityRegistry, buildout: Buildout, cells: list[Cell]
) -> list[VirtualCell]:
    description = buildout.get(schema.DESCRIPTION) or None
    return [
        virtual_cell(
            cell.name,
            buildout.name,
            _cell_properties(buildout, cell),
            cell.workers,
            list(cell_tags(buildout.get(schema.BUILD_CATEGORY), cell.versions, registry)),
            description,
        )
        for cell in cells
    ]


def _worker(worker: WorkerDef) -> Any:
    password: Any = (
        WorkerPassword(worker.name, worker.password.secret)
        if worker.password.secret
        else worker.password.literal
    )
    properties: dict[str, Any] = dict(worker.properties)
    properties[WORKER_CAPS_PROP] = [
        {"name": o.name, "version": str(o.version) if o.version else "", "options": dict(o.options)}
        for o in worker.offers
    ]
    properties["db_prefix"] = worker.db_prefix
    properties["priority"] = worker.priority
    kwargs: dict[str, Any] = {"properties": properties}
    if worker.max_builds is not None:
        kwargs["max_builds"] = worker.max_builds
    if worker.notify_on_missing:
        kwargs["notify_on_missing"] = list(worker.notify_on_missing)
    return bbworker.Worker(worker.name, password, **kwargs)
