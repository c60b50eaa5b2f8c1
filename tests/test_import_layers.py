"""The package's layers import one way, read from the source with ``ast`` (nothing is imported).

``core`` (stdlib only) comes first, then ``render`` (Buildbot objects), then ``configurator``,
then ``cli``; ``changes`` and ``www`` sit beside ``render`` on top of ``core``; ``devtools``
serves the command line only; the worker-side ``build_utils`` (installed as
``anybox_ci.build_utils``) is shipped alone to workers, so it needs nothing but the stdlib and
itself. Every import counts, also those inside functions, ``try`` blocks and ``TYPE_CHECKING``
blocks: a lazy import is still a dependency. The compatibility shims (``anybox_ci.hooks``,
``anybox_ci.www.htpasswd``) are there for callers outside the package, which nothing inside it
should be.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Package name -> source folder (build_utils is mapped into anybox_ci by pyproject.toml; the
#: sample buildouts, also mapped, are data: their Odoo addons import odoo, not the package).
ROOTS = {"anybox_ci": REPO / "anybox_ci", "anybox_ci.build_utils": REPO / "build_utils"}
#: The sub-package that ships alone to workers, where its modules import each other top-level.
WORKER_PACKAGE = "anybox_ci.build_utils"
SHIMS = frozenset({"anybox_ci.hooks", "anybox_ci.www.htpasswd"})
#: What ``www`` may use of ``changes``: the wire protocol and its pure core (modules or packages).
WWW_MAY_USE_OF_CHANGES = ("anybox_ci.changes.protocol", "anybox_ci.changes.core")
STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Import:
    """One imported name: ``target`` is a module of the scanned tree when ``internal``, else the
    top-level name of a distribution (``buildbot``) or of a stdlib module."""

    source: str
    target: str
    internal: bool
    path: Path
    line: int

    def where(self) -> str:
        shown = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{shown}:{self.line}"


def discover(roots: Mapping[str, Path]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under the roots (a package is its ``__init__``)."""
    modules: dict[str, Path] = {}
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _known(modules: Mapping[str, Path], name: str) -> str | None:
    """The longest prefix of ``name`` that is a scanned module (``a.b.Name`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, modules: Mapping[str, Path]) -> Iterator[Import]:
    """Every import statement of ``module``, wherever it sits in the file."""
    path = modules[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    worker = module == WORKER_PACKAGE or module.startswith(WORKER_PACKAGE + ".")

    def absolute(name: str, line: int) -> Import:
        found = _known(modules, name)
        top = name.partition(".")[0]
        if found is None and worker and f"{WORKER_PACKAGE}.{top}" in modules:
            found = f"{WORKER_PACKAGE}.{top}"  # a sibling, imported top-level in the bundle
        if found is not None:
            return Import(module, found, True, path, line)
        return Import(module, top, False, path, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield absolute(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the top")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if alias.name != "*" and submodule in modules:
                    yield Import(module, submodule, True, path, node.lineno)
                else:
                    yield absolute(base, node.lineno)


def scan(roots: Mapping[str, Path]) -> list[Import]:
    modules = discover(roots)
    return [imp for module in sorted(modules) for imp in imports_of(module, modules)]


def graph(found: list[Import]) -> dict[str, dict[str, Import]]:
    """Internal edges, source -> {target: the first import making the edge}."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in found:
        if imp.internal:
            edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    return edges


def strongly_connected(edges: Mapping[str, Mapping[str, Import]]) -> list[list[str]]:
    """Tarjan's components of more than one module, or of one that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, {}):
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for node in nodes:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components)


def a_cycle(component: list[str], edges: Mapping[str, Mapping[str, Import]]) -> list[Import]:
    """A shortest cycle through the component's first module, as its import statements."""
    members = set(component)
    start = component[0]
    came_from: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target, imp in sorted(edges.get(node, {}).items()):
            if target not in members or target in came_from:
                continue
            came_from[target] = imp
            if target == start:
                cycle = [imp]
                while cycle[0].source != start:
                    cycle.insert(0, came_from[cycle[0].source])
                return cycle
            queue.append(target)
    raise AssertionError(f"no cycle through {start} in {component}")


def cycles(found: list[Import]) -> list[str]:
    edges = graph(found)
    reports = []
    for component in strongly_connected(edges):
        cycle = a_cycle(component, edges)
        chain = " -> ".join([cycle[0].source, *(imp.target for imp in cycle)])
        lines = ", ".join(imp.where() for imp in cycle)
        reports.append(f"import cycle {chain} ({lines}); modules in the knot: {component}")
    return reports


def layer(module: str) -> str:
    """``core``, ``render``, ``www``, ... or a top-level module name (``configurator``)."""
    if module == WORKER_PACKAGE or module.startswith(WORKER_PACKAGE + "."):
        return "build_utils"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_violations(found: list[Import]) -> list[str]:
    """Every import that breaks the layering, with its file and line."""
    out: list[str] = []

    def bad(imp: Import, why: str) -> None:
        out.append(f"{imp.where()}: {imp.source} imports {imp.target}: {why}")

    for imp in found:
        src, dst = layer(imp.source), layer(imp.target) if imp.internal else None
        if not imp.internal:
            if src in ("core", "build_utils") and imp.target not in STDLIB:
                bad(imp, f"{src} imports the standard library only")
            continue
        if src == "core" and dst != "core":
            bad(imp, "core imports nothing of the package but core")
        if src == "build_utils" and dst != "build_utils":
            bad(imp, "build_utils ships alone to workers: it imports only itself")
        if dst == "devtools" and src not in ("cli", "devtools"):
            bad(imp, "devtools serves the command line (and tests, benchmarks) only")
        if src == "changes" and dst not in ("core", "changes"):
            bad(imp, "changes imports only core")
        if src == "stacks" and dst not in ("core", "stacks"):
            bad(imp, "stacks (the stack tables) imports only core")
        if (
            src == "www"
            and dst not in ("core", "www", "stacks")
            and not _in(imp.target, WWW_MAY_USE_OF_CHANGES)
        ):
            bad(imp, "www imports only core, stacks, changes.protocol and changes.core")
        if src == "render" and dst in ("configurator", "cli"):
            bad(imp, "imports run core -> render -> configurator -> cli, never back")
        if src == "configurator" and dst == "cli":
            bad(imp, "imports run core -> render -> configurator -> cli, never back")
        if imp.target in SHIMS and imp.source not in SHIMS:
            bad(imp, "a compatibility shim for outside callers; import where the code lives")
    return list(dict.fromkeys(out))  # one line per statement, not per imported name


@pytest.fixture(scope="module")
def found() -> list[Import]:
    return scan(ROOTS)


def test_no_import_cycle(found: list[Import]) -> None:
    problems = cycles(found)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_layers(found: list[Import]) -> None:
    problems = layer_violations(found)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_the_scan_sees_the_whole_tree(found: list[Import]) -> None:
    sources = {imp.source for imp in found}
    assert {"anybox_ci.core", "anybox_ci.render.master", "anybox_ci.build_utils.summary"} <= set(
        discover(ROOTS)
    )
    assert any(s.startswith("anybox_ci.core.") for s in sources)
    assert any(
        imp.source == "anybox_ci.render.master" and imp.target == "anybox_ci.render.reporters"
        for imp in found
    )


# -- the scanner itself, on a made-up tree --------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"anybox_ci": root / "anybox_ci", WORKER_PACKAGE: root / "build_utils"}


def test_scanner_resolves_every_form_and_reports_cycles(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "anybox_ci/__init__.py": "",
            "anybox_ci/core/__init__.py": "",
            "anybox_ci/core/a.py": "from . import b\n",
            "anybox_ci/core/b.py": "def f():\n    from .c import X\n",
            "anybox_ci/core/c.py": "import anybox_ci.core.a\nimport twisted.internet\n",
            "anybox_ci/www/__init__.py": "from ..render import thing\nfrom anybox_ci.changes.protocol import P\n",
            "anybox_ci/changes/__init__.py": "",
            "anybox_ci/changes/protocol.py": "from anybox_ci.devtools import x\n",
            "anybox_ci/render/__init__.py": "import json\n",
            "anybox_ci/devtools/__init__.py": "",
            "build_utils/__init__.py": "",
            "build_utils/summary.py": "import argparse\n",
            "build_utils/fetch.py": (
                "try:\n    from .summary import S\nexcept ImportError:\n"
                "    from summary import S\nimport requests\n"
            ),
        },
    )
    found = scan(roots)
    edges = {(i.source, i.target) for i in found if i.internal}
    assert ("anybox_ci.core.a", "anybox_ci.core.b") in edges  # from . import module
    assert ("anybox_ci.core.b", "anybox_ci.core.c") in edges  # inside a function
    assert ("anybox_ci.core.c", "anybox_ci.core.a") in edges  # absolute
    assert ("anybox_ci.www", "anybox_ci.render") in edges  # a name of a package
    assert ("anybox_ci.build_utils.fetch", "anybox_ci.build_utils.summary") in edges

    (report,) = cycles(found)
    assert "anybox_ci.core.a -> anybox_ci.core.b -> anybox_ci.core.c -> anybox_ci.core.a" in report

    problems = "\n".join(layer_violations(found))
    assert "anybox_ci.core.c imports twisted: core imports the standard library only" in problems
    assert "anybox_ci.www imports anybox_ci.render: www imports only" in problems
    assert "anybox_ci.www imports anybox_ci.changes.protocol" not in problems
    assert "changes.protocol imports anybox_ci.devtools: devtools serves" in problems
    assert "changes.protocol imports anybox_ci.devtools: changes imports only core" in problems
    assert "fetch imports requests: build_utils imports the standard library only" in problems
    assert "imports json" not in problems and "imports argparse" not in problems
    assert "imports summary" not in problems  # a sibling imported top-level is the package
