"""Typed, frozen objects read from manifests and workers files.

Loading never raises on bad input: every problem becomes a :class:`Diagnostic`, and a
section with an error is left out, so one broken buildout does not hide the others
from ``anybox-ci check``. The configurator refuses to load a configuration with any
error, which keeps a running master on its previous configuration.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .diagnostics import Diagnostics, did_you_mean
from .inifile import IniFile, Section, Value, read_ini
from .schema import MANIFEST_OPTIONS, WORKER_OPTIONS, Option
from .vcs import VCS_NAMES, branch_error
from .versions import Version, VersionFilter

SOURCE_TYPES = ("standalone", "git", "hg", "bzr", "gittag", "hgtag", "archive")
SECRET_PREFIX = "secret:"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: Buildbot's own rule for worker names (``buildbot.util.identifiers.ident_re``)
_WORKER_NAME_RE = re.compile("^[a-zA-Z\u00a0-\U0010ffff_-][a-zA-Z0-9\u00a0-\U0010ffff_-]*$")
_RESERVED_WORKER_NAMES = ("debug", "change", "status")
_MAX_WORKER_NAME = 50


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Requirement:
    capability: str
    filter: VersionFilter

    def __str__(self) -> str:
        text = str(self.filter)
        return f"{self.capability} {text}" if text else self.capability


@dataclass(frozen=True)
class Watch:
    vcs: str
    url: str
    branch: str = ""

    def __str__(self) -> str:
        return " ".join(p for p in (self.vcs, self.url, self.branch) if p)


@dataclass(frozen=True)
class BuildoutSource:
    """Where a buildout comes from; ``path`` is master-side for ``standalone``."""

    type: str
    file: str
    url: str = ""
    branch: str = ""
    subdir: str = ""
    path: Path | None = None

    @property
    def watch(self) -> Watch | None:
        if self.type in VCS_NAMES:
            return Watch(self.type, self.url, self.branch)
        return None

    def __str__(self) -> str:
        parts = [self.type, self.url, self.branch, self.file]
        if self.subdir:
            parts.append(f"subdir={self.subdir}")
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Buildout:
    name: str
    manifest: str
    line: int
    source: BuildoutSource
    options: Mapping[str, Any]
    build_for: tuple[Requirement, ...]
    build_requires: tuple[Requirement, ...]
    watches: tuple[Watch, ...]

    def opt(self, name: str) -> Any:
        return self.options[name]

    @property
    def all_watches(self) -> tuple[Watch, ...]:
        """Watch lines plus the buildout's own repository, without duplicates."""
        own = self.source.watch
        result = list(self.watches)
        if own is not None and own not in result:
            result.insert(0, own)
        return tuple(result)


@dataclass(frozen=True)
class Offer:
    """One capability line of a worker."""

    name: str
    version: Version | None
    options: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.name] + ([str(self.version)] if self.version else [])
        parts += [f"{k}={v}" for k, v in sorted(self.options.items())]
        return " ".join(parts)


@dataclass(frozen=True)
class Password:
    """A worker password: a Buildbot secret's name, or a literal kept out of repr()."""

    secret: str = ""
    literal: str = field(default="", repr=False)


@dataclass(frozen=True)
class WorkerDef:
    name: str
    path: str
    line: int
    password: Password
    offers: tuple[Offer, ...]
    max_builds: int | None
    notify_on_missing: tuple[str, ...]
    priority: float
    build_only_if_requires: tuple[str, ...]
    db_prefix: str
    properties: Mapping[str, str]

    def offered(self, capability: str) -> tuple[Offer, ...]:
        return tuple(o for o in self.offers if o.name == capability)


@dataclass(frozen=True)
class Config:
    buildouts: tuple[Buildout, ...]
    workers: tuple[WorkerDef, ...]


# ---------------------------------------------------------------- option resolution


def _canonical(options: Mapping[str, Option]) -> dict[str, str]:
    names = {name: name for name in options}
    for opt in options.values():
        for alias in opt.aliases:
            names[alias] = opt.name
    return names


_MANIFEST_NAMES = _canonical(MANIFEST_OPTIONS)
_WORKER_NAMES = _canonical(WORKER_OPTIONS)


@dataclass(frozen=True)
class _Raw:
    """A raw option value with where it was written."""

    text: str
    path: str
    line: int
    lines: tuple[int, ...] = ()

    def line_of(self, text: str) -> int:
        """The line where ``text``, one line of a multi-line value, was written."""
        for number, line in zip(self.lines, self.text.split("\n"), strict=False):
            if line.strip() == text.strip():
                return number
        return self.line


def _raw_options(section: Section, defaults: Section) -> dict[str, _Raw]:
    raw = {k: _Raw(v.text, defaults.path, v.line, v.lines) for k, v in defaults.options.items()}
    raw.update({k: _Raw(v.text, section.path, v.line, v.lines) for k, v in section.options.items()})
    return raw


def _parse_value(
    opt: Option, raw: _Raw, section: str, key: str, diags: Diagnostics
) -> tuple[bool, Any]:
    try:
        return True, opt.kind.parse(raw.text)
    except ValueError as exc:
        line = raw.line
        # in a multi-line value, point at the first line that is wrong on its own
        for number, text in zip(raw.lines, raw.text.split("\n"), strict=False):
            try:
                opt.kind.parse(text)
            except ValueError:
                line = number
                break
        diags.error(raw.path, line, section, key, str(exc))
        return False, None


def _resolve(
    raw: Mapping[str, _Raw],
    schema: Mapping[str, Option],
    names: Mapping[str, str],
    section: str,
    diags: Diagnostics,
    *,
    unknown_ok: bool = False,
) -> tuple[bool, dict[str, Any], dict[str, _Raw]]:
    """Parse known options, warn on old names; return (ok, values, unknown raw options)."""
    ok = True
    values: dict[str, Any] = {}
    unknown: dict[str, _Raw] = {}
    for key, value in raw.items():
        canonical = names.get(key)
        if canonical is None:
            if unknown_ok:
                unknown[key] = value
                continue
            diags.error(
                value.path,
                value.line,
                section,
                key,
                "unknown option" + did_you_mean(key, list(names)),
            )
            ok = False
            continue
        if canonical != key:
            diags.warning(
                value.path,
                value.line,
                section,
                key,
                f"deprecated option name, use {canonical!r}",
            )
            if canonical in raw:
                continue  # the new name wins when both are given
        parsed_ok, parsed = _parse_value(schema[canonical], value, section, key, diags)
        ok = ok and parsed_ok
        if parsed_ok:
            values[canonical] = parsed
    for opt in schema.values():
        values.setdefault(opt.name, opt.default)
    return ok, values, unknown


# ---------------------------------------------------------------- manifests


def _split_kw(words: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    positional = [w for w in words if "=" not in w]
    keywords = dict(w.split("=", 1) for w in words if "=" in w)
    return positional, keywords


_SOURCE_ARITY = {
    "standalone": ("FILE",),
    "git": ("URL", "BRANCH", "FILE"),
    "hg": ("URL", "BRANCH", "FILE"),
    "bzr": ("URL", "FILE"),
    "gittag": ("URL", "FILE"),
    "hgtag": ("URL", "FILE"),
    "archive": ("URL", "FILE"),
}


def parse_source(text: str, manifest_dir: Path) -> BuildoutSource:
    """Parse a ``buildout =`` value; raises ValueError with a one-line message."""
    words = text.split()
    if not words:
        raise ValueError("empty value")
    kind, rest = words[0], words[1:]
    if kind not in _SOURCE_ARITY:
        raise ValueError(
            f"unknown buildout type {kind!r}"
            + did_you_mean(kind, SOURCE_TYPES)
            + f"; expected one of {', '.join(SOURCE_TYPES)}"
        )
    positional, keywords = _split_kw(rest)
    expected = _SOURCE_ARITY[kind]
    if len(positional) != len(expected):
        raise ValueError(f"expected '{kind} {' '.join(expected)}', got {text.strip()!r}")
    bad_kw = set(keywords) - {"subdir"}
    if bad_kw:
        raise ValueError(f"unknown keyword {sorted(bad_kw)[0]!r} (only subdir= is allowed)")
    args = dict(zip(expected, positional, strict=True))
    subdir = keywords.get("subdir", "")
    if subdir and (subdir.startswith("/") or ".." in Path(subdir).parts):
        raise ValueError(f"subdir must be a relative path inside the checkout, got {subdir!r}")
    branch = args.get("BRANCH", "")
    if branch and (why := branch_error(branch)):
        raise ValueError(why)
    if kind == "standalone":
        try:
            path = (manifest_dir / args["FILE"]).resolve()
            found = path.is_file()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"cannot use buildout file {args['FILE']!r}: {reason}") from None
        if not found:
            raise ValueError(f"buildout file {args['FILE']!r} not found in {manifest_dir}")
        return BuildoutSource(kind, path.name, path=path)
    return BuildoutSource(kind, args["FILE"], url=args["URL"], branch=branch, subdir=subdir)


def parse_watch(line: str) -> Watch:
    words = line.split()
    if not words or words[0] not in VCS_NAMES:
        raise ValueError(f"expected 'git URL BRANCH', 'hg URL BRANCH' or 'bzr URL', got {line!r}")
    want = 2 if words[0] == "bzr" else 3
    if len(words) != want:
        raise ValueError(f"expected {want - 1} words after {words[0]!r}, got {line!r}")
    branch = words[2] if want == 3 else ""
    if branch and (why := branch_error(branch)):
        raise ValueError(why)
    return Watch(words[0], words[1], branch)


@dataclass
class _ManifestSection:
    section: Section
    ini: IniFile


def _inherited_raw(
    name: str,
    sections: Mapping[str, _ManifestSection],
    diags: Diagnostics,
    cache: dict[str, dict[str, _Raw] | None],
    stack: tuple[str, ...] = (),
) -> dict[str, _Raw] | None:
    """The raw options of a section with its ``inherit`` chain applied."""
    if name in cache:
        return cache[name]
    entry = sections[name]
    own = _raw_options(entry.section, entry.ini.defaults)
    parent_value = entry.section.options.get("inherit")
    result: dict[str, _Raw] | None = own
    if parent_value is not None:
        parent = parent_value.text.strip()
        where = (entry.section.path, parent_value.line, name, "inherit")
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
        result.pop("inherit", None)
    cache[name] = result
    return result


def _requirements(values: Mapping[str, Any], key: str) -> tuple[Requirement, ...]:
    return tuple(Requirement(cap, flt) for cap, flt in values[key])


def _check_build_for(
    raw: Mapping[str, _Raw], reqs: tuple[Requirement, ...], name: str, diags: Diagnostics
) -> bool:
    seen: set[str] = set()
    for req in reqs:
        if req.capability in seen:
            where = raw["build-for"]
            diags.error(
                where.path,
                where.line,
                name,
                "build-for",
                f"capability {req.capability!r} appears on two lines",
            )
            return False
        seen.add(req.capability)
    return True


def load_manifests(
    paths: Sequence[Path],
    diags: Diagnostics,
    step_sets: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Buildout, ...]:
    """Read manifests; ``step_sets`` maps an option (``db-steps``...) to the known names."""
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

    cache: dict[str, dict[str, _Raw] | None] = {}
    buildouts: list[Buildout] = []
    for name, entry in sections.items():
        raw = _inherited_raw(name, sections, diags, cache)
        if raw is None:
            continue
        buildout = _make_buildout(name, entry, raw, diags, step_sets or {})
        if buildout is not None:
            buildouts.append(buildout)
    return tuple(buildouts)


def _make_buildout(
    name: str,
    entry: _ManifestSection,
    raw: Mapping[str, _Raw],
    diags: Diagnostics,
    step_sets: Mapping[str, Mapping[str, str]],
) -> Buildout | None:
    path, line = entry.section.path, entry.section.line
    if not _NAME_RE.match(name):
        diags.error(
            path,
            line,
            name,
            "",
            "section name must start with a letter or digit and hold only "
            "letters, digits and . _ + -",
        )
        return None
    if "buildout" not in raw:
        diags.warning(path, line, name, "", "no 'buildout' option: section ignored")
        return None
    ok, values, _ = _resolve(raw, MANIFEST_OPTIONS, _MANIFEST_NAMES, name, diags)
    src_raw = raw["buildout"]
    try:
        # relative to the manifest where the value is written, even when inherited
        source = parse_source(src_raw.text, Path(src_raw.path).parent)
    except ValueError as exc:
        diags.error(src_raw.path, src_raw.line, name, "buildout", str(exc))
        return None
    watches = []
    for text in values["watch"]:
        try:
            watches.append(parse_watch(text))
        except ValueError as exc:
            where = raw.get("watch") or src_raw
            diags.error(where.path, where.line_of(text), name, "watch", str(exc))
            ok = False
    for option, known in step_sets.items():
        for step_name in values.get(option, ()):
            where = raw.get(option) or _Raw("", path, line)
            if known.get(step_name, step_name) != step_name:
                diags.warning(
                    where.path,
                    where.line_of(step_name),
                    name,
                    option,
                    f"deprecated step set name {step_name!r}, use {known[step_name]!r}",
                )
            if step_name not in known:
                diags.error(
                    where.path,
                    where.line_of(step_name),
                    name,
                    option,
                    f"unknown step set {step_name!r}" + did_you_mean(step_name, known),
                )
                ok = False
    build_for = _requirements(values, "build-for")
    ok = ok and _check_build_for(raw, build_for, name, diags)
    if not ok:
        return None
    return Buildout(
        name=name,
        manifest=path,
        line=line,
        source=source,
        options=_frozen(values),
        build_for=build_for,
        build_requires=_requirements(values, "build-requires"),
        watches=tuple(watches),
    )


# ---------------------------------------------------------------- workers


def parse_offer(line: str) -> Offer:
    """Parse ``NAME [VERSION [key=value ...]]``; raises ValueError."""
    words = line.split()
    if not words:
        raise ValueError("empty capability line")
    name, rest = words[0], words[1:]
    if not _NAME_RE.match(name) or "=" in name:
        raise ValueError(f"invalid capability name {name!r}")
    version = None
    if rest and "=" not in rest[0]:
        version = Version.parse(rest.pop(0))
    options: dict[str, str] = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value after the version, got {word!r}")
        if key in options:
            raise ValueError(f"key {key!r} given twice")
        options[key] = value
    return Offer(name, version, _frozen(options))


def load_workers(paths: Sequence[Path], diags: Diagnostics) -> tuple[WorkerDef, ...]:
    seen: dict[str, WorkerDef | tuple[str, int]] = {}
    workers: list[WorkerDef] = []
    for path in paths:
        ini = read_ini(path, diags)
        if ini is None:
            continue
        for name, section in ini.sections.items():
            if name in seen:
                first = seen[name]
                where = (
                    f"{first.path}:{first.line}"
                    if isinstance(first, WorkerDef)
                    else f"{first[0]}:{first[1]}"
                )
                diags.error(ini.path, section.line, name, "", f"worker already defined in {where}")
                continue
            seen[name] = (ini.path, section.line)
            worker = _make_worker(section, ini, diags)
            if worker is not None:
                seen[name] = worker
                workers.append(worker)
    return tuple(workers)


def _make_worker(section: Section, ini: IniFile, diags: Diagnostics) -> WorkerDef | None:
    name, path = section.name, ini.path
    why = ""
    if not _WORKER_NAME_RE.match(name):
        why = "invalid worker name: use letters, digits, '_' and '-', not starting with a digit"
    elif name in _RESERVED_WORKER_NAMES:
        why = "worker name reserved by Buildbot"
    elif len(name) > _MAX_WORKER_NAME:
        why = f"worker name longer than {_MAX_WORKER_NAME} characters"
    if why:
        diags.error(path, section.line, name, "", why)
        return None
    raw = _raw_options(section, ini.defaults)
    ok, values, unknown = _resolve(raw, WORKER_OPTIONS, _WORKER_NAMES, name, diags, unknown_ok=True)
    for key, value in unknown.items():
        hint = did_you_mean(key, list(_WORKER_NAMES))
        if hint:
            diags.warning(
                value.path,
                value.line,
                name,
                key,
                "unknown option, kept as a worker property" + hint,
            )
    password_text = values["password"]
    if not password_text:
        diags.error(path, section.line, name, "password", "missing required option")
        ok = False
        password = Password()
    elif password_text.startswith(SECRET_PREFIX):
        password = Password(secret=password_text[len(SECRET_PREFIX) :].strip())
        if not password.secret:
            where = raw.get("password") or raw["passwd"]
            diags.error(
                where.path, where.line, name, "password", "missing secret name after 'secret:'"
            )
            ok = False
    else:
        where = raw.get("password") or raw["passwd"]
        diags.warning(
            where.path,
            where.line,
            name,
            "password",
            "password written in clear; prefer 'secret:NAME'",
        )
        password = Password(literal=password_text)
    offers: list[Offer] = []
    cap_raw = raw.get("capability")
    for line in values["capability"]:
        try:
            offers.append(parse_offer(line))
        except ValueError as exc:
            assert cap_raw is not None
            diags.error(
                cap_raw.path, cap_raw.line_of(line), name, "capability", f"{exc} in {line!r}"
            )
            ok = False
    if not ok:
        return None
    return WorkerDef(
        name=name,
        path=path,
        line=section.line,
        password=password,
        offers=tuple(offers),
        max_builds=values["max_builds"],
        notify_on_missing=values["notify_on_missing"],
        priority=values["priority"],
        build_only_if_requires=values["build-only-if-requires"],
        db_prefix=values["db_prefix"],
        properties=_frozen({k: v.text for k, v in unknown.items()}),
    )


# ---------------------------------------------------------------- master directory


def master_paths(
    master_dir: Path,
    manifests: Iterable[str | Path] | None = None,
    workers: Iterable[str | Path] | None = None,
) -> tuple[list[Path], list[Path]]:
    """The contract's layout: buildouts/MANIFEST.cfg, workers.cfg and workers.d/*.cfg."""
    manifest_paths = [master_dir / p for p in (manifests or ["buildouts/MANIFEST.cfg"])]
    if workers is None:
        worker_paths = []
        for candidate in ("workers.cfg", "slaves.cfg"):
            if (master_dir / candidate).exists():
                worker_paths.append(master_dir / candidate)
                break
        else:
            worker_paths.append(master_dir / "workers.cfg")
        worker_paths += sorted((master_dir / "workers.d").glob("*.cfg"))
    else:
        worker_paths = [master_dir / p for p in workers]
    return manifest_paths, worker_paths


def load_config(
    manifest_paths: Sequence[Path],
    worker_paths: Sequence[Path],
    diags: Diagnostics,
    step_sets: Mapping[str, Mapping[str, str]] | None = None,
) -> Config:
    return Config(
        buildouts=load_manifests(manifest_paths, diags, step_sets),
        workers=load_workers(worker_paths, diags),
    )


__all__ = [
    "Buildout",
    "BuildoutSource",
    "Config",
    "Offer",
    "Password",
    "Requirement",
    "Value",
    "Watch",
    "WorkerDef",
    "load_config",
    "load_manifests",
    "load_workers",
    "master_paths",
    "parse_offer",
    "parse_source",
    "parse_watch",
]
