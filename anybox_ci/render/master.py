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

from ..core import schema
from ..core.capabilities import CapabilityRegistry
from ..core.diagnostics import Diagnostic, Diagnostics
from ..core.discovered import watch_file
from ..core.loader import Loaded, read_rewrites
from ..core.model import Buildout, Watch, WorkerDef
from ..core.plan import Cell
from ..core.rewrites import rewrite_url
from .buildsteps import (
    CELL_REQUIRES_PROP,
    CELL_VERSIONS_PROP,
    WORKER_CAPS_PROP,
    CellEnv,
    priority_next_worker,
    uses_pgpass,
)
from .changes import CodebaseGenerator, buildout_schedulers, force_scheduler, pollers
from .factory import make_factory
from .reporters import status_reporters
from .secrets import WorkerPassword
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


def fetch_url(url_rewrites: Path, diags: Diagnostics) -> Callable[[str], str]:
    """URL rewriting for fetches, from the rules file; its problems go to ``diags``."""
    rules = read_rewrites(url_rewrites, diags)
    if not rules:
        return str
    return lambda url: rewrite_url(url, rules)


def render(loaded: Loaded, site: Site, dry_run: bool = False) -> dict[str, Any]:
    """Buildbot objects for a loaded configuration; raises :class:`RenderError`."""
    config, matrix = loaded.config, loaded.matrix
    bundle = Path(BUNDLE_NAME) if dry_run else write_bundle(site.basedir / "anybox-ci")
    testing_db = util.Property("testing_db", default="")
    env = CellEnv(site.registry, {"ANYBOX_CI_DB": testing_db, "PGDATABASE": testing_db})
    by_buildout: dict[str, list[Cell]] = {}
    for cell in matrix.cells:
        by_buildout.setdefault(cell.buildout, []).append(cell)
    next_worker = priority_next_worker({w.name: w.priority for w in config.workers})
    rewrite_problems = Diagnostics()
    fetch = fetch_url(site.url_rewrites, rewrite_problems)
    pgpass = uses_pgpass(site.registry, [o for w in config.workers for o in w.offers])
    problems: list[Diagnostic] = list(rewrite_problems.items)

    builders, scheds, projects, services = [], [], [], []
    polled: dict[Watch, None] = {}  # ordered, each once
    for buildout in config.buildouts:
        cells = by_buildout.get(buildout.name, [])
        if not cells and not dry_run:
            continue
        watch_target = None
        if buildout.get(schema.AUTO_WATCH):
            watch_target = watch_file(site.basedir, buildout.name)
            if not dry_run:
                watch_target.parent.mkdir(parents=True, exist_ok=True)
        try:
            factory = make_factory(
                buildout,
                site.step_sets,
                env,
                bundle,
                watch_target,
                loaded.pins.get(buildout.name),
                fetch,
                pgpass,
            )
        except ValueError as exc:
            problems.append(
                Diagnostic(buildout.manifest, buildout.line, buildout.name, "", str(exc))
            )
            continue
        if not cells:
            continue
        projects.append(
            util.Project(name=buildout.name, description=buildout.get(schema.DESCRIPTION) or None)
        )
        builders += [
            _builder(site.registry, buildout, cell, factory, next_worker) for cell in cells
        ]
        names = [c.name for c in cells]
        scheds += buildout_schedulers(buildout, names)
        commit_status = buildout.get(schema.COMMIT_STATUS)
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
        scheds.append(force_scheduler([b.name for b in builders], all_watches))
        generated["codebaseGenerator"] = CodebaseGenerator(all_watches)
    return generated


def _builder(
    registry: CapabilityRegistry, buildout: Buildout, cell: Cell, factory: Any, next_worker: Any
) -> Any:
    props = dict(cell.properties)
    props[CELL_VERSIONS_PROP] = [[cap, str(v)] for cap, v in cell.versions]
    props[CELL_REQUIRES_PROP] = [[r.capability, str(r.filter)] for r in buildout.build_requires]
    tags = list(buildout.get(schema.BUILD_CATEGORY))
    tags += [f"{registry.get(cap).abbrev}{v}" for cap, v in cell.versions]
    return util.BuilderConfig(
        name=cell.name,
        workernames=list(cell.workers),
        factory=factory,
        properties=props,
        tags=list(dict.fromkeys(tags)) or None,
        project=buildout.name,
        nextWorker=next_worker,
        description=buildout.get(schema.DESCRIPTION) or None,
    )


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
