"""The step-set registry: plain functions keyed by the names users write in manifests.

A step set is a function ``(StepContext) -> list of steps``. The built-in ones implement
the pure catalogue (:mod:`anybox_ci.core.stepset_catalogue`), which says their names and
the options they need; master.cfg adds its own with :meth:`StepSets.register`, and may
declare what they need too, so that the loader checks it with the built-in ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from buildbot.interfaces import IRenderable
from buildbot.plugins import util
from buildbot.process.buildstep import BuildStep
from twisted.internet import defer
from zope.interface import implementer

from ..core import schema
from ..core.model import Buildout
from ..core.schema import Option
from ..core.stepset_catalogue import KINDS, Catalogue, StepSetSpec, kind_option
from .buildsteps import CellEnv, UtilStep
from .utils_bundle import BUNDLE_NAME

T = TypeVar("T")

TESTING_DB = util.Property("testing_db")
UTILS_PYTHON = util.Property("anybox_utils_python", default="python3")
UTILS_BUNDLE = util.Interpolate("%(prop:builddir)s/" + BUNDLE_NAME)


@implementer(IRenderable)
@dataclass(frozen=True)
class EnvWith:
    """A step's environment: ``base`` (a cell's :class:`CellEnv`) plus fixed variables."""

    base: Any
    variables: tuple[tuple[str, str], ...]

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        env = yield props.render(self.base)
        result = dict(env or {})
        result.update(self.variables)
        return result


def util_argv(script: str, *args: Any) -> list[Any]:
    """argv running a build_utils script from the bundle sent to the worker."""
    return [UTILS_PYTHON, UTILS_BUNDLE, script, *args]


@dataclass(frozen=True)
class StepContext:
    """What a step set may use: the buildout, the cell env, where the buildout lives."""

    buildout: Buildout
    env: CellEnv
    #: folder of the buildout on the worker, relative to the builder's folder
    workdir: str
    #: the buildout configuration file, relative to ``workdir``
    config_file: str
    #: how the pipeline runs ``bin/buildout`` (add ``install PART`` to install a part)
    buildout_argv: tuple[Any, ...] = ()

    def get(self, option: Option[T]) -> T:
        """A manifest option of the buildout, typed: ``ctx.get(schema.ODOO_ADDONS)``."""
        return self.buildout.get(option)

    @property
    def part(self) -> str:
        return self.get(schema.BUILDOUT_PART)

    def util_argv(self, script: str, *args: Any) -> list[Any]:
        return util_argv(script, *args)

    def shell(self, name: str, command: Any, **kwargs: Any) -> BuildStep:
        kwargs.setdefault("workdir", self.workdir)
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("haltOnFailure", True)
        kwargs.setdefault("timeout", self.get(schema.TEST_TIMEOUT))
        # a manifest's commands print what they like: none of it becomes a property
        kwargs.setdefault("exports", ())
        return UtilStep(name=name, command=command, **kwargs)


StepSet = Callable[[StepContext], list[BuildStep]]
_Key = tuple[str, str]


def _first_line(func: object) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclass
class StepSets:
    """Registry of step sets per kind: the catalogue entries and their functions."""

    specs: dict[_Key, StepSetSpec] = field(default_factory=dict)
    funcs: dict[_Key, StepSet] = field(default_factory=dict)
    _lookup: dict[str, Mapping[str, StepSetSpec]] = field(default_factory=dict, repr=False)

    def implement(self, spec: StepSetSpec) -> Callable[[StepSet], StepSet]:
        """Register ``func`` as the implementation of a catalogue entry."""

        def decorator(func: StepSet) -> StepSet:
            key = (spec.kind.name, spec.name)
            self.specs[key] = spec
            self.funcs[key] = func
            self._lookup.clear()
            return func

        return decorator

    def register(
        self,
        kind: str | Option[tuple[str, ...]],
        name: str,
        *aliases: str,
        requires: Iterable[Option[Any]] = (),
        doc: str = "",
    ) -> Callable[[StepSet], StepSet]:
        """Register a step set of master.cfg: ``@step_sets.register("post-buildout-steps", "smoke")``.

        ``requires`` are options it cannot run without (checked by the loader, with the
        built-in step sets); ``doc`` defaults to the first line of the function's docstring."""
        kind_opt = kind_option(kind)  # ValueError for an unknown kind

        def decorator(func: StepSet) -> StepSet:
            spec = StepSetSpec(kind_opt, name, doc or _first_line(func), aliases, tuple(requires))
            return self.implement(spec)(func)

        return decorator

    def catalogue(self) -> Catalogue:
        """The pure description of every registered step set, for the loader and the docs."""
        return Catalogue(tuple(self.specs.values()))

    def names(self) -> Mapping[str, Mapping[str, str]]:
        """Per kind, every accepted name -> its current name (aliases are old names)."""
        catalogue = self.catalogue()
        return {
            kind.name: {name: spec.name for name, spec in catalogue.names(kind).items()}
            for kind in KINDS
        }

    def get(self, kind: str | Option[tuple[str, ...]], name: str) -> StepSet:
        """The function of a step set, by any of its names."""
        kind_name = kind if isinstance(kind, str) else kind.name
        if not self._lookup:
            catalogue = self.catalogue()
            self._lookup.update({k.name: catalogue.names(k) for k in KINDS})
        spec = self._lookup[kind_name][name]
        return self.funcs[(kind_name, spec.name)]

    def copy(self) -> StepSets:
        return StepSets(dict(self.specs), dict(self.funcs))
