"""Read a master directory into a checked, planned configuration, without Buildbot.

:func:`load` is the first half of every (re)configuration; :func:`check` is everything
``anybox-ci check`` reports. Neither raises on bad input: every problem is a diagnostic.
Neither imports Buildbot or Twisted, so checking a master directory stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from . import schema
from .capabilities import CapabilityRegistry
from .diagnostics import Diagnostic, Diagnostics, Severity
from .discovered import Pin, load_discovered, pins_by_codebase, read_allow_prefixes
from .layout import URL_REWRITES, master_paths
from .manifest import read_manifests
from .model import Config, Watch
from .plan import Broken, Matrix, plan
from .rewrites import RewriteRule, parse_rewrite_rules
from .stepset_catalogue import BUILTIN, Catalogue
from .workers import load_workers, missing_secrets


@dataclass(frozen=True)
class Loaded:
    config: Config
    matrix: Matrix
    diagnostics: Diagnostics
    #: auto-watch: buildout -> codebase -> how to pin that discovered source
    pins: Mapping[str, Mapping[str, Pin]] = field(default_factory=dict)

    @cached_property
    def watches(self) -> list[Watch]:
        """Every watched (repository, branch), each once, in manifest order; the watch
        lines of sections without ``buildout`` included."""
        found: dict[Watch, None] = {}
        for buildout in self.config.buildouts:
            found.update(dict.fromkeys(buildout.all_watches))
        for section in self.config.watch_sections:
            found.update(dict.fromkeys(section.watches))
        return list(found)


def secret_options(registry: CapabilityRegistry | None) -> set[str]:
    """The capability-line keys that name a secret (``password`` for PostgreSQL)."""
    specs = (registry or CapabilityRegistry()).specs.values()
    return {key for spec in specs for key in spec.secret_env.values()}


def load_config(
    manifest_paths: Sequence[Path],
    worker_paths: Sequence[Path],
    diags: Diagnostics,
    catalogue: Catalogue = BUILTIN,
    registry: CapabilityRegistry | None = None,
) -> Config:
    manifests = read_manifests(manifest_paths, diags, catalogue)
    return Config(
        buildouts=manifests.buildouts,
        workers=load_workers(worker_paths, diags, secret_options(registry)),
        watch_sections=manifests.watch_sections,
        manifest_paths=manifests.paths,
        section_names=manifests.sections,
        inherit_broken=manifests.silently_broken,
        domains=manifests.domains,
    )


def load(
    basedir: Path,
    registry: CapabilityRegistry | None = None,
    catalogue: Catalogue = BUILTIN,
    manifests: Iterable[str | Path] | None = None,
    workers: Iterable[str | Path] | None = None,
) -> Loaded:
    """Read manifests, workers files and auto-watch discoveries, then plan the cells.

    ``catalogue`` holds the step sets the manifests may name and the options each needs,
    so that those problems are reported here, before any Buildbot object exists."""
    diags = Diagnostics()
    manifest_paths, worker_paths = master_paths(basedir, manifests, workers)
    config = load_config(manifest_paths, worker_paths, diags, catalogue, registry)
    config, pins = _with_discovered(basedir, config, diags)
    matrix = plan(config.buildouts, config.workers, registry or CapabilityRegistry())
    return Loaded(config, matrix, diags, pins)


def buildout_of(diag: Diagnostic, config: Config) -> str | None:
    """The manifest section a diagnostic is about, or None (a workers file, a whole file)."""
    if diag.path in config.manifest_paths and diag.section in config.section_names:
        return diag.section
    return None


def leave_out_broken(loaded: Loaded, problems: Iterable[Diagnostic]) -> Loaded | None:
    """The configuration without the buildouts these errors are about, or None when an
    error is not about one manifest section (a workers file, an unreadable manifest, URL
    rewrite rules...): then nothing can be trusted.

    This is how a starting master keeps its other buildouts when one is broken (see
    ``AnyboxConfigurator``); ``anybox-ci matrix`` shows the same. A section that only
    inherits from a broken one is left out with it."""
    config = loaded.config
    found: dict[str, Diagnostic] = {}
    for diag in problems:
        if not diag.is_error:
            continue
        name = buildout_of(diag, config)
        if name is None:
            return None
        found.setdefault(name, diag)
    if not found:
        return loaded
    broken = [Broken(name, str(diag)) for name, diag in found.items()]
    # left out silently by the loader: the section they inherit from has an inherit error
    for child, why in config.inherit_broken.items():
        if child not in found:
            broken.append(Broken(child, why))
    dropped = {b.buildout for b in broken}
    kept = replace(
        config,
        buildouts=tuple(b for b in config.buildouts if b.name not in dropped),
        watch_sections=tuple(w for w in config.watch_sections if w.name not in dropped),
        domains=tuple(
            d
            for d in config.domains
            if d.section not in dropped and not dropped.intersection(d.get(schema.MEMBERS))
        ),
    )
    matrix = Matrix(
        tuple(c for c in loaded.matrix.cells if c.buildout not in dropped),
        tuple(u for u in loaded.matrix.unmatched if u.buildout not in dropped),
        tuple(sorted({*loaded.matrix.broken, *broken}, key=lambda b: (b.buildout, b.reason))),
    )
    pins = {k: v for k, v in loaded.pins.items() if k not in dropped}
    return Loaded(kept, matrix, loaded.diagnostics, pins)


def read_rewrites(path: Path, diags: Diagnostics) -> list[RewriteRule]:
    """The URL rewrite rules of ``path`` (none when it does not exist); problems as diagnostics."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        diags.error(shown, 0, "", "", f"cannot read: {exc}")
        return []
    try:
        return parse_rewrite_rules(text, shown)
    except ValueError as exc:
        # the message starts with "FILE:LINE: "; keep the line as the diagnostic's
        message = str(exc).removeprefix(shown + ":")
        number, sep, rest = message.partition(": ")
        if sep and number.isdigit():
            diags.error(shown, int(number), "", "", rest)
        else:
            diags.error(shown, 0, "", "", str(exc))
        return []


def unmatched_warnings(loaded: Loaded) -> list[Diagnostic]:
    """Cells (or buildouts) no worker can run, as warnings at their section."""
    sections = {b.name: b for b in loaded.config.buildouts}
    return [
        Diagnostic(
            sections[u.buildout].manifest,
            sections[u.buildout].line,
            u.buildout,
            u.cell,
            u.reason,
            Severity.WARNING,
        )
        for u in loaded.matrix.unmatched
    ]


def check(
    basedir: Path,
    manifests: Iterable[str | Path] | None = None,
    workers: Iterable[str | Path] | None = None,
    *,
    registry: CapabilityRegistry | None = None,
    catalogue: Catalogue = BUILTIN,
    url_rewrites: str | Path = URL_REWRITES,
) -> Loaded:
    """Everything ``anybox-ci check`` reports, in ``Loaded.diagnostics``, sorted by place.

    That is the loading problems (manifests, workers, step sets and the options they
    need, auto-watch discoveries), the URL rewrite file's, and a warning per unmatched
    cell. Only step sets registered in master.cfg that refuse to render are left to
    the configurator, which needs Buildbot."""
    basedir = Path(basedir)
    loaded = load(basedir, registry, catalogue, manifests, workers)
    diags = loaded.diagnostics
    read_rewrites(basedir / url_rewrites, diags)
    missing_secrets(loaded.config.workers, basedir / "secrets", diags, secret_options(registry))
    diags.extend(unmatched_warnings(loaded))
    diags.items.sort(key=lambda d: (d.path, d.line))
    return loaded


def _with_discovered(
    basedir: Path, config: Config, diags: Diagnostics
) -> tuple[Config, dict[str, dict[str, Pin]]]:
    """Add the sources that builds discovered to auto-watch buildouts."""
    buildouts, pins = [], {}
    allow = read_allow_prefixes(basedir, diags)
    for buildout in config.buildouts:
        if buildout.get(schema.AUTO_WATCH):
            found = load_discovered(basedir, buildout, diags, allow)
            extra = tuple(w for w, _ in found if w not in buildout.all_watches)
            buildout = replace(buildout, watches=buildout.watches + extra)
            pins[buildout.name] = pins_by_codebase(found)
        buildouts.append(buildout)
    return replace(config, buildouts=tuple(buildouts)), pins
