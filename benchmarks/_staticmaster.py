"""Static master.cfg files equivalent to what the configurator generates.

These are the baselines of benchmarks/bench_configurator.py: a master.cfg that builds the same
Buildbot objects as literal Python, with no manifest to read and no plan to compute.

:func:`write_equivalent` writes them by introspecting the generated objects. It keeps the
step class and constructor arguments of every step, the same renderables, the same
ChangeFilter (every watch) and the same sharing: an object that several builders or factories
share is built once and reused. The master.cfg.sample settings stay as they are, and so does
the GC policy: ``configure()`` turns the cyclic GC off while it builds its objects, and the
static file does the same around its own. :func:`verify` then executes the file and compares
a structural fingerprint of every object with the generated one. A baseline that drifts from
what the configurator makes is an error, not a silent flatterer.

:func:`write_legacy` is the baseline the benchmark used before. It is kept to print the
old figures beside the new ones: plain ShellCommands with no shared steps, a ChangeFilter on
the first watch only, no ``nextWorker``, and the cyclic GC left on.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import types
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from buildbot.changes.filter import ChangeFilter
from buildbot.config.builder import BuilderConfig
from buildbot.process.buildstep import _BuildStepFactory
from buildbot.process.factory import BuildFactory
from buildbot.process.properties import Interpolate, _Renderer
from buildbot.schedulers.forcesched import BaseParameter, CodebaseParameter

#: master.cfg.sample's line that installs the configurator (its arguments may vary)
CONFIGURATOR_LINE = re.compile(
    r"^c\['configurators'\] = \[AnyboxConfigurator\((?:basedir.*|\n(?:    .*\n)*)\)\]$", re.M
)
#: config_dict keys holding lists of generated objects, in the configurator's order
LIST_KEYS = ("workers", "builders", "projects", "schedulers", "change_source", "services")

_ATOMS = (type(None), bool, int, float, complex, str, bytes)


class Unsupported(TypeError):
    """The generated objects hold something this writer cannot spell as Python."""


def _is_atom(obj: Any) -> bool:
    return isinstance(obj, _ATOMS)


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # noqa: BLE001 - odd __eq__: treat as different
        return False


def _closure_vars(fn: types.FunctionType) -> dict[str, Any]:
    cells = fn.__closure__ or ()
    return {
        name: cell.cell_contents for name, cell in zip(fn.__code__.co_freevars, cells, strict=True)
    }


def _outer(fn: types.FunctionType) -> tuple[str, str]:
    """(module, name) of the function that made closure ``fn``."""
    outer, _, _inner = fn.__qualname__.partition(".<locals>.")
    if "<" in outer or "." in outer:
        raise Unsupported(f"cannot spell {fn.__module__}.{fn.__qualname__}")
    return fn.__module__, outer


def _import(module: str, qualname: str) -> Any:
    obj: Any = __import__(module, fromlist=["_"])
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class SourceWriter:
    """Python expressions that rebuild objects; objects met twice are built once."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        #: (module, top-level name) -> local alias
        self.imports: dict[tuple[str, str], str] = {}
        self.prelude: list[str] = []
        self._counts: Counter[int] = Counter()
        self._names: dict[int, str] = {}
        self._alive: list[Any] = []  # ids stay valid while we hold the objects
        self._counting = False
        #: names master.cfg.sample (or the code around the objects) already uses
        self._used = set(reserved)
        #: (class, constructor parameter) -> the attribute that holds its value
        self._aliases: dict[tuple[type, str], str] = {}

    # ---------------------------------------------------------------- public

    def count(self, roots: Iterable[Any]) -> None:
        """First pass: find which objects are shared."""
        self._counting = True
        try:
            for root in roots:
                self.expr(root)
        finally:
            self._counting = False

    def expr(self, obj: Any) -> str:
        if _is_atom(obj):
            return repr(obj)
        if isinstance(obj, type):
            return self.name_of(obj.__module__, obj.__qualname__)
        if isinstance(obj, types.FunctionType) and "<locals>" not in obj.__qualname__:
            if obj.__name__ == "<lambda>":
                raise Unsupported(f"cannot spell a lambda ({obj.__module__}.{obj.__qualname__})")
            return self.name_of(obj.__module__, obj.__qualname__)
        key = id(obj)
        if key in self._names:
            return self._names[key]
        if self._counting:
            self._counts[key] += 1
            if self._counts[key] > 1:
                return "_"
            self._alive.append(obj)
            return self._build(obj)
        text = self._build(obj)
        if self._counts[key] > 1:
            name = f"_o{len(self._names)}"
            self.prelude.append(f"{name} = {text}")
            self._names[key] = name
            return name
        return text

    def name_of(self, module: str, qualname: str) -> str:
        """A local name for ``module.qualname``, imported once."""
        top, _, rest = qualname.partition(".")
        key = (module, top)
        if key not in self.imports:
            alias, n = top, 1
            while alias in self._used:
                n += 1
                alias = f"{top}_{n}"
            self._used.add(alias)
            self.imports[key] = alias
        return self.imports[key] + ("." + rest if rest else "")

    def import_lines(self) -> list[str]:
        return [
            f"from {module} import {top}" + (f" as {alias}" if alias != top else "")
            for (module, top), alias in sorted(self.imports.items())
        ]

    # ---------------------------------------------------------------- builders

    def _call(self, func: str, args: Iterable[Any] = (), kwargs: Mapping[str, Any] = {}) -> str:
        parts = [self.expr(a) for a in args]
        parts += [f"{k}={self.expr(v)}" for k, v in kwargs.items()]
        return f"{func}({', '.join(parts)})"

    def _cls(self, obj: Any) -> str:
        return self.expr(type(obj))

    def _build(self, obj: Any) -> str:
        for kind, method in self._DISPATCH:
            if isinstance(obj, kind):
                return method(self, obj)
        if dataclasses.is_dataclass(obj):
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
            return self._call(self._cls(obj), (), fields)
        if hasattr(obj, "_config_args") and hasattr(obj, "_config_kwargs"):
            return self._service(obj)
        return self._by_signature(obj)

    def _list(self, obj: list[Any]) -> str:
        return "[" + ", ".join(self.expr(v) for v in obj) + "]"

    def _tuple(self, obj: tuple[Any, ...]) -> str:
        items = [self.expr(v) for v in obj]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    def _dict(self, obj: Mapping[Any, Any]) -> str:
        return "{" + ", ".join(f"{self.expr(k)}: {self.expr(v)}" for k, v in obj.items()) + "}"

    def _set(self, obj: set[Any] | frozenset[Any]) -> str:
        items = sorted(self.expr(v) for v in obj)
        if isinstance(obj, frozenset):
            return f"frozenset({{{', '.join(items)}}})" if items else "frozenset()"
        return f"{{{', '.join(items)}}}" if items else "set()"

    def _proxy(self, obj: types.MappingProxyType[Any, Any]) -> str:
        return f"{self.name_of('types', 'MappingProxyType')}({self._dict(obj)})"

    def _closure(self, obj: Any) -> str:
        """A function or renderer made inside another function: call that function again."""
        fn = obj.fn if isinstance(obj, _Renderer) else obj
        if not isinstance(fn, types.FunctionType) or "<locals>" not in fn.__qualname__:
            if isinstance(obj, _Renderer) and not obj.args and not obj.kwargs:
                return f"{self.name_of('buildbot.plugins', 'util')}.renderer({self.expr(fn)})"
            raise Unsupported(f"cannot spell {obj!r}")
        module, outer_name = _outer(fn)
        outer = _import(module, outer_name)
        captured = _closure_vars(fn)
        params = inspect.signature(outer).parameters
        if not set(captured) <= set(params):
            raise Unsupported(f"{fn.__qualname__} captures more than {outer_name}'s arguments")
        # the outer function must give back the same kind of object
        remade = outer(**captured)
        remade_fn = remade.fn if isinstance(remade, _Renderer) else remade
        if type(remade) is not type(obj) or remade_fn.__qualname__ != fn.__qualname__:
            raise Unsupported(f"{outer_name}() does not return {fn.__qualname__}")
        return self._call(self.name_of(module, outer_name), (), captured)

    def _step(self, obj: Any) -> str:
        return self._call(self.expr(obj.step_class), obj.args, obj.kwargs)

    def _factory(self, obj: BuildFactory) -> str:
        extra = {k: v for k, v in vars(obj).items() if k != "steps"}
        if extra:
            raise Unsupported(f"BuildFactory attributes {sorted(extra)}")
        return self._call(self.expr(type(obj)), (obj.steps,))

    def _builder(self, obj: BuilderConfig) -> str:
        kwargs: dict[str, Any] = {
            "name": obj.name,
            "workernames": obj.workernames,
            "factory": obj.factory,
        }
        probe = BuilderConfig(name=obj.name, workernames=obj.workernames, factory=obj.factory)
        for key, value in vars(obj).items():
            if key in kwargs:
                continue
            default = getattr(probe, key)
            if key == "do_build_if" and value.__qualname__ == default.__qualname__:
                continue
            if not _same(value, default):
                kwargs[key] = value
        return self._call(self.expr(type(obj)), (), kwargs)

    def _interpolate(self, obj: Interpolate) -> str:
        return self._call(self.expr(type(obj)), (obj.fmtstring, *obj.args), obj.kwargs)

    def _change_filter(self, obj: ChangeFilter) -> str:
        if obj.filters or obj.property_filters or obj.filter_fn is None:
            raise Unsupported("ChangeFilter with attribute filters")
        return self._call(self.expr(type(obj)), (), {"filter_fn": obj.filter_fn})

    def _parameter(self, obj: BaseParameter) -> str:
        if isinstance(obj, CodebaseParameter):
            fields = {f.name: f for f in obj.fields}
            if not set(fields) <= {"branch", "revision", "repository", "project", "patch"}:
                raise Unsupported(f"CodebaseParameter fields {sorted(fields)}")
            return self._call(
                self.expr(type(obj)), (), {"codebase": obj.codebase, "label": obj.label, **fields}
            )
        return self._call(self.expr(type(obj)), (), self._rebuild_kwargs(obj))

    def _rebuild_kwargs(self, obj: Any) -> dict[str, Any]:
        """Constructor arguments that build ``obj`` again, checked by building it.

        Named parameters come from attributes of the same name. A required one that is not
        an attribute (a subclass passing it on under another name, say) is matched with the
        attribute a marker value lands in. When the constructor takes ``**kwargs``, whatever
        still differs from an object built with those goes through them (BaseParameter keeps
        its keyword arguments as attributes)."""
        cls = type(obj)
        state = getattr(obj, "__dict__", None)
        if state is None:
            raise Unsupported(f"cannot spell a {cls.__qualname__}")
        params = inspect.signature(cls).parameters
        kwargs: dict[str, Any] = {}
        missing = []
        for param in params.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name in state:
                value = state[param.name]
                if param.default is param.empty or not _same(value, param.default):
                    kwargs[param.name] = value
            elif param.default is param.empty:
                missing.append(param.name)
        for name in missing:
            kwargs[name] = state[self._matching_attribute(obj, kwargs, missing, name)]
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            probe = vars(cls(**kwargs))
            taken = {self._aliases[(cls, name)] for name in missing}
            for key, value in state.items():
                missing_in_probe = key not in probe
                if (
                    key not in kwargs
                    and key not in taken
                    and (missing_in_probe or not _same(probe[key], value))
                ):
                    kwargs[key] = value
        if fingerprint(cls(**kwargs)) != fingerprint(obj):
            raise Unsupported(f"cannot rebuild a {cls.__qualname__} from its attributes")
        return kwargs

    def _matching_attribute(
        self, obj: Any, kwargs: dict[str, Any], missing: list[str], name: str
    ) -> str:
        """The attribute where ``cls(name=...)`` stores its value: the one a marker lands in."""
        cls = type(obj)
        if (cls, name) not in self._aliases:
            markers = {m: f"<{m} marker>" for m in missing}
            try:
                probe = vars(cls(**{**kwargs, **markers}))
            except Exception as exc:  # noqa: BLE001 - reported as what it means here
                raise Unsupported(f"cannot build {cls.__qualname__}: {exc}") from exc
            found = [attr for attr, value in probe.items() if value == markers[name]]
            if len(found) != 1:
                raise Unsupported(f"{cls.__qualname__}({name}=...) matches no one attribute")
            self._aliases[(cls, name)] = found[0]
        return self._aliases[(cls, name)]

    def _service(self, obj: Any) -> str:
        kwargs = dict(obj._config_kwargs)
        # BuildbotService takes ``name`` out of the keyword arguments it keeps
        signature = inspect.signature(type(obj))
        try:
            signature.bind(*obj._config_args, **kwargs)
        except TypeError:
            kwargs = {"name": obj.name, **kwargs}
        return self._call(self.expr(type(obj)), obj._config_args, kwargs)

    def _by_signature(self, obj: Any) -> str:
        """Constructor parameters rebuilt from attributes (see :meth:`_rebuild_kwargs`)."""
        return self._call(self._cls(obj), (), self._rebuild_kwargs(obj))

    _DISPATCH: tuple[tuple[type | tuple[type, ...], Callable[[SourceWriter, Any], str]], ...] = (
        (list, _list),
        (tuple, _tuple),
        (dict, _dict),
        ((set, frozenset), _set),
        (types.MappingProxyType, _proxy),
        ((types.FunctionType, _Renderer), _closure),
        (_BuildStepFactory, _step),
        (BuildFactory, _factory),
        (BuilderConfig, _builder),
        (Interpolate, _interpolate),
        (ChangeFilter, _change_filter),
        (BaseParameter, _parameter),
    )


# ---------------------------------------------------------------- fingerprints


def fingerprint(obj: Any, memo: dict[int, str] | None = None) -> str:
    """A structural description: same class, same state, recursively (addresses left out)."""
    memo = {} if memo is None else memo
    if _is_atom(obj):
        return repr(obj)
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    key = id(obj)
    if key in memo:
        return memo[key]
    memo[key] = "<cycle>"

    def fp(value: Any) -> str:
        return fingerprint(value, memo)

    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, (list, tuple)):
        text = f"{type(obj).__name__}[{', '.join(fp(v) for v in obj)}]"
    elif isinstance(obj, (dict, types.MappingProxyType)):
        text = "{" + ", ".join(sorted(f"{fp(k)}: {fp(v)}" for k, v in obj.items())) + "}"
    elif isinstance(obj, (set, frozenset)):
        text = "set{" + ", ".join(sorted(fp(v) for v in obj)) + "}"
    elif isinstance(obj, types.FunctionType):
        # (the closure dict is a temporary: its id must not enter the memo)
        captured = ", ".join(f"{k}={fp(v)}" for k, v in _closure_vars(obj).items())
        text = f"fn {obj.__module__}.{obj.__qualname__} ({captured})"
    elif isinstance(obj, types.MethodType):
        text = f"method {obj.__func__.__qualname__} of {fp(type(obj.__self__))}"
    elif isinstance(obj, _BuildStepFactory):
        text = f"step {fp(obj.step_class)} {fp(obj.args)} {fp(obj.kwargs)}"
    elif isinstance(obj, Interpolate):
        text = f"Interpolate {obj.fmtstring!r} {fp(obj.args)} {fp(obj.kwargs)}"
    elif hasattr(obj, "_config_args") and hasattr(obj, "_config_kwargs"):
        text = f"{name} {obj.name!r} {fp(obj._config_args)} {fp(obj._config_kwargs)}"
    elif hasattr(obj, "__dict__"):
        text = f"{name} {fp(vars(obj))}"
    else:
        text = f"{name} {obj!r}"
    memo[key] = text
    return text


# ---------------------------------------------------------------- equivalent master.cfg


def _sample_parts(sample: str) -> tuple[str, str]:
    found = CONFIGURATOR_LINE.search(sample)
    if found is None:
        raise Unsupported(f"master.cfg.sample has no line {CONFIGURATOR_LINE.pattern!r}")
    return sample[: found.start()], sample[found.end() :]


def _identifiers(source: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source)) | {"_gc", "_gc_was_enabled"}


def _codebase_table(config_dict: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    generator = config_dict.get("codebaseGenerator")
    return dict(getattr(generator, "table", {}) or {})


_CODEBASE_GENERATOR = """\
CODEBASES = {table}


def codebase_generator(chdict):
    key = (chdict.get('repository') or '', chdict.get('branch') or '')
    return CODEBASES.get(key) or CODEBASES.get((key[0], '')) or ''


c['codebaseGenerator'] = codebase_generator
"""


def write_equivalent(root: Path, generated: Path, config_dict: Mapping[str, Any]) -> Path:
    """``root/master.cfg``: master.cfg.sample with the configurator's output spelled out."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(generated / "secrets", root / "secrets")
    head, tail = _sample_parts((generated / "master.cfg").read_text())

    writer = SourceWriter(reserved=_identifiers(head + tail + _CODEBASE_GENERATOR))
    present = [k for k in LIST_KEYS if config_dict.get(k)]
    writer.count(config_dict[k] for k in present)
    lists = {k: [writer.expr(v) for v in config_dict[k]] for k in present}

    out = [
        head.rstrip(),
        "",
        "# ---- What AnyboxConfigurator generates, spelled out by benchmarks/_staticmaster.py.",
        *writer.import_lines(),
        "import gc as _gc",
        "",
        "# the configurator builds its objects with the cyclic GC off: so does this file",
        "_gc_was_enabled = _gc.isenabled()",
        "_gc.disable()",
        *writer.prelude,
        "",
    ]
    for key in present:
        out.append(f"c.setdefault({key!r}, []).extend([")
        out += [f"    {text}," for text in lists[key]]
        out.append("])")
    table = _codebase_table(config_dict)
    if table:
        out.append(_CODEBASE_GENERATOR.format(table=repr(table)))
    out += ["if _gc_was_enabled:", "    _gc.enable()", tail.lstrip("\n")]
    (root / "master.cfg").write_text("\n".join(out) + "\n")
    return root


def execute(static: Path) -> dict[str, Any]:
    """Run a static master.cfg as Buildbot would, and return its BuildmasterConfig."""
    path = static / "master.cfg"
    namespace: dict[str, Any] = {"basedir": str(static), "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return dict(namespace["BuildmasterConfig"])


def verify(static: Path, config_dict: Mapping[str, Any]) -> list[str]:
    """Differences between the static master's objects and the generated ones."""
    other = execute(static)
    problems = []
    memo_a: dict[int, str] = {}
    memo_b: dict[int, str] = {}
    for key in LIST_KEYS:
        ours = [fingerprint(v, memo_a) for v in config_dict.get(key) or ()]
        theirs = [fingerprint(v, memo_b) for v in other.get(key) or ()]
        if len(ours) != len(theirs):
            problems.append(f"{key}: {len(ours)} generated, {len(theirs)} static")
            continue
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if a != b:
                at = next(n for n in range(min(len(a), len(b)) + 1) if a[n : n + 1] != b[n : n + 1])
                problems.append(
                    f"{key}[{i}] differs at character {at}:\n"
                    f"  generated ...{a[max(0, at - 150) : at + 150]}\n"
                    f"  static    ...{b[max(0, at - 150) : at + 150]}"
                )
                break
    table = _codebase_table(config_dict)
    if table:
        generator = config_dict["codebaseGenerator"]
        static_generator = other.get("codebaseGenerator")
        for repository, branch in table:
            chdict = {"repository": repository, "branch": branch}
            if static_generator is None or static_generator(chdict) != generator(chdict):
                problems.append(f"codebaseGenerator differs for {chdict}")
                break
    return problems


# ---------------------------------------------------------------- the old baseline


_LEGACY_NAMES = {"os", "changes", "schedulers", "secrets", "steps", "util", "worker", "ENV"}


def _legacy_step(index: int, step: Any) -> str:
    name = step.kwargs.get("name") or f"step_{index}"
    return (
        f"        steps.ShellCommand(name={name!r}, command=['bin/buildout', '-c', "
        f"'buildout.cfg', 'step-{index}'], workdir='build', env=ENV, "
        f"haltOnFailure=True, timeout=3600),"
    )


def write_legacy(root: Path, generated: Path, config_dict: Mapping[str, Any]) -> Path:
    """The baseline of the previous benchmark (not equivalent; kept for the old figures)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(generated / "secrets", root / "secrets")
    builders: list[Any] = config_dict["builders"]
    factories: dict[str, Any] = {}
    for b in builders:
        factories.setdefault(b.project, b.factory)
    writer = SourceWriter(reserved=_identifiers(_CODEBASE_GENERATOR) | _LEGACY_NAMES)

    def ident(project: str) -> str:
        return "f_" + "".join(ch if ch.isalnum() else "_" for ch in project)

    out = [
        "# -*- python -*-",
        "# The previous benchmark's static master.cfg (not equivalent to the generated one).",
        "import os",
        "",
        "from buildbot.plugins import changes, schedulers, secrets, steps, util, worker",
        "",
        "c = BuildmasterConfig = {}",
        "c['title'] = 'static'",
        "c['titleURL'] = 'https://example.com/'",
        "c['buildbotURL'] = 'http://localhost:8010/'",
        "c['buildbotNetUsageData'] = None",
        "c['protocols'] = {'pb': {'port': 'tcp:9989'}}",
        "c['db'] = {'db_url': 'sqlite:///state.sqlite'}",
        "c['www'] = {",
        "    'port': 'tcp:8010',",
        "    'plugins': {'waterfall_view': {}, 'console_view': {}, 'grid_view': {}},",
        "}",
        "c['secretsProviders'] = [",
        "    secrets.SecretInAFile(dirname=os.path.join(basedir, 'secrets'))",
        "]",
        "ENV = {'ANYBOX_CI_DB': util.Property('testing_db', default='')}",
        "",
        "c['workers'] = [",
    ]
    out += [f"    {writer.expr(w)}," for w in config_dict["workers"]]
    out += ["]", "", "c['change_source'] = ["]
    out += [f"    {writer.expr(p)}," for p in config_dict.get("change_source") or ()]
    out += ["]", "", "c['projects'] = ["]
    out += [f"    util.Project(name={project!r})," for project in factories]
    out += ["]", ""]
    for project, factory in factories.items():
        out.append(f"{ident(project)} = util.BuildFactory([")
        out += [_legacy_step(i, s) for i, s in enumerate(factory.steps)]
        out.append("])")
    out += ["", "c['builders'] = ["]
    for b in builders:
        out.append(
            f"    util.BuilderConfig(name={b.name!r}, workernames={list(b.workernames)!r}, "
            f"factory={ident(b.project)}, properties={dict(b.properties)!r}, "
            f"tags={b.tags!r}, project={b.project!r}),"
        )
    out += ["]", "", "c['schedulers'] = ["]
    for s in config_dict["schedulers"]:
        if "change_filter" not in s._config_kwargs:  # force and other schedulers: as is
            out.append(f"    {writer.expr(s)},")
            continue
        codebases = s._config_kwargs["codebases"]
        first = next(iter(codebases.values()))
        out.append(
            f"    schedulers.AnyBranchScheduler(name={s.name!r}, builderNames="
            f"{list(s.builderNames)!r}, change_filter=util.ChangeFilter("
            f"repository={first['repository']!r}, branch={first['branch']!r}), "
            f"codebases={codebases!r}),"
        )
    out += ["]", ""]
    table = _codebase_table(config_dict)
    out.append(_CODEBASE_GENERATOR.format(table=repr(table)))
    imports = writer.import_lines()
    (root / "master.cfg").write_text("\n".join(out[:5] + imports + out[5:]) + "\n")
    return root
