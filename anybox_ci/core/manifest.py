"""Read manifests into :class:`~.model.Buildout` objects.

Loading never raises on bad input: every problem becomes a diagnostic, and a section
with an error is left out, so one broken buildout does not hide the others from
``anybox-ci check``. The configurator refuses a configuration with any error, which
keeps a running master on its previous configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from . import schema
from .diagnostics import Diagnostics, did_you_mean
from .inifile import IniFile, Section, read_ini
from .kinds import Requirements
from .lines import NAME_RE, parse_source, parse_watch
from .model import Buildout, Requirement, Watch
from .options import RawValue, Resolved, canonical_names, raw_options, resolve
from .stepset_catalogue import BUILTIN, KINDS, Catalogue, StepSetSpec

_MANIFEST_NAMES = canonical_names(schema.MANIFEST_OPTIONS)


@dataclass
class _ManifestSection:
    section: Section
    ini: IniFile


def _inherited_raw(
    name: str,
    sections: Mapping[str, _ManifestSection],
    diags: Diagnostics,
    cache: dict[str, dict[str, RawValue] | None],
    stack: tuple[str, ...] = (),
) -> dict[str, RawValue] | None:
    """The raw options of a section with its ``inherit`` chain applied."""
    if name in cache:
        return cache[name]
    entry = sections[name]
    own = raw_options(entry.section, entry.ini.defaults)
    parent_value = entry.section.options.get(schema.INHERIT.name)
    result: dict[str, RawValue] | None = own
    if parent_value is not None:
        parent = parent_value.text.strip()
        where = (entry.section.path, parent_value.line, name, schema.INHERIT.name)
        if parent in stack or parent == name:
            chain = " -> ".join((*stack, name, parent))
            diags.error(*where, f"inheritance loop: {chain}")
            result = None
        elif parent not in sections:
            diags.error(
                *where, f"no section {parent!r} to inherit from" + did_you_mean(parent, sections)
            )
            result = None
        else:
            base = _inherited_raw(parent, sections, diags, cache, (*stack, name))
            if base is None:
                result = None
            else:
                # own DEFAULT values must not override what the parent set explicitly
                result = dict(base)
                result.update(
                    {k: v for k, v in own.items() if k in entry.section.options or k not in base}
                )
    if result is not None:
        result.pop(schema.INHERIT.name, None)
    cache[name] = result
    return result


def load_manifests(
    paths: Sequence[Path],
    diags: Diagnostics,
    catalogue: Catalogue = BUILTIN,
) -> tuple[Buildout, ...]:
    """Read manifests; step sets are checked against ``catalogue`` (names and needs)."""
    sections: dict[str, _ManifestSection] = {}
    for path in paths:
        ini = read_ini(path, diags)
        if ini is None:
            continue
        for name, section in ini.sections.items():
            if name in sections:
                first = sections[name].section
                diags.error(
                    ini.path,
                    section.line,
                    name,
                    "",
                    f"section already defined in {first.path}:{first.line}",
                )
                continue
            sections[name] = _ManifestSection(section, ini)

    step_sets = {kind.name: catalogue.names(kind) for kind in KINDS}
    cache: dict[str, dict[str, RawValue] | None] = {}
    buildouts: list[Buildout] = []
    for name, entry in sections.items():
        raw = _inherited_raw(name, sections, diags, cache)
        if raw is None:
            continue
        buildout = _make_buildout(name, entry, raw, diags, step_sets)
        if buildout is not None:
            buildouts.append(buildout)
    return tuple(buildouts)


def _check_step_sets(
    name: str,
    where: tuple[str, int],
    raw: Mapping[str, RawValue],
    values: Resolved,
    step_sets: Mapping[str, Mapping[str, StepSetSpec]],
    diags: Diagnostics,
) -> bool:
    """Every named step set exists, and the options it needs have a value."""
    ok = True
    for kind in KINDS:
        known = step_sets[kind.name]
        written = raw.get(kind.name) or RawValue("", *where)
        for step_name in values.get(kind):
            line = written.line_of(step_name)
            spec = known.get(step_name)
            if spec is None:
                diags.error(
                    written.path,
                    line,
                    name,
                    kind.name,
                    f"unknown step set {step_name!r}" + did_you_mean(step_name, known),
                )
                ok = False
                continue
            if spec.name != step_name:
                diags.warning(
                    written.path,
                    line,
                    name,
                    kind.name,
                    f"deprecated step set name {step_name!r}, use {spec.name!r}",
                )
            for needed in spec.requires:
                if not values.get(needed) and needed.name not in values.failed:
                    diags.error(
                        written.path,
                        line,
                        name,
                        kind.name,
                        f"step set {spec.name!r} needs a value for {needed.name!r}",
                    )
                    ok = False
    return ok


def _requirements(reqs: Requirements) -> tuple[Requirement, ...]:
    return tuple(Requirement(cap, flt) for cap, flt in reqs)


def _check_build_for(
    raw: Mapping[str, RawValue], reqs: tuple[Requirement, ...], name: str, diags: Diagnostics
) -> bool:
    seen: set[str] = set()
    for req in reqs:
        if req.capability in seen:
            where = raw[schema.BUILD_FOR.name]
            diags.error(
                where.path,
                where.line,
                name,
                schema.BUILD_FOR.name,
                f"capability {req.capability!r} appears on two lines",
            )
            return False
        seen.add(req.capability)
    return True


def _make_buildout(
    name: str,
    entry: _ManifestSection,
    raw: Mapping[str, RawValue],
    diags: Diagnostics,
    step_sets: Mapping[str, Mapping[str, StepSetSpec]],
) -> Buildout | None:
    path, line = entry.section.path, entry.section.line
    if not NAME_RE.match(name):
        diags.error(
            path,
            line,
            name,
            "",
            "section name must start with a letter or digit and hold only "
            "letters, digits and . _ + -",
        )
        return None
    src_raw = raw.get(schema.BUILDOUT.name)
    if src_raw is None:
        diags.warning(path, line, name, "", f"no {schema.BUILDOUT.name!r} option: section ignored")
        return None
    values = resolve(raw, schema.MANIFEST_OPTIONS, name, diags, names=_MANIFEST_NAMES)
    ok = values.ok
    try:
        # relative to the manifest where the value is written, even when inherited
        source = parse_source(src_raw.text, Path(src_raw.path).parent)
    except ValueError as exc:
        diags.error(src_raw.path, src_raw.line, name, schema.BUILDOUT.name, str(exc))
        return None
    watches: list[Watch] = []
    for text in values.get(schema.WATCH):
        try:
            watches.append(parse_watch(text))
        except ValueError as exc:
            where = raw.get(schema.WATCH.name) or src_raw
            diags.error(where.path, where.line_of(text), name, schema.WATCH.name, str(exc))
            ok = False
    ok = _check_step_sets(name, (path, line), raw, values, step_sets, diags) and ok
    build_for = _requirements(values.get(schema.BUILD_FOR))
    ok = ok and _check_build_for(raw, build_for, name, diags)
    if not ok:
        return None
    return Buildout(
        name=name,
        manifest=path,
        line=line,
        source=source,
        options=MappingProxyType(values.values),
        build_for=build_for,
        build_requires=_requirements(values.get(schema.BUILD_REQUIRES)),
        watches=tuple(watches),
    )
