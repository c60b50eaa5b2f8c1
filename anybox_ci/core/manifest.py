"""Read manifests into :class:`~.model.Buildout` objects.

Loading never raises on bad input: every problem becomes a diagnostic, and a section
with an error is left out, so one broken buildout does not hide the others from
``anybox-ci check``. What the master does with such a section is the configurator's
policy (see ``loader.leave_out_broken``).

The ancestor's dialect is read as its ``ConfigParser`` read it: ``%(name)s`` interpolation
over the section and ``[DEFAULT]``, where any key may be a variable; inline `` ;``
comments (in :mod:`.inifile`); a section without ``buildout`` whose watch lines are still
a change source; the buildout's own branch winning over a ``watch`` line on the same
repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from . import schema
from .diagnostics import Diagnostic, Diagnostics, did_you_mean
from .domains import check_members, is_domain_section, read_domain, warn_domain_options
from .inifile import IniFile, Section, read_ini
from .kinds import Requirements
from .lines import NAME_RE, parse_source, parse_watch
from .model import Buildout, Domain, Requirement, Watch, WatchSection
from .options import RawValue, Resolved, canonical_names, interpolate, raw_options, references
from .options import resolve as resolve_options
from .release_links import check_release_links
from .stepset_catalogue import BUILTIN, KINDS, Catalogue, StepSetSpec

_MANIFEST_NAMES = canonical_names(schema.MANIFEST_OPTIONS)


@dataclass
class _ManifestSection:
    section: Section
    ini: IniFile


@dataclass(frozen=True)
class ManifestSet:
    """Everything the manifests define."""

    buildouts: tuple[Buildout, ...]
    #: sections without ``buildout`` whose watch lines are a change source
    watch_sections: tuple[WatchSection, ...]
    #: the manifest files read, as diagnostics name them
    paths: tuple[str, ...]
    #: every section name they define
    sections: frozenset[str]
    #: sections left out only because the section they inherit from is broken, with why
    #: (``FILE:LINE: [section] inherit: ...``)
    silently_broken: Mapping[str, str] = field(default_factory=dict)
    #: ``[domain:NAME]`` sections whose members are all buildouts
    domains: tuple[Domain, ...] = ()


@dataclass
class _Raw:
    """One section's raw values with its inherit chain applied, and its variables."""

    values: dict[str, RawValue]
    #: names used in ``%(name)s`` somewhere in the chain: keys that are not options
    variables: frozenset[str]


def _own_raw(entry: _ManifestSection, name: str, diags: Diagnostics) -> _Raw:
    raw = raw_options(entry.section, entry.ini.defaults)
    variables = frozenset(ref for value in raw.values() for ref in references(value.text))
    return _Raw(interpolate(raw, name, diags), variables)


def _inherited_raw(
    name: str,
    sections: Mapping[str, _ManifestSection],
    diags: Diagnostics,
    cache: dict[str, _Raw | None],
    silent: dict[str, str],
    stack: tuple[str, ...] = (),
) -> _Raw | None:
    """The raw options of a section with its ``inherit`` chain applied."""
    if name in cache:
        return cache[name]
    entry = sections[name]
    own = _own_raw(entry, name, diags)
    parent_value = entry.section.options.get(schema.INHERIT.name)
    result: _Raw | None = own
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
            base = _inherited_raw(parent, sections, diags, cache, silent, (*stack, name))
            if base is None:
                # no error of its own: the parent's says why
                why = Diagnostic(*where, f"inherits from [{parent}], which is broken")
                silent.setdefault(name, str(why))
                result = None
            else:
                # own DEFAULT values must not override what the parent set explicitly
                values = dict(base.values)
                values.update(
                    {
                        k: v
                        for k, v in own.values.items()
                        if k in entry.section.options or k not in base.values
                    }
                )
                result = _Raw(values, own.variables | base.variables)
    if result is not None:
        result.values.pop(schema.INHERIT.name, None)
    cache[name] = result
    return result


def _is_removed(key: str) -> bool:
    return schema.removed_option(key) is not None


def _warn_default_variables(ini: IniFile, diags: Diagnostics) -> None:
    """A ``[DEFAULT]`` key that is no option is a variable; warn if it looks like a typo."""
    used = {
        ref
        for section in (ini.defaults, *ini.sections.values())
        for value in section.options.values()
        for ref in references(value.text)
    }
    for key, value in ini.defaults.options.items():
        if key in _MANIFEST_NAMES or _is_removed(key) or key in used:
            continue
        hint = did_you_mean(key, _MANIFEST_NAMES)
        if hint:
            diags.warning(
                ini.path,
                value.line,
                "DEFAULT",
                key,
                "not an option: kept as a variable for %(" + key + ")s" + hint,
            )


def read_manifests(
    paths: Sequence[Path],
    diags: Diagnostics,
    catalogue: Catalogue = BUILTIN,
) -> ManifestSet:
    """Read manifests; step sets are checked against ``catalogue`` (names and needs)."""
    sections: dict[str, _ManifestSection] = {}
    read_paths: list[str] = []
    for path in paths:
        ini = read_ini(path, diags)
        if ini is None:
            continue
        read_paths.append(ini.path)
        _warn_default_variables(ini, diags)
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
    parents = {
        value.text.strip()
        for entry in sections.values()
        if (value := entry.section.options.get(schema.INHERIT.name)) is not None
    }
    first_section_diag = len(diags.items)
    cache: dict[str, _Raw | None] = {}
    silent: dict[str, str] = {}
    buildouts: list[Buildout] = []
    watch_sections: list[WatchSection] = []
    domains: list[tuple[Domain, RawValue | None]] = []
    for name, entry in sections.items():
        if is_domain_section(name):
            domain = read_domain(name, entry.section, entry.ini.defaults, diags)
            if domain is not None:
                domains.append(domain)
            continue
        raw = _inherited_raw(name, sections, diags, cache, silent)
        if raw is None:
            continue
        made = _make_buildout(name, entry, raw, diags, step_sets, name in parents)
        if isinstance(made, Buildout):
            buildouts.append(made)
            warn_domain_options(name, entry.section, diags)
        elif made is not None:
            watch_sections.append(made)
    kept_domains = check_members(domains, buildouts, sections, diags, silent)
    check_release_links(buildouts, sections, diags, silent)
    diags.drop_repeated_warnings(first_section_diag)
    return ManifestSet(
        tuple(buildouts),
        tuple(watch_sections),
        tuple(read_paths),
        frozenset(sections),
        MappingProxyType(silent),
        kept_domains,
    )


def load_manifests(
    paths: Sequence[Path],
    diags: Diagnostics,
    catalogue: Catalogue = BUILTIN,
) -> tuple[Buildout, ...]:
    """The buildouts of :func:`read_manifests`."""
    return read_manifests(paths, diags, catalogue).buildouts


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
            # warnings are the written line's, whichever section inherits it
            label = written.written_in or name
            if spec.ignored:
                diags.warning(
                    written.path,
                    line,
                    label,
                    kind.name,
                    f"step set {step_name!r}: " + schema.ignored_message(spec.ignored),
                )
            elif spec.name != step_name:
                diags.warning(
                    written.path,
                    line,
                    label,
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
            anyof = spec.requires_any
            if anyof and not any(values.get(o) or o.name in values.failed for o in anyof):
                names = [repr(o.name) for o in anyof]
                diags.error(
                    written.path,
                    line,
                    name,
                    kind.name,
                    f"step set {spec.name!r} needs a value for "
                    + ", ".join(names[:-1])
                    + f" or {names[-1]}",
                )
                ok = False
    return ok


def _requirements(reqs: Requirements) -> tuple[Requirement, ...]:
    return tuple(Requirement(cap, flt) for cap, flt in reqs)


def _check_requirements(
    raw: Mapping[str, RawValue],
    build_for: tuple[Requirement, ...],
    build_requires: tuple[Requirement, ...],
    name: str,
    diags: Diagnostics,
) -> bool:
    ok = True
    seen: set[str] = set()
    for req in build_for:
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
    for req in build_requires:
        if req.filter.not_used:
            where = raw[schema.BUILD_REQUIRES.name]
            diags.error(
                where.path,
                where.line_of(str(req)),
                name,
                schema.BUILD_REQUIRES.name,
                f"{req}: 'not-used' only has a meaning in {schema.BUILD_FOR.name} "
                f"(one builder, whatever the {req.capability} version); here, remove the line",
            )
            ok = False
    return ok


def _known_raw(name: str, raw: _Raw) -> dict[str, RawValue]:
    """``raw`` without the keys that are variables, not options (as ConfigParser allowed)."""
    return {
        key: value
        for key, value in raw.values.items()
        if key in _MANIFEST_NAMES
        or _is_removed(key)
        or not (value.from_default or key in raw.variables)
    }


#: what a section without ``buildout`` reads
_WATCH_SECTION_OPTIONS = (schema.WATCH.name, schema.POLL.name)


def _watch_section(
    name: str,
    entry: _ManifestSection,
    raw: dict[str, RawValue],
    diags: Diagnostics,
    is_parent: bool,
) -> WatchSection | None:
    """A section without ``buildout``: a change source when it has watch lines."""
    path, line = entry.section.path, entry.section.line
    written = raw.get(schema.WATCH.name)
    if written is None or not schema.WATCH.kind.parse(written.text):
        diags.warning(path, line, name, "", f"no {schema.BUILDOUT.name!r} option: section ignored")
        return None
    if not is_parent:
        for key in entry.section.options:
            if key in _MANIFEST_NAMES and key not in (*_WATCH_SECTION_OPTIONS, schema.INHERIT.name):
                diags.warning(
                    path,
                    entry.section.options[key].line,
                    name,
                    key,
                    f"has no effect: a section without {schema.BUILDOUT.name!r} only watches",
                )
    wanted = {k: v for k, v in raw.items() if k in _WATCH_SECTION_OPTIONS}
    values = resolve_options(wanted, schema.MANIFEST_OPTIONS, name, diags, names=_MANIFEST_NAMES)
    watches = []
    for text in values.get(schema.WATCH):
        try:
            watches.append(parse_watch(text))
        except ValueError as exc:
            diags.error(written.path, written.line_of(text), name, schema.WATCH.name, str(exc))
            values.ok = False
    if not values.ok:
        return None
    return WatchSection(name, path, line, tuple(watches), values.get(schema.POLL))


def _ancestor_archive(
    name: str, src_raw: RawValue, values: Resolved, diags: Diagnostics
) -> str | None:
    """The ancestor's ``archive SUBDIR_PROP ARCHIVE_PROP FILE`` (an archive on the master)
    as ``archive URL FILE``, fetched from ``packaging.base-url``; None when not that form."""
    words = src_raw.text.split()
    positional = [w for w in words[1:] if "=" not in w]
    if not words or words[0] != "archive" or len(positional) != 3:
        return None
    subdir, archive, file = positional
    where = (src_raw.path, src_raw.line, name, schema.BUILDOUT.name)
    base_url = values.get(schema.PACKAGING_BASE_URL)
    if not base_url:
        diags.error(
            *where,
            f"the ancestor's 'archive SUBDIR_PROPERTY ARCHIVE_PROPERTY FILE' is fetched from "
            f"{schema.PACKAGING_BASE_URL.name!r} (the URL serving "
            f"{schema.PACKAGING_ROOT_DIR.name!r}): set it, or write 'archive URL FILE'",
        )
        return ""
    url = f"{base_url.rstrip('/')}/%(prop:{subdir})s/%(prop:{archive})s.tar.bz2"
    diags.warning(
        *where,
        f"the ancestor's archive form: the worker fetches {url}; write 'archive URL FILE' "
        "to say so",
    )
    return f"archive {url} {file}"


def _make_buildout(
    name: str,
    entry: _ManifestSection,
    inherited: _Raw,
    diags: Diagnostics,
    step_sets: Mapping[str, Mapping[str, StepSetSpec]],
    is_parent: bool = False,
) -> Buildout | WatchSection | None:
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
    raw = _known_raw(name, inherited)
    src_raw = raw.get(schema.BUILDOUT.name)
    if src_raw is None:
        return _watch_section(name, entry, raw, diags, is_parent)
    values = resolve_options(
        raw,
        schema.MANIFEST_OPTIONS,
        name,
        diags,
        names=_MANIFEST_NAMES,
        removed=schema.REMOVED_MANIFEST_OPTIONS,
    )
    ok = values.ok
    source_text = _ancestor_archive(name, src_raw, values, diags)
    if source_text == "":
        return None
    try:
        # relative to the manifest where the value is written, even when inherited
        source = parse_source(source_text or src_raw.text, Path(src_raw.path).parent)
    except ValueError as exc:
        diags.error(src_raw.path, src_raw.line, name, schema.BUILDOUT.name, str(exc))
        return None
    own = source.watch
    watches: list[Watch] = []
    for text in values.get(schema.WATCH):
        where = raw.get(schema.WATCH.name) or src_raw
        try:
            watch = parse_watch(text)
        except ValueError as exc:
            diags.error(where.path, where.line_of(text), name, schema.WATCH.name, str(exc))
            ok = False
            continue
        if own is not None and watch.url == own.url and watch.branch != own.branch:
            diags.warning(
                where.path,
                where.line_of(text),
                name,
                schema.WATCH.name,
                f"line ignored: the buildout's own branch {own.branch!r} of this repository "
                "is watched, and takes precedence (as in the ancestor)",
            )
            continue
        watches.append(watch)
    ok = _check_step_sets(name, (path, line), raw, values, step_sets, diags) and ok
    build_for = _requirements(values.get(schema.BUILD_FOR))
    build_requires = _requirements(values.get(schema.BUILD_REQUIRES))
    ok = ok and _check_requirements(raw, build_for, build_requires, name, diags)
    if not ok:
        return None
    return Buildout(
        name=name,
        manifest=path,
        line=line,
        source=source,
        options=MappingProxyType(values.values),
        build_for=tuple(r for r in build_for if not r.filter.not_used),
        build_requires=build_requires,
        watches=tuple(watches),
        not_used=tuple(r.capability for r in build_for if r.filter.not_used),
    )
