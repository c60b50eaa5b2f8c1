"""A small INI reader that remembers line numbers.

``configparser`` forgets where a value came from, and every diagnostic must say
``FILE:LINE``. The accepted syntax is configparser's (``key = value``,
``key: value``, indented continuation lines, ``#``/``;`` comments, ``[DEFAULT]``).

Inline comments are the ancestor's (Python 2's ``ConfigParser``): a ``;`` that follows a
space or a tab ends the value, as in ``tree-stable-timer = 300  ; seconds``. Unlike Python
2, this holds on continuation lines too, and not inside double quotes (``sh -c "a ; b"``).
A ``#`` inside a value is kept: URLs and buildout values use it (``...#egg=name``).
``%(name)s`` interpolation is done later, by :func:`anybox_ci.core.options.interpolate`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import Diagnostics

DEFAULT_SECTION = "DEFAULT"

_SECTION_RE = re.compile(r"^\[(?P<name>[^\]]*)\]\s*(?:[#;].*)?$")
_OPTION_RE = re.compile(r"^(?P<key>[^=:\s][^=:]*?)\s*[=:]\s*(?P<value>.*)$")


@dataclass(frozen=True)
class Value:
    text: str
    line: int
    #: the line number of each line of ``text`` (continuation lines included)
    lines: tuple[int, ...] = ()


@dataclass
class Section:
    name: str
    line: int
    path: str
    options: dict[str, Value] = field(default_factory=dict)


@dataclass
class IniFile:
    path: str
    sections: dict[str, Section]
    defaults: Section


def strip_inline_comment(text: str) -> str:
    """``text`` without a trailing `` ; comment`` (a ``;`` after a blank, outside ``"..."``)."""
    if ";" not in text:
        return text
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text


def parse_ini(text: str, path: str, diags: Diagnostics) -> IniFile:
    """Parse ``text``; syntax errors are reported to ``diags`` and the line skipped."""
    defaults = Section(DEFAULT_SECTION, 0, path)
    sections: dict[str, Section] = {}
    current: Section | None = None
    last_key: str | None = None
    # Universal newlines only, as files and configparser count lines: str.splitlines()
    # would also split on form feeds and other separators, shifting every line number.
    for lineno, line in enumerate(io.StringIO(text, newline=None), start=1):
        raw = line.rstrip("\n")
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if raw[0] in " \t" and current is not None and last_key is not None:
            stripped = strip_inline_comment(stripped)
            if not stripped:
                continue
            old = current.options[last_key]
            if old.text:
                joined, lines = f"{old.text}\n{stripped}", (*old.lines, lineno)
            else:
                joined, lines = stripped, (lineno,)
            current.options[last_key] = Value(joined, old.line, lines)
            continue
        match = _SECTION_RE.match(stripped)
        if match and raw[0] not in " \t":
            name = match.group("name").strip()
            last_key = None
            if not name:
                diags.error(path, lineno, "", "", "empty section name")
                current = None
            elif name == DEFAULT_SECTION:
                current = defaults
            elif name in sections:
                diags.error(
                    path,
                    lineno,
                    name,
                    "",
                    f"duplicate section (first at line {sections[name].line})",
                )
                current = None
            else:
                current = sections[name] = Section(name, lineno, path)
            continue
        match = _OPTION_RE.match(stripped)
        if match is None or raw[0] in " \t":
            diags.error(
                path,
                lineno,
                current.name if current else "",
                "",
                f"expected 'option = value', got {stripped[:40]!r}",
            )
            last_key = None
            continue
        if current is None:
            diags.error(path, lineno, "", "", "option outside of any section")
            last_key = None
            continue
        key = match.group("key").strip().lower()
        if key in current.options:
            diags.error(
                path,
                lineno,
                current.name,
                key,
                f"option given twice (first at line {current.options[key].line})",
            )
        value = strip_inline_comment(match.group("value").strip())
        current.options[key] = Value(value, lineno, (lineno,))
        last_key = key
    return IniFile(path, sections, defaults)


def read_ini(path: Path, diags: Diagnostics, display: str | None = None) -> IniFile | None:
    """Read and parse a file; an unreadable file is a diagnostic, not an exception."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        diags.error(shown, 0, "", "", "file not found")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        diags.error(shown, 0, "", "", f"cannot read: {exc}")
        return None
    return parse_ini(text, shown, diags)
