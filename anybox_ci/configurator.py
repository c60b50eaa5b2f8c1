"""The Buildbot configurator: manifests and workers in, builders and schedulers out.

master.cfg needs two lines::

    from anybox_ci.configurator import AnyboxConfigurator
    c['configurators'] = [AnyboxConfigurator(basedir)]

What it generates is appended to the user's own configuration, never replacing it.

Errors: a master that starts with a broken buildout section (a missing file, an unknown
step set) starts with every other buildout, and logs the broken one with its
``FILE:LINE`` reason (``anybox-ci matrix`` and the matrix page show it too). Any other
error (a workers file, an unreadable manifest, URL rewrite rules), and any error at a
reconfig of a running master, becomes a Buildbot config error: the master does not start,
or keeps the configuration it runs. This module is glue: reading and planning live in
``core``, Buildbot objects in ``render``.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from buildbot.configurators import ConfiguratorBase
from twisted.python import log

from .core.capabilities import CapabilityRegistry, CapabilitySpec
from .core.diagnostics import Diagnostic
from .core.loader import Loaded, leave_out_broken, load
from .render.master import RenderError, Site, render
from .render.stacks import promote_builder
from .render.stepsets import DEFAULT_STEP_SETS, StepSets

__all__ = ["AnyboxConfigurator", "Loaded", "RenderError"]

BROKEN_SECTION_POLICIES = ("auto", "leave-out", "refuse")

#: master folders this process has configured once: a later configuration is a reconfig
_CONFIGURED: set[Path] = set()


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
    :param broken_sections: what a configuration does with a buildout section that has an
        error. ``"auto"``: a master starting leaves it out and runs the others; a reconfig
        of a running master (or ``buildbot checkconfig``) refuses the whole configuration,
        so the running one stays. ``"leave-out"`` or ``"refuse"`` force one of them.
    :param role: with several masters on one database (``c['multiMaster'] = True`` and a
        WAMP ``c['mq']``), what this master does: ``"ui"`` serves the web UI, change hooks
        and force forms; ``"engine"`` has no web server and runs workers, builders, change
        sources and change-driven schedulers; ``"all"`` (default) does both. See
        :mod:`anybox_ci.render.multimaster` and docs/production.md.
    :param log_horizon_days: delete build logs older than this many days, every night at
        03:00, with Buildbot's ``JanitorConfigurator``; None (default) keeps them.
    :param virtual_builders: one real builder per buildout and one Buildbot virtual builder
        per cell, for masters with thousands of cells: they start and reconfigure faster,
        and each cell keeps its own row and history in the web UI (once it has built).
        The cells of one buildout then run one at a time on a worker. A buildout with
        ``commit-status`` keeps a builder per cell. See :mod:`anybox_ci.render.cells`.
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
        broken_sections: str = "auto",
        role: str = "all",
        log_horizon_days: int | None = None,
        virtual_builders: bool = False,
    ):
        if change_source not in ("auto", "poll", "hook"):
            raise ValueError(
                f"change_source must be 'auto', 'poll' or 'hook', not {change_source!r}"
            )
        if broken_sections not in BROKEN_SECTION_POLICIES:
            raise ValueError(
                f"broken_sections must be one of {', '.join(map(repr, BROKEN_SECTION_POLICIES))},"
                f" not {broken_sections!r}"
            )
        self.broken_sections = broken_sections
        self.role = role
        self.log_horizon_days = log_horizon_days
        self.virtual_builders = virtual_builders
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
        return load(
            self.basedir, self.registry, self.step_sets.catalogue(), self.manifests, self.workers
        )

    @property
    def hook_mode(self) -> bool:
        if self.change_source == "auto":
            return self.hook_users.exists()
        return self.change_source == "hook"

    @property
    def site(self) -> Site:
        return Site(
            self.basedir,
            self.registry,
            self.step_sets,
            self.hook_mode,
            self.poll_interval,
            self.url_rewrites,
            self.virtual_builders,
        )

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

    @property
    def leaves_out_broken_sections(self) -> bool:
        """Whether this configuration leaves broken buildout sections out (see
        ``broken_sections``): in ``"auto"``, only the first configuration of a running
        master, that is its start (a reconfig comes later in the same process).
        ``buildbot checkconfig`` runs its check in a reactor too, and stays strict."""
        if self.broken_sections != "auto":
            return self.broken_sections == "leave-out"
        from twisted.internet import reactor

        checking = len(sys.argv) > 1 and sys.argv[1] == "checkconfig"
        running = bool(getattr(reactor, "running", False))
        return running and not checking and self.basedir not in _CONFIGURED

    def hook_users_problem(self, config_dict: dict[str, Any]) -> str | None:
        """Why change hooks cannot be served safely, or None: ``change_source="hook"``
        with no users file (and no ``change_hook_auth`` of master.cfg's own) would accept
        anonymous changes."""
        www = config_dict.get("www") or {}
        if self.change_source != "hook" or self.hook_users.exists():
            return None
        if "change_hook_auth" in www:
            return None
        return (
            f"{self.hook_users}: change_source='hook' needs this file of 'user:password' "
            "lines (who may post changes), and it does not exist; create it (anybox-ci init "
            "does), or use change_source='auto' or 'poll'"
        )

    def _configure(self, config_dict: dict[str, Any]) -> None:
        from buildbot.config.errors import error

        unsafe = self.hook_users_problem(config_dict) or self.master_problem()
        if unsafe:
            error(unsafe)
            return
        loaded = self.load()
        for diag in loaded.diagnostics.warnings:
            log.msg(f"anybox-ci: {diag}")
        for unmatched in loaded.matrix.unmatched:
            cell = f" {unmatched.cell}" if unmatched.cell else ""
            log.msg(f"anybox-ci: warning: [{unmatched.buildout}]{cell}: {unmatched.reason}")
        leave_out = self.leaves_out_broken_sections
        generated = None
        problems = loaded.diagnostics.errors
        # at most twice: errors of the manifests, then of rendering what is left
        for _ in range(2):
            if problems:
                reduced = leave_out_broken(loaded, problems) if leave_out else None
                if reduced is None:
                    for diag in problems:
                        error(str(diag))
                    return
                self._log_left_out(reduced, loaded, problems)
                loaded = reduced
            try:
                generated = render(loaded, self.site)
                break
            except RenderError as exc:
                problems = exc.problems
        if generated is None:
            for diag in problems:
                error(str(diag))
            return
        _CONFIGURED.add(self.basedir)
        self.loaded = loaded
        generated = self._for_role(config_dict, generated)
        self._add_matrix_page(config_dict, loaded)
        self._add_stacks(config_dict, loaded)
        self._add_change_hooks(config_dict, loaded)
        if config_dict.get("prioritizeBuilders") is None:  # master.cfg's own wins
            from .render.prioritize import PendingRequestsOrder

            config_dict["prioritizeBuilders"] = PendingRequestsOrder()
        for key, values in generated.items():
            if key == "codebaseGenerator":
                values.fallback = config_dict.get(key)  # the user's own, for other changes
                config_dict[key] = values
            else:
                config_dict.setdefault(key, []).extend(values)

    def master_problem(self) -> str | None:
        """A one-line reason when the role, the log horizon or virtual_builders is not valid."""
        from .render.multimaster import role_problem

        problem = role_problem(self.role)
        if problem:
            return problem
        days = self.log_horizon_days
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
            return f"log_horizon_days must be a whole number of days, at least 1, not {days!r}"
        if not isinstance(self.virtual_builders, bool):
            return f"virtual_builders must be True or False, not {self.virtual_builders!r}"
        return None

    def _for_role(self, config_dict: dict[str, Any], generated: dict[str, Any]) -> dict[str, Any]:
        """This master's share (see ``role``), the orphaned-build service of multi-master
        set-ups, and the janitor."""
        from .render.autowatch import FollowDiscoveries
        from .render.multimaster import RetryOrphans, for_role

        if self.role == "engine" and config_dict.pop("www", None) is not None:
            log.msg("anybox-ci: engine master: no web server (role='engine')")
        generated = for_role(self.role, generated)
        services = [FollowDiscoveries(basedir=str(self.basedir))]
        if config_dict.get("multiMaster") and self.role != "ui":
            services.append(RetryOrphans())
        generated["services"] = [*generated.get("services", []), *services]
        if self.log_horizon_days:
            from datetime import timedelta

            from buildbot.plugins import util

            janitor = util.JanitorConfigurator(
                logHorizon=timedelta(days=self.log_horizon_days), hour=3
            )
            janitor.configure(config_dict)
        return generated

    @staticmethod
    def _log_left_out(reduced: Loaded, before: Loaded, problems: list[Diagnostic]) -> None:
        for diag in problems:
            log.msg(f"anybox-ci: {diag}")
        left_out = {b.buildout for b in before.matrix.broken}
        for broken in reduced.matrix.broken:
            if broken.buildout not in left_out:
                log.msg(
                    f"anybox-ci: broken buildout [{broken.buildout}] left out, the others "
                    f"start: {broken.reason}"
                )

    def _add_matrix_page(self, config_dict: dict[str, Any], loaded: Loaded) -> None:
        """The matrix page (and the badges) join the web UI when the master serves one."""
        import importlib.util

        www = config_dict.get("www")
        if not www or importlib.util.find_spec("buildbot_wsgi_dashboards") is None:
            return
        from .www.matrix_page import dashboard

        plugins = www.setdefault("plugins", {})
        plugins.setdefault("wsgi_dashboards", []).append(
            dashboard(loaded.matrix, loaded.config.buildouts, self.registry)
        )

    @staticmethod
    def _add_stacks(config_dict: dict[str, Any], loaded: Loaded) -> None:
        """With ``[domain:NAME]`` sections: the stacks page, and promotion for admins only."""
        if not loaded.config.domains or not config_dict.get("www"):
            return
        from .www.stacks_page import admins_only, dashboard

        www = config_dict["www"]
        admins_only(www.get("authz"), [promote_builder(d) for d in loaded.config.domains])
        if importlib.util.find_spec("buildbot_wsgi_dashboards") is not None:
            plugins = www.setdefault("plugins", {})
            names = [d.name for d in loaded.config.domains]
            plugins.setdefault("wsgi_dashboards", []).append(dashboard(names))

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
        """What rendering would refuse (a master.cfg step set raising ValueError, bad URL
        rewrites), found by a dry render that writes nothing."""
        try:
            render(loaded, self.site, dry_run=True)
        except RenderError as exc:
            return exc.problems
        return []
