"""From raw INI text to typed option values, with where each value was written.

Shared by manifests and workers files: unknown names get a "did you mean", old names a
deprecation warning, options the code ignores a "has no effect" warning, and a value
that does not parse an error at the exact line of a multi-line value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from .diagnostics import Diagnostics, did_you_mean
from .inifile import Section
from .schema import Option

T = TypeVar("T")


@dataclass(frozen=True)
class RawValue:
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


def raw_options(section: Section, defaults: Section) -> dict[str, RawValue]:
    """A section's raw values, over its file's ``[DEFAULT]`` values."""
    raw = {k: RawValue(v.text, defaults.path, v.line, v.lines) for k, v in defaults.options.items()}
    raw.update(
        {k: RawValue(v.text, section.path, v.line, v.lines) for k, v in section.options.items()}
    )
    return raw


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
) -> Resolved:
    """Parse known options, warn on old names and ignored options, default the rest.

    ``names`` is ``canonical_names(schema)``, computed once by a caller with many sections."""
    names = canonical_names(schema) if names is None else names
    result = Resolved(True, {})
    for key, value in raw.items():
        canonical = names.get(key)
        if canonical is None:
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
                value.path, value.line, section, key, f"deprecated option name, use {canonical!r}"
            )
            if canonical in raw:
                continue  # the new name wins when both are given
        opt = schema[canonical]
        if opt.ignored:
            diags.warning(value.path, value.line, section, key, f"has no effect: {opt.ignored}")
        parsed_ok, parsed = _parse_value(opt, value, section, key, diags)
        if parsed_ok:
            result.values[canonical] = parsed
        else:
            result.ok = False
            result.failed.add(canonical)
    for opt in schema.values():
        result.values.setdefault(opt.name, opt.default)
    return result
