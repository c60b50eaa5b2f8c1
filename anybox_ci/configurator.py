"""The Buildbot configurator: manifests and workers in, builders and schedulers out.

master.cfg needs two lines::

    from anybox_ci.configurator import AnyboxConfigurator
    c['configurators'] = [AnyboxConfigurator(basedir)]

What it generates is appended to the user's own configuration, never replacing it.
Any manifest or workers error becomes a Buildbot config error, so a reconfig with a
broken manifest is refused and the running configuration stays.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from buildbot.configurators import ConfiguratorBase
from twisted.python import log

from .capabilities import CapabilityRegistry, CapabilitySpec
from .diagnostics import Diagnostic, Diagnostics
from .model import Buildout, Config, Watch, WorkerDef, load_config, master_paths
from .plan import Cell, Matrix, plan
from .render.stepsets import DEFAULT_STEP_SETS, StepSets


@dataclass(frozen=True)
class Loaded:
    config: Config
    matrix: Matrix
    diagnostics: Diagnostics
    #: auto-watch: buildout -> codebase -> how to pin that discovered source
    pins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def watches(self) -> list[Watch]:
        """Every watched (repository, branch), each once, in manifest order."""
        result: list[Watch] = []
        for buildout in self.config.buildouts:
            result += [w for w in buildout.all_watches if w not in result]
        return result


class RenderError(Exception):
    """The configuration cannot be rendered; ``problems`` says where and why."""

    def __init__(self, problems: list[Diagnostic]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class AnyboxConfigurator(ConfiguratorBase):
    """Generates workers, builders, schedulers and change sources from the manifests.

    :param basedir: the master directory (``basedir`` in master.cfg).
    :param manifests: manifest paths, relative to ``basedir``.
    :param workers: workers files, relative to ``basedir``; default ``workers.cfg``
                    plus ``workers.d/*.cfg``.
    :param capabilities: extra or replacement :class:`CapabilitySpec` by name.
    :param step_sets: a :class:`StepSets` registry; default the standard one.
    :param change_source: ``"auto"``: change hooks when ``hook_users`` exists (plus pollers
        for the buildouts that say ``poll = true``), pollers for everything otherwise;
        ``"poll"`` or ``"hook"`` to force one mode.
    :param poll_interval: seconds between polls.
    :param hook_users: file of ``user:password`` lines allowed to post changes, relative
        to ``basedir``; ``update-mirrors`` and the push hooks use one of them.
    :param url_rewrites: file of ``PREFIX -> REPLACEMENT`` lines, relative to ``basedir``:
        workers fetch buildouts from the rewritten URL (a mirror), while changes keep
        naming the original repository.
    :param forge_hooks: extra Buildbot change-hook dialects, e.g.
        ``{"github": {"secret": util.Secret("github-hook")}}`` (Gitea speaks github's).
    """

    def __init__(
        self,
        basedir: str | Path = ".",
        manifests: Iterable[str | Path] | None = None,
        workers: Iterable[str | Path] | None = None,
        capabilities: Mapping[str, CapabilitySpec] | None = None,
        step_sets: StepSets | None = None,
        change_source: str = "auto",
        poll_interval: int = 60,
        hook_users: str | Path = "secrets/change-hook-users",
        forge_hooks: Mapping[str, dict[str, Any]] | None = None,
        url_rewrites: str | Path = "url-rewrites.cfg",
    ):
        if change_source not in ("auto", "poll", "hook"):
            raise ValueError(
                f"change_source must be 'auto', 'poll' or 'hook', not {change_source!r}"
            )
        self.basedir = Path(basedir).resolve()
        self.manifests = list(manifests) if manifests is not None else None
        self.workers = list(workers) if workers is not None else None
        self.registry = CapabilityRegistry().extended(capabilities or {})
        self.step_sets = step_sets or DEFAULT_STEP_SETS
        self.change_source = change_source
        self.poll_interval = poll_interval
        self.hook_users = self.basedir / hook_users
        self.forge_hooks = dict(forge_hooks or {})
        self.url_rewrites = self.basedir / url_rewrites
        self.loaded: Loaded | None = None
        super().__init__()

    # -------------------------------------------------------------- pure part

    def load(self) -> Loaded:
        """Read and plan; never raises on bad input (see ``diagnostics``)."""
        diags = Diagnostics()
        manifest_paths, worker_paths = master_paths(self.basedir, self.manifests, self.workers)
        config = load_config(manifest_paths, worker_paths, diags, self.step_sets.names())
        config, pins = self._with_discovered(config, diags)
        matrix = plan(config.buildouts, config.workers, self.registry)
        return Loaded(config, matrix, diags, pins)

    def _with_discovered(
        self, config: Config, diags: Diagnostics
    ) -> tuple[Config, dict[str, dict[str, Any]]]:
        """Add the sources that builds discovered to auto-watch buildouts."""
        from .render.autowatch import pins_by_codebase, read_discovered, watch_file

        buildouts, pins = [], {}
        for buildout in config.buildouts:
            if buildout.opt("auto-watch"):
                found = read_discovered(
                    watch_file(self.basedir, buildout.name), diags, buildout.name
                )
                extra = tuple(w for w, _ in found if w not in buildout.all_watches)
                buildout = replace(buildout, watches=buildout.watches + extra)
                pins[buildout.name] = pins_by_codebase(found)
            buildouts.append(buildout)
        return replace(config, buildouts=tuple(buildouts)), pins

    @property
    def hook_mode(self) -> bool:
        if self.change_source == "auto":
            return self.hook_users.exists()
        return self.change_source == "hook"

    # -------------------------------------------------------------- Buildbot part

    def configure(self, config_dict: dict[str, Any]) -> None:
        # thousands of short-lived objects: the cyclic GC only slows this down
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._configure(config_dict)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _configure(self, config_dict: dict[str, Any]) -> None:
        from buildbot.config.errors import error

        loaded = self.load()
        for diag in loaded.diagnostics.warnings:
            log.msg(f"anybox-ci: {diag}")
        for unmatched in loaded.matrix.unmatched:
            cell = f" {unmatched.cell}" if unmatched.cell else ""
            log.msg(f"anybox-ci: warning: [{unmatched.buildout}]{cell}: {unmatched.reason}")
        try:
            if loaded.diagnostics.errors:
                raise RenderError(loaded.diagnostics.errors)
            generated = self.render(loaded)
        except RenderError as exc:
            for diag in exc.problems:
                error(str(diag))
            return
        self.loaded = loaded
        self._add_matrix_page(config_dict, loaded.matrix)
        self._add_change_hooks(config_dict, loaded)
        for key, values in generated.items():
            if key == "codebaseGenerator":
                values.fallback = config_dict.get(key)  # the user's own, for other changes
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

    def _add_change_hooks(self, config_dict: dict[str, Any], loaded: Loaded) -> None:
        """The authenticated ``anybox`` change hook, and the repositories it accepts."""
        from .www.change_hook import KNOWN_REPOSITORIES

        known: dict[str, set[str]] = {}
        for w in loaded.watches:
            known.setdefault(w.url, set()).add(w.branch)
        KNOWN_REPOSITORIES.set(known)
        if not (self.hook_mode or self.forge_hooks) or "www" not in config_dict:
            return
        www = config_dict["www"]
        dialects = www.setdefault("change_hook_dialects", {})
        if self.hook_mode:
            dialects.setdefault("anybox", {})
        for name, options in self.forge_hooks.items():
            dialects.setdefault(name, options)
        if self.hook_users.exists() and "change_hook_auth" not in www:
            from twisted.cred import strcred

            www["change_hook_auth"] = [strcred.makeChecker(f"file:{self.hook_users}")]

    def render_problems(self, loaded: Loaded) -> list[Diagnostic]:
        """What rendering would refuse (step sets missing their options, bad URL
        rewrites), found by a dry render that writes nothing."""
        try:
            self.render(loaded, dry_run=True)
        except RenderError as exc:
            return exc.problems
        return []

    def fetch_url(self) -> Any:
        """URL rewriting for fetches, from ``url_rewrites`` (ValueError when malformed)."""
        from .mirrors import parse_rewrite_rules, rewrite_url

        if not self.url_rewrites.exists():
            return str
        rules = parse_rewrite_rules(self.url_rewrites.read_text(), str(self.url_rewrites))
        return lambda url: rewrite_url(url, rules)

    def render(self, loaded: Loaded, dry_run: bool = False) -> dict[str, Any]:
        """Buildbot objects for a loaded configuration; raises :class:`RenderError`.

        ``dry_run`` writes nothing to the master directory (for ``anybox-ci check``)."""
        from buildbot.plugins import util

        from .render.autowatch import watch_file
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
        from .render.utils_bundle import BUNDLE_NAME, write_bundle
        from .reporters import status_reporters

        config, matrix = loaded.config, loaded.matrix
        bundle = Path(BUNDLE_NAME) if dry_run else write_bundle(self.basedir / "anybox-ci")
        testing_db = util.Property("testing_db", default="")
        env = CellEnv(self.registry, {"ANYBOX_CI_DB": testing_db, "PGDATABASE": testing_db})
        by_buildout: dict[str, list[Cell]] = {}
        for cell in matrix.cells:
            by_buildout.setdefault(cell.buildout, []).append(cell)
        priorities = {w.name: w.priority for w in config.workers}
        next_worker = priority_next_worker(priorities)
        problems: list[Diagnostic] = []
        try:
            fetch_url = self.fetch_url()
        except ValueError as exc:
            problems.append(Diagnostic(str(self.url_rewrites), 0, "", "", str(exc)))
            fetch_url = str

        builders, scheds, projects, services = [], [], [], []
        all_watches = loaded.watches
        polled: list[Watch] = []
        for buildout in config.buildouts:
            cells = by_buildout.get(buildout.name, [])
            if not cells and not dry_run:
                continue
            watch_target = None
            if buildout.opt("auto-watch"):
                watch_target = watch_file(self.basedir, buildout.name)
                if not dry_run:
                    watch_target.parent.mkdir(parents=True, exist_ok=True)
            try:
                factory = make_factory(
                    buildout,
                    self.step_sets,
                    env,
                    bundle,
                    watch_target,
                    loaded.pins.get(buildout.name),
                    fetch_url,
                )
            except ValueError as exc:
                where = (buildout.manifest, buildout.line, buildout.name, "")
                problems.append(Diagnostic(*where, str(exc)))
                continue
            if not cells:
                continue
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
            if buildout.opt("commit-status"):
                forge, api_url, secret = buildout.opt("commit-status")
                services += status_reporters(
                    forge, api_url, util.Interpolate(f"%(secret:{secret})s"), names, buildout.name
                )
            if not self.hook_mode or buildout.opt("poll"):
                polled += [w for w in buildout.all_watches if w not in polled]
        if problems:
            raise RenderError(problems)
        generated: dict[str, Any] = {
            "workers": [self._worker(w) for w in config.workers],
            "builders": builders,
            "projects": projects,
            "schedulers": scheds,
            "change_source": [],
            "services": services,
        }
        if builders:
            scheds.append(force_scheduler([b.name for b in builders], all_watches))
            generated["codebaseGenerator"] = CodebaseGenerator(all_watches)
        generated["change_source"] = pollers(polled, self.poll_interval)
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
            tags=list(dict.fromkeys(tags)) or None,
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
