"""Read a master directory into a checked, planned configuration, without Buildbot.

This is what ``anybox-ci check`` and ``matrix`` run, and the first half of every
(re)configuration. It never raises on bad input: every problem is a diagnostic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .capabilities import CapabilityRegistry
from .diagnostics import Diagnostics
from .discovered import Pin, pins_by_codebase, read_discovered, watch_file
from .model import Config, Watch, load_config, master_paths
from .plan import Matrix, plan


@dataclass(frozen=True)
class Loaded:
    config: Config
    matrix: Matrix
    diagnostics: Diagnostics
    #: auto-watch: buildout -> codebase -> how to pin that discovered source
    pins: Mapping[str, Mapping[str, Pin]] = field(default_factory=dict)

    @property
    def watches(self) -> list[Watch]:
        """Every watched (repository, branch), each once, in manifest order."""
        result: list[Watch] = []
        for buildout in self.config.buildouts:
            result += [w for w in buildout.all_watches if w not in result]
        return result


def load(
    basedir: Path,
    registry: CapabilityRegistry,
    step_set_names: Mapping[str, Mapping[str, str]],
    manifests: Iterable[str | Path] | None = None,
    workers: Iterable[str | Path] | None = None,
) -> Loaded:
    """Read manifests, workers files and auto-watch discoveries, then plan the cells.

    ``step_set_names`` maps each step-set option to its known names (old name -> new name),
    so that unknown step sets are reported here, before any Buildbot object exists."""
    diags = Diagnostics()
    manifest_paths, worker_paths = master_paths(basedir, manifests, workers)
    config = load_config(manifest_paths, worker_paths, diags, step_set_names)
    config, pins = _with_discovered(basedir, config, diags)
    matrix = plan(config.buildouts, config.workers, registry)
    return Loaded(config, matrix, diags, pins)


def _with_discovered(
    basedir: Path, config: Config, diags: Diagnostics
) -> tuple[Config, dict[str, dict[str, Pin]]]:
    """Add the sources that builds discovered to auto-watch buildouts."""
    buildouts, pins = [], {}
    for buildout in config.buildouts:
        if buildout.opt("auto-watch"):
            found = read_discovered(watch_file(basedir, buildout.name), diags, buildout.name)
            extra = tuple(w for w, _ in found if w not in buildout.all_watches)
            buildout = replace(buildout, watches=buildout.watches + extra)
            pins[buildout.name] = pins_by_codebase(found)
        buildouts.append(buildout)
    return replace(config, buildouts=tuple(buildouts)), pins
