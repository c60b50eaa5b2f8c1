"""Generated reference docs: ``docs/reference/manifest.md`` and ``docs/reference/workers.md``.

Everything here is read from the code: the option schema (:mod:`anybox_ci.core.schema`), the
step-set registry (:data:`anybox_ci.render.stepsets.DEFAULT_STEP_SETS`) and the capability
registry (:data:`anybox_ci.core.capabilities.DEFAULT_CAPABILITIES`). The committed pages are
checked against a fresh rendering by ``anybox-ci docs --check`` and by the test suite, so
the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.capabilities import (
    DEFAULT_CAPABILITIES,
    CapabilityRegistry,
    CapabilitySpec,
    generic_spec,
)
from ..core.schema import (
    MANIFEST_OPTIONS,
    WORKER_OPTIONS,
    Option,
    reference_markdown,
)

if TYPE_CHECKING:
    from ..render.stepsets import StepSets

MANIFEST_PAGE = "manifest.md"
WORKERS_PAGE = "workers.md"
FIX_HINT = "run: anybox-ci docs"

MANIFEST_INTRO = """\
A manifest (`buildouts/MANIFEST.cfg` by default) has one INI section per buildout; the
section name is the buildout's name and the prefix of its builders' names. `[DEFAULT]`
values apply to every section, `inherit = SECTION` takes the options of another section
(chains allowed), and several manifests may be given to the configurator. Paths are
relative to the manifest's folder.

An option that is not listed here is an error (with a "did you mean" suggestion). An old
name still works, with a deprecation warning. Run `anybox-ci check` to validate a
manifest and `anybox-ci matrix` to see the builders it gives."""

WORKERS_INTRO = """\
Workers are read from `workers.cfg` (or the ancestor's `slaves.cfg` when there is no
`workers.cfg`) plus every `workers.d/*.cfg` fragment, with one INI section per worker;
the section name is the worker's name. A worker defined in two files is an error.

Any key that is not listed here becomes a worker property, available to builds as
`%(prop:KEY)s` (a key close to a known option gives a "did you mean" warning)."""


# ---------------------------------------------------------------- step sets


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _default_step_sets() -> StepSets:
    from ..render.stepsets import DEFAULT_STEP_SETS

    return DEFAULT_STEP_SETS


def step_sets_markdown(step_sets: StepSets) -> str:
    """Tables of the registered step sets, one per manifest option that names them."""
    out = [
        "## Step sets",
        "",
        "`post-dl-steps`, `db-steps` and `post-buildout-steps` list step sets by name, run "
        "in the order given. master.cfg can register its own (`StepSets.register`, passed "
        "to the configurator as `step_sets=`); the standard ones are:",
    ]
    for kind, funcs in sorted(step_sets.sets.items()):
        out += ["", f"### `{kind}`", ""]
        if not funcs:
            out.append("None registered by default.")
            continue
        out += ["| name | other names | what it does |", "|---|---|---|"]
        for name, func in sorted(funcs.items()):
            aliases = sorted(a for a, target in step_sets.aliases.items() if target == name)
            names = ", ".join(f"`{a}` (deprecated)" for a in aliases)
            what = _first_line(func) or (
                f"(undocumented: add a docstring to `{func.__module__}.{func.__qualname__}`)"
            )
            out.append(f"| `{name}` | {names} | {what.replace('|', chr(92) + '|')} |")
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- capabilities


#: a placeholder option key, to ask the registry what an undeclared option becomes
_PLACEHOLDER = "key"


def _capability_env(registry: CapabilityRegistry, name: str) -> str:
    spec = registry.get(name)
    parts = [f"`{key}=` sets `{var}`" for var, key in sorted(spec.env.items())]
    parts += [f"`{key}=` is prepended to `{var}`" for var, key in sorted(spec.prepend_env.items())]
    parts += [
        f"`{key}=` names a Buildbot secret whose value sets `{var}`"
        for var, key in sorted(spec.secret_env.items())
    ]
    other = registry.env_for(name, {_PLACEHOLDER: ""})
    if other:
        parts += [f"any other `KEY=` sets `{var}`" for var in sorted(other)]
    else:
        parts.append("other keys set nothing")
    return "; ".join(parts)


def capabilities_markdown(capabilities: Mapping[str, CapabilitySpec]) -> str:
    """The capability registry: builder-name abbreviation, version property, environment."""
    registry = CapabilityRegistry(capabilities)
    out = [
        "## Capabilities",
        "",
        "A `capability` line is `NAME [VERSION [KEY=VALUE ...]]`. When a cell runs on a worker, "
        "the worker's capability lines that the cell uses (its `build-for` versions and its "
        "`build-requires`) set the environment of the build steps from their options. "
        "Builder names use the abbreviation: `SECTION-pg15` for `build-for = postgresql` "
        "and version 15. master.cfg can add or replace capabilities with the configurator's "
        "`capabilities=` argument.",
        "",
        "| capability | abbreviation | version property | options and environment |",
        "|---|---|---|---|",
    ]
    for name in sorted(capabilities):
        spec = registry.get(name)
        out.append(
            f"| `{name}` | `{spec.abbrev}` | `{spec.version_prop}` | "
            f"{_capability_env(registry, name)} |"
        )
    generic = generic_spec("NAME")
    example = next(iter(registry.env_for(generic.name, {_PLACEHOLDER: ""})), "")
    out += [
        "",
        f"Any other capability name works too: for a capability `{generic.name}`, the "
        f"abbreviation is `{generic.abbrev}`, the version property is "
        f"`{generic.version_prop}`, and each `KEY=VALUE` option sets `{example}` (upper "
        "case; characters other than letters and digits become `_`).",
        "",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------- pages


def render(
    manifest_options: Mapping[str, Option] | None = None,
    worker_options: Mapping[str, Option] | None = None,
    step_sets: StepSets | None = None,
    capabilities: Mapping[str, CapabilitySpec] | None = None,
) -> dict[str, str]:
    """The reference pages by file name; defaults are the package's own tables."""
    manifest = reference_markdown(
        "Manifest reference",
        MANIFEST_INTRO,
        dict(MANIFEST_OPTIONS if manifest_options is None else manifest_options),
    )
    workers = reference_markdown(
        "Workers reference",
        WORKERS_INTRO,
        dict(WORKER_OPTIONS if worker_options is None else worker_options),
    )
    sets = step_sets if step_sets is not None else _default_step_sets()
    caps = DEFAULT_CAPABILITIES if capabilities is None else capabilities
    return {
        MANIFEST_PAGE: manifest + "\n" + step_sets_markdown(sets),
        WORKERS_PAGE: workers + "\n" + capabilities_markdown(caps),
    }


def generate(dest: Path) -> list[Path]:
    """Write the reference pages into ``dest`` (``docs/reference``); return their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in render().items():
        path = dest / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check(dest: Path) -> list[str]:
    """The pages under ``dest`` that are missing or differ from a fresh rendering."""
    stale = []
    for name, text in render().items():
        path = dest / name
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            stale.append(str(path))
    return stale


def default_dest() -> Path:
    """``docs/reference`` of the source checkout, else of the current directory."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "docs").is_dir():
        return checkout / "docs" / "reference"
    return Path("docs") / "reference"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="anybox-ci docs",
        description="Write the manifest and workers references (docs/reference/*.md).",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="folder of the reference pages (default: docs/reference of the checkout)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a page is missing or stale",
    )
    args = parser.parse_args(argv)
    dest: Path = args.dest if args.dest is not None else default_dest()
    if args.check:
        stale = check(dest)
        for name in stale:
            print(f"stale: {name}")
        if stale:
            print(FIX_HINT)
            return 1
        return 0
    for written in generate(dest):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
