"""Value kinds: how the raw text of an INI option becomes a typed value.

A :class:`Kind` pairs a parser with the name the reference docs show. The parser raises
``ValueError`` with a one-line message, which the loaders turn into a diagnostic.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .versions import VersionFilter, parse_requirement

T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Kind(Generic[T_co]):
    """A value type: how to parse the raw INI text, and how the docs name it."""

    name: str
    parse: Callable[[str], T_co]


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {text.strip()!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text.strip()!r}") from None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text.strip()!r}")


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.replace(",", " ").split())


def _tags(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_words(text)))


def _argv(text: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise ValueError(f"cannot split into arguments: {exc}") from None
    if not argv:
        raise ValueError("empty command")
    return argv


def _argv_lines(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(_argv(line) for line in _lines(text))


def _requirements(text: str) -> tuple[tuple[str, VersionFilter], ...]:
    return tuple(parse_requirement(line) for line in _lines(text))


_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def _times(text: str) -> tuple[tuple[int, int], ...]:
    """``HH:MM`` values, several allowed (one nightly build each)."""
    result: list[tuple[int, int]] = []
    for word in text.split():
        match = _TIME_RE.match(word)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f"expected a time as HH:MM, got {word!r}")
        time = (int(match.group(1)), int(match.group(2)))
        if time in result:
            raise ValueError(f"time {word!r} given twice")
        result.append(time)
    return tuple(result)


def choice(*choices: str) -> Kind[str]:
    """One of a few words; the docs show them as ``a | b | c``."""

    def parse(text: str) -> str:
        value = text.strip()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return Kind(" | ".join(choices), parse)


def _str(text: str) -> str:
    return text.strip()


#: ``$(NAME)s``: the ancestor's spelling of a build property, so that its ConfigParser
#: would not interpolate it (it then turned ``$`` into ``%``)
_DOLLAR_PROPERTY = re.compile(r"\$\((?P<inner>[^()]*)\)s")
#: the selectors of Buildbot's ``Interpolate``; the ancestor's bare names were properties
_SELECTORS = ("prop:", "src:", "kw:", "secret:", "worker:")


def buildbot_text(text: str) -> str:
    """A value given to Buildbot's ``Interpolate``, the ancestor's ``$(name)s`` turned into
    ``%(prop:name)s`` (``$(name:-default)s`` keeps its default)."""

    def replace(match: re.Match[str]) -> str:
        inner = match["inner"]
        return f"%({inner})s" if inner.startswith(_SELECTORS) else f"%(prop:{inner})s"

    return _DOLLAR_PROPERTY.sub(replace, text.strip())


FORGE_TYPES = ("github", "gitlab", "gitea")

#: ``commit-status``: forge, API URL, name of the secret holding the token
CommitStatus = tuple[str, str, str]


def _commit_status(text: str) -> CommitStatus | None:
    """``FORGE API_URL TOKEN_SECRET``: statuses for one forge, token from a secret."""
    words = text.split()
    if not words:
        return None
    if len(words) != 3 or words[0] not in FORGE_TYPES:
        raise ValueError(
            f"expected 'FORGE API_URL TOKEN_SECRET' with FORGE in {', '.join(FORGE_TYPES)}, "
            f"got {text.strip()!r}"
        )
    if not words[1].startswith(("http://", "https://")):
        raise ValueError(f"the API URL must start with http:// or https://, got {words[1]!r}")
    return words[0], words[1], words[2].removeprefix("secret:")


Argv = tuple[str, ...]
Requirements = tuple[tuple[str, VersionFilter], ...]

STR: Kind[str] = Kind("text", _str)
#: text rendered by Buildbot at build time: ``%(prop:NAME)s`` allowed
BUILDBOT_TEXT: Kind[str] = Kind("text with build properties", buildbot_text)
INT: Kind[int] = Kind("integer", _int(0))
POSITIVE: Kind[int] = Kind("integer >= 1", _int(1))
FLOAT: Kind[float] = Kind("number", _float)
BOOL: Kind[bool] = Kind("boolean", _bool)
LINES: Kind[tuple[str, ...]] = Kind("lines", _lines)
WORDS: Kind[tuple[str, ...]] = Kind("words", _words)
#: words without repeats (Buildbot refuses a builder with the same tag twice)
TAGS: Kind[tuple[str, ...]] = Kind("words", _tags)
ARGV: Kind[Argv] = Kind("command", _argv)
ARGV_LINES: Kind[tuple[Argv, ...]] = Kind("commands, one per line", _argv_lines)
REQUIREMENTS: Kind[Requirements] = Kind("capability filters, one per line", _requirements)
TIMES: Kind[tuple[tuple[int, int], ...]] = Kind("HH:MM times", _times)
FORGE_STATUS: Kind[CommitStatus | None] = Kind("FORGE API_URL TOKEN_SECRET", _commit_status)
