"""Diagnostics: every bad input becomes one line ``FILE:LINE: [section] option: message``.

Collected rather than raised one at a time, so that ``anybox-ci check`` reports all problems
of a configuration in one run, and the master can turn the same list into config errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int
    section: str
    option: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        parts = [where + ":"]
        if self.severity is Severity.WARNING:
            parts.append("warning:")
        if self.section:
            parts.append(f"[{self.section}]")
        if self.option:
            parts.append(f"{self.option}:")
        parts.append(self.message)
        return " ".join(parts)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


@dataclass
class Diagnostics:
    """An accumulator passed down the loaders."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, path: str, line: int, section: str, option: str, message: str) -> None:
        self.items.append(Diagnostic(path, line, section, option, message, Severity.ERROR))

    def warning(self, path: str, line: int, section: str, option: str, message: str) -> None:
        self.items.append(Diagnostic(path, line, section, option, message, Severity.WARNING))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    def drop_repeated_warnings(self, start: int = 0) -> None:
        """Keep the first of identical warnings added since ``start`` (a ``[DEFAULT]`` line
        read by every section is one problem)."""
        seen: set[Diagnostic] = set()
        kept = self.items[:start]
        for diag in self.items[start:]:
            if not diag.is_error:
                if diag in seen:
                    continue
                seen.add(diag)
            kept.append(diag)
        self.items[:] = kept

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if not d.is_error]

    def __bool__(self) -> bool:
        return bool(self.items)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean X?)"`` or an empty string."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
