"""From raw INI text to typed option values, with where each value was written.

Shared by manifests and workers files: unknown names get a "did you mean", old names a
deprecation warning, options the code ignores or that no longer exist an "ignored since"
warning, and a value that does not parse an error at the exact line of a multi-line value.
Manifests also get the ancestor's ``%(name)s`` interpolation (:func:`interpolate`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from .diagnostics import Diagnostics, did_you_mean
from .inifile import DEFAULT_SECTION, Section
from .schema import Option, Removed, ignored_message

T = TypeVar("T")


@dataclass(frozen=True)
class RawValue:
    """A raw option value with where it was written."""

    text: str
    path: str
    line: int
    lines: tuple[int, ...] = ()
    #: written in the file's ``[DEFAULT]`` section, not in the section itself
    from_default: bool = False
    #: the section whose line this is (``DEFAULT``, or a parent for an inherited value)
    written_in: str = ""

    def line_of(self, text: str) -> int:
        """The line where ``text``, one line of a multi-line value, was written."""
        for number, line in zip(self.lines, self.text.split("\n"), strict=False):
            if line.strip() == text.strip():
                return number
        return self.line


def raw_options(section: Section, defaults: Section) -> dict[str, RawValue]:
    """A section's raw values, over its file's ``[DEFAULT]`` values."""
    raw = {
        k: RawValue(v.text, defaults.path, v.line, v.lines, True, DEFAULT_SECTION)
        for k, v in defaults.options.items()
    }
    raw.update(
        {
            k: RawValue(v.text, section.path, v.line, v.lines, False, section.name)
            for k, v in section.options.items()
        }
    )
    return raw


# ---------------------------------------------------------------- interpolation

#: ``%%`` or ``%(name)s``; a name with a colon is Buildbot's (``%(prop:x)s``), left alone
_INTERPOLATION = re.compile(r"%%|%\((?P<name>[^()]*)\)s")
#: as Python's ConfigParser: deeper is a loop
MAX_INTERPOLATION_DEPTH = 10


def references(text: str) -> list[str]:
    """The names ``text`` refers to with ``%(name)s`` (lower case, Buildbot's excluded)."""
    if "%(" not in text:
        return []
    return [
        m["name"].lower()
        for m in _INTERPOLATION.finditer(text)
        if m["name"] is not None and ":" not in m["name"]
    ]


class _Missing(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _expand(text: str, raw: Mapping[str, RawValue]) -> str:
    """``text`` with its ``%(name)s`` replaced, recursively; raises _Missing or ValueError."""

    def substitute(match: re.Match[str]) -> str:
        name = match["name"]
        if name is None or ":" in name:
            return match[0]
        found = raw.get(name.lower())
        if found is None:
            raise _Missing(name.lower())
        return found.text

    value = text
    for _ in range(MAX_INTERPOLATION_DEPTH):
        if not references(value):
            return value.replace("%%", "%")
        value = _INTERPOLATION.sub(substitute, value)
    if references(value):
        raise ValueError(
            f"more than {MAX_INTERPOLATION_DEPTH} levels of %(name)s interpolation "
            "(does a value refer to itself?)"
        )
    return value.replace("%%", "%")


def interpolate(
    raw: Mapping[str, RawValue], section: str, diags: Diagnostics
) -> dict[str, RawValue]:
    """Python ConfigParser's interpolation, as the ancestor's manifests relied on it.

    ``%(name)s`` is the value of option ``name`` of the same section or of its file's
    ``[DEFAULT]`` (interpolated too), and ``%%`` a ``%`` in a value that uses such
    references; ``%(prop:x)s`` and the like are Buildbot's and stay. A reference to
    nothing is an error at the line that writes it; the value is then kept as written.
    """
    result: dict[str, RawValue] = {}
    for key, value in raw.items():
        if not references(value.text):
            result[key] = value
            continue
        try:
            result[key] = replace(value, text=_expand(value.text, raw))
        except _Missing as missing:
            written = f"%({missing.name})s"
            line = next(
                (
                    n
                    for n, t in zip(value.lines, value.text.split("\n"), strict=False)
                    if written in t.lower()
                ),
                value.line,
            )
            diags.error(
                value.path,
                line,
                section,
                key,
                f"{written} refers to no option of [{section}] or [DEFAULT]"
                + did_you_mean(missing.name, raw),
            )
            result[key] = value
        except ValueError as exc:
            diags.error(value.path, value.line, section, key, str(exc))
            result[key] = value
    return result


def canonical_names(schema: Mapping[str, Option[Any]]) -> dict[str, str]:
    """Every accepted name (old names included) -> the option's name."""
    names = {name: name for name in schema}
    for opt in schema.values():
        for alias in opt.aliases:
            names[alias] = opt.name
    return names


def _parse_value(
    opt: Option[Any], raw: RawValue, section: str, key: str, diags: Diagnostics
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


@dataclass
class Resolved:
    """The outcome of :func:`resolve`: typed values, defaults included."""

    ok: bool
    values: dict[str, Any]
    #: raw options that are not in the schema (only when they are allowed)
    unknown: dict[str, RawValue] = field(default_factory=dict)
    #: options whose value did not parse (already reported; they hold their default)
    failed: set[str] = field(default_factory=set)

    def get(self, option: Option[T]) -> T:
        return cast(T, self.values[option.name])


def resolve(
    raw: Mapping[str, RawValue],
    schema: Mapping[str, Option[Any]],
    section: str,
    diags: Diagnostics,
    *,
    names: Mapping[str, str] | None = None,
    unknown_ok: bool = False,
    removed: Sequence[Removed] = (),
) -> Resolved:
    """Parse known options, warn on old names and ignored options, default the rest.

    ``names`` is ``canonical_names(schema)``, computed once by a caller with many sections;
    ``removed`` options are accepted with a warning and dropped."""
    names = canonical_names(schema) if names is None else names
    result = Resolved(True, {})
    for key, value in raw.items():
        canonical = names.get(key)
        # a warning about a line of [DEFAULT] or of a parent is that line's, whoever reads it
        where = value.written_in or section
        if canonical is None:
            gone = next((r for r in removed if r.matches(key)), None)
            if gone is not None:
                diags.warning(value.path, value.line, where, key, ignored_message(gone.why))
                continue
            if unknown_ok:
                result.unknown[key] = value
                continue
            diags.error(
                value.path,
                value.line,
                section,
                key,
                "unknown option" + did_you_mean(key, list(names)),
            )
            result.ok = False
            continue
        if canonical != key:
            diags.warning(
                value.path, value.line, where, key, f"deprecated option name, use {canonical!r}"
            )
            if canonical in raw:
                continue  # the new name wins when both are given
        opt = schema[canonical]
        if opt.ignored:
            diags.warning(value.path, value.line, where, key, ignored_message(opt.ignored))
        parsed_ok, parsed = _parse_value(opt, value, section, key, diags)
        if parsed_ok:
            result.values[canonical] = parsed
        else:
            result.ok = False
            result.failed.add(canonical)
    for opt in schema.values():
        result.values.setdefault(opt.name, opt.default)
    return result
