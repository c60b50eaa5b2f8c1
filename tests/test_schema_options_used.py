"""Every schema option is read by the code, or declared ignored: none is dead weight.

Code reads an option through its module constant, ``schema.NAME`` (e.g.
``buildout.get(schema.DB_STEPS)``), so a scan of the package source finds every reader.
An option no code reads must say why in ``ignored=``: ``check`` then warns where it is set
and the docs say it has no effect.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from anybox_ci.core import schema

PACKAGE = Path(schema.__file__).resolve().parent.parent
SCHEMA_FILE = Path(schema.__file__).resolve()
OPTIONS = [*schema.MANIFEST_OPTIONS.values(), *schema.WORKER_OPTIONS.values()]
_REFERENCE = re.compile(r"\bschema\.([A-Z][A-Z0-9_]*)\b")

#: modules that read options, and the option-like words they use in another meaning
OTHER_MEANINGS = {
    "core/plan.py": {"buildout"},  # the ``buildout`` builder property of the contract
    "core/capabilities.py": {"python", "password"},  # capability and offer key names
    "core/stepset_catalogue.py": {"test-command"},  # the step set of that name
    "configurator.py": {"poll"},  # the change_source mode
    "render/buildsteps.py": {"buildout"},  # output line exported as a property
    "render/factory.py": {"buildout", "python", "watch"},  # section, capability, script
    # Buildbot Worker arguments and the worker properties builds read
    "render/master.py": {"db_prefix", "priority", "max_builds", "notify_on_missing"},
    "render/prioritize.py": {"priority"},  # a build request's priority
}


@functools.cache
def _sources() -> dict[Path, str]:
    return {
        path: path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != SCHEMA_FILE and "__pycache__" not in path.parts
    }


@functools.cache
def _referenced() -> set[str]:
    return {name for text in _sources().values() for name in _REFERENCE.findall(text)}


def test_every_option_is_a_typed_module_constant() -> None:
    for option in OPTIONS:
        name = schema.constant_name(option)
        assert getattr(schema, name, None) is option, f"{option.name}: no schema.{name}"


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_option_is_read_or_declared_ignored(option: schema.Option[object]) -> None:
    read = schema.constant_name(option) in _referenced()
    if option.ignored:
        assert not read, f"{option.name} is read by the code: drop its ignored= reason"
    else:
        assert read, (
            f"no code reads schema.{schema.constant_name(option)} ({option.name}): "
            "use it, or declare ignored='why'"
        )


def test_references_name_real_options() -> None:
    """A ``schema.X`` that is not a schema attribute would fail at import time anyway;
    one that is an attribute but not an option is fine (tables, helpers)."""
    for name in _referenced():
        assert hasattr(schema, name), f"schema.{name} does not exist"


def test_no_option_name_spelled_as_a_string_in_the_reading_layers() -> None:
    """Option names live in schema.py only: core, render and the configurator use constants."""
    names = {n for o in OPTIONS for n in (o.name, *o.aliases)}
    found = []
    for path, text in _sources().items():
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(("core/", "render/", "configurator.py")):
            continue
        allowed = OTHER_MEANINGS.get(rel, set())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in names - allowed:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == []
