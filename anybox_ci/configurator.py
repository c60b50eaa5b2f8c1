"""The Buildbot configurator: manifests and workers in, builders and schedulers out.

master.cfg needs two lines::

    from anybox_ci.configurator import AnyboxConfigurator
    c['configurators'] = [AnyboxConfigurator(basedir)]

What it generates is appended to the user's own configuration, never replacing it.
Any manifest or workers error becomes a Buildbot config error, so a reconfig with a
broken manifest is refused and the running configuration stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildbot.configurators import ConfiguratorBase
from twisted.python import log

from .capabilities import CapabilityRegistry, CapabilitySpec
from .diagnostics import Diagnostics
from .model import Buildout, Config, WorkerDef, load_config, master_paths
from .plan import Cell, Matrix, plan
from .render.stepsets import DEFAULT_STEP_SETS, StepSets


@dataclass(frozen=True)
class Loaded:
    config: Config
    matrix: Matrix
    diagnostics: Diagnostics


class AnyboxConfigurator(ConfiguratorBase):
    """Generates workers, builders, schedulers and change sources from the manifests.

    :param basedir: the master directory (``basedir`` in master.cfg).
    :param manifests: manifest paths, relative to ``basedir``.
    :param workers: workers files, relative to ``basedir``; default ``workers.cfg``
                    plus ``workers.d/*.cfg``.
    :param capabilities: extra or replacement :class:`CapabilitySpec` by name.
    :param step_sets: a :class:`StepSets` registry; default the standard one.
    :param change_source: ``"poll"`` for pollers, ``"hook"`` for mirrors and hooks only.
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        basedir: str | Path = ".",
        manifests: Iterable[str | Path] | None = None,
        workers: Iterable[str | Path] | None = None,
        capabilities: Mapping[str, CapabilitySpec] | None = None,
        step_sets: StepSets | None = None,
        change_source: str = "poll",
        poll_interval: int = 60,
    ):
        if change_source not in ("poll", "hook"):
            raise ValueError(f"change_source must be 'poll' or 'hook', not {change_source!r}")
        self.basedir = Path(basedir).resolve()
        self.manifests = list(manifests) if manifests is not None else None
        self.workers = list(workers) if workers is not None else None
        self.registry = CapabilityRegistry().extended(capabilities or {})
        self.step_sets = step_sets or DEFAULT_STEP_SETS
        self.change_source = change_source
        self.poll_interval = poll_interval
        self.loaded: Loaded | None = None
        super().__init__()

    # -------------------------------------------------------------- pure part

    def load(self) -> Loaded:
        """Read and plan; never raises on bad input (see ``diagnostics``)."""
        diags = Diagnostics()
        manifest_paths, worker_paths = master_paths(self.basedir, self.manifests, self.workers)
        config = load_config(manifest_paths, worker_paths, diags, self.step_sets.names())
        matrix = plan(config.buildouts, config.workers, self.registry)
        return Loaded(config, matrix, diags)

    # -------------------------------------------------------------- Buildbot part

    def configure(self, config_dict: dict[str, Any]) -> None:
        from buildbot.config.errors import error

        loaded = self.load()
        for diag in loaded.diagnostics.warnings:
            log.msg(f"anybox-ci: {diag}")
        for unmatched in loaded.matrix.unmatched:
            cell = f" {unmatched.cell}" if unmatched.cell else ""
            log.msg(f"anybox-ci: warning: [{unmatched.buildout}]{cell}: {unmatched.reason}")
        if loaded.diagnostics.errors:
            for diag in loaded.diagnostics.errors:
                error(str(diag))
            return
        try:
            generated = self.render(loaded)
        except ValueError as exc:
            error(f"anybox-ci: {exc}")
            return
        self.loaded = loaded
        self._add_matrix_page(config_dict, loaded.matrix)
        for key, values in generated.items():
            if key == "codebaseGenerator":
                config_dict[key] = values
            else:
                config_dict.setdefault(key, []).extend(values)

    @staticmethod
    def _add_matrix_page(config_dict: dict[str, Any], matrix: Matrix) -> None:
        """The matrix page joins the web UI when the master serves one."""
        import importlib.util

        www = config_dict.get("www")
        if not www or importlib.util.find_spec("buildbot_wsgi_dashboards") is None:
            return
        from .www.matrix_page import dashboard

        plugins = www.setdefault("plugins", {})
        plugins.setdefault("wsgi_dashboards", []).append(dashboard(matrix))

    def render(self, loaded: Loaded) -> dict[str, Any]:
        from buildbot.plugins import util

        from .render.buildsteps import (
            CELL_REQUIRES_PROP,
            CELL_VERSIONS_PROP,
            CellEnv,
            priority_next_worker,
        )
        from .render.changes import (
            CodebaseGenerator,
            buildout_schedulers,
            force_scheduler,
            pollers,
        )
        from .render.factory import make_factory
        from .render.utils_bundle import write_bundle

        config, matrix = loaded.config, loaded.matrix
        bundle = write_bundle(self.basedir / "anybox-ci")
        testing_db = util.Property("testing_db", default="")
        env = CellEnv(self.registry, {"ANYBOX_CI_DB": testing_db, "PGDATABASE": testing_db})
        by_buildout: dict[str, list[Cell]] = {}
        for cell in matrix.cells:
            by_buildout.setdefault(cell.buildout, []).append(cell)
        priorities = {w.name: w.priority for w in config.workers}
        next_worker = priority_next_worker(priorities)

        builders, scheds, projects = [], [], []
        all_watches = []
        for buildout in config.buildouts:
            cells = by_buildout.get(buildout.name, [])
            if not cells:
                continue
            try:
                factory = make_factory(buildout, self.step_sets, env, bundle)
            except ValueError as exc:
                raise ValueError(
                    f"{buildout.manifest}:{buildout.line}: [{buildout.name}] {exc}"
                ) from None
            projects.append(
                util.Project(name=buildout.name, description=buildout.opt("description") or None)
            )
            for cell in cells:
                builders.append(
                    self._builder(
                        buildout, cell, factory, next_worker, CELL_VERSIONS_PROP, CELL_REQUIRES_PROP
                    )
                )
            names = [c.name for c in cells]
            scheds += buildout_schedulers(buildout, names)
            for w in buildout.all_watches:
                if w not in all_watches:
                    all_watches.append(w)
        generated: dict[str, Any] = {
            "workers": [self._worker(w) for w in config.workers],
            "builders": builders,
            "projects": projects,
            "schedulers": scheds,
            "change_source": [],
        }
        if builders:
            scheds.append(force_scheduler([b.name for b in builders], all_watches))
            generated["codebaseGenerator"] = CodebaseGenerator(all_watches)
        if self.change_source == "poll":
            generated["change_source"] = pollers(all_watches, self.poll_interval)
        return generated

    def _builder(
        self,
        buildout: Buildout,
        cell: Cell,
        factory: Any,
        next_worker: Any,
        versions_prop: str,
        requires_prop: str,
    ) -> Any:
        from buildbot.plugins import util

        props = dict(cell.properties)
        props[versions_prop] = [[cap, str(v)] for cap, v in cell.versions]
        props[requires_prop] = [[r.capability, str(r.filter)] for r in buildout.build_requires]
        tags = list(buildout.opt("build-category"))
        tags += [f"{self.registry.get(cap).abbrev}{v}" for cap, v in cell.versions]
        return util.BuilderConfig(
            name=cell.name,
            workernames=list(cell.workers),
            factory=factory,
            properties=props,
            tags=tags or None,
            project=buildout.name,
            nextWorker=next_worker,
            description=buildout.opt("description") or None,
        )

    def _worker(self, worker: WorkerDef) -> Any:
        from buildbot.plugins import util
        from buildbot.plugins import worker as bbworker

        from .render.buildsteps import WORKER_CAPS_PROP

        password: Any = (
            util.Secret(worker.password.secret)
            if worker.password.secret
            else worker.password.literal
        )
        properties: dict[str, Any] = dict(worker.properties)
        properties[WORKER_CAPS_PROP] = [
            {
                "name": o.name,
                "version": str(o.version) if o.version else "",
                "options": dict(o.options),
            }
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
