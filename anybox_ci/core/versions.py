"""Versions and version filters, as written in ``build-for`` and ``build-requires`` lines.

The language is the ancestor's (``postgresql >= 13 < 16 OR == 9.6``, with ``-devel`` sorting
below its release, local suffixes such as ``8.4-special``, and ``postgresql not-used``), plus
``!=``. Every malformed input raises ``ValueError`` with a one-line message naming the
offending token, so that the loaders can turn it into a diagnostic as is.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import total_ordering

__all__ = ["NOT_USED", "Criterion", "Version", "VersionFilter", "parse_requirement"]

#: the filter of a ``build-for`` line whose capability the build does not use (the ancestor's
#: ``postgresql not-used``): one builder, no version constraint, the version property says so
NOT_USED = "not-used"

# Pre-release spellings (PostgreSQL's ``17devel``/``17beta1``/``17rc1``, Python's ``3.13.0a1``)
# mapped to a canonical phase; the rank orders phases below the release itself.
_PHASES: dict[str, str] = {
    "dev": "dev",
    "devel": "dev",
    "a": "a",
    "alpha": "a",
    "b": "b",
    "beta": "b",
    "c": "rc",
    "rc": "rc",
}
_PHASE_RANK: dict[str, int] = {"dev": 0, "a": 1, "b": 2, "rc": 3}
_RELEASE_RANK = 4
#: a local variant (``8.4-special``, a patched build) sorts right after its release
_LOCAL_RANK = 5

_VERSION_RE = re.compile(
    r"(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?:[-._]?(?P<phase>devel|dev|alpha|beta|rc|a|b|c)(?P<number>[0-9]*)"
    r"|-(?P<local>[A-Za-z][A-Za-z0-9_]*))?",
    re.IGNORECASE | re.ASCII,
)
# Longer numbers are typos, and int() would fail on huge ones with an unfriendly message.
_MAX_DIGITS = 18


def _version_error(text: str) -> str:
    if not text:
        return "empty version"
    return (
        f"invalid version {text!r} (expected e.g. '13', '9.6', '17-devel', '17rc1' "
        "or '8.4-special')"
    )


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A dotted numeric version with an optional pre-release or local suffix.

    Compared by value, not by spelling: ``13.0 == 13`` and ``17-devel < 17beta1 < 17rc1 < 17``.
    Any other suffix after a dash is a local variant, as the ancestor allowed
    (``8.4-special``): equal only to the same variant, above its release and below the next
    one. ``str()`` keeps the spelling the user wrote, so messages and builder names match the
    input.
    """

    text: str
    release: tuple[int, ...] = field(init=False)
    pre: tuple[str, int] | None = field(init=False)
    #: the local suffix, lower case (``special`` for ``8.4-special``), or ""
    local: str = field(init=False)

    def __post_init__(self) -> None:
        text = self.text.strip()
        match = _VERSION_RE.fullmatch(text)
        if match is None:
            raise ValueError(_version_error(text))
        numbers = match["release"].split(".")
        if match["number"]:
            numbers.append(match["number"])
        if any(len(n) > _MAX_DIGITS for n in numbers):
            raise ValueError(f"invalid version {text!r}: number too large")
        release = tuple(int(n) for n in match["release"].split("."))
        pre = None
        if match["phase"]:
            pre = (_PHASES[match["phase"].lower()], int(match["number"] or 0))
        # Frozen dataclass: derived fields can only be set this way.
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "release", release)
        object.__setattr__(self, "pre", pre)
        object.__setattr__(self, "local", (match["local"] or "").lower())

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text``; raise ``ValueError`` with a short message if it is not a version."""
        return cls(text)

    @property
    def major(self) -> int:
        """First component: what PostgreSQL clusters and builder names are keyed on."""
        return self.release[0]

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None

    @property
    def _key(self) -> tuple[tuple[int, ...], int, int, str]:
        release = self.release
        while release and release[-1] == 0:
            release = release[:-1]
        if self.local:
            return release, _LOCAL_RANK, 0, self.local
        if self.pre is None:
            return release, _RELEASE_RANK, 0, ""
        return release, _PHASE_RANK[self.pre[0]], self.pre[1], ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


_OPERATORS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
# Common slips, answered with a "did you mean" like the other diagnostics.
_OPERATOR_HINTS: dict[str, str] = {
    "=>": ">=",
    "=<": "<=",
    "=": "==",
    "===": "==",
    "<>": "!=",
    "!": "!=",
    "=!": "!=",
    "!==": "!=",
}


@dataclass(frozen=True)
class Criterion:
    """One comparison, such as ``>= 13``."""

    op: str
    version: Version

    def __post_init__(self) -> None:
        if self.op not in _OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}")

    def match(self, version: Version) -> bool:
        return _OPERATORS[self.op](version, self.version)

    def __str__(self) -> str:
        return f"{self.op} {self.version}"


# Operator characters include a few that no operator uses, so that ``~= 13`` is reported
# as an unknown operator rather than as a strange version.
_TOKEN_RE = re.compile(r"(?P<op>[<>=!~^]+)|(?P<word>[^\s<>=!~^]+)")


def _unknown_operator(op: str, context: str) -> str:
    message = f"unknown operator {op!r} in {context!r}"
    if op in _OPERATOR_HINTS:
        message += f" (did you mean {_OPERATOR_HINTS[op]!r}?)"
    return message


def _parse_version_token(token: str, context: str) -> Version:
    try:
        return Version(token)
    except ValueError as exc:
        raise ValueError(f"{exc} in {context!r}") from None


@dataclass(frozen=True)
class VersionFilter:
    """Alternatives separated by ``OR``, each a conjunction of criteria.

    No alternative at all means "any version": that is what an empty filter text gives.
    Equality is structural, and ``VersionFilter.parse(str(f)) == f`` always holds.
    """

    alternatives: tuple[tuple[Criterion, ...], ...] = ()
    #: ``not-used``: the capability does not matter to the build (see :data:`NOT_USED`)
    not_used: bool = False

    def __post_init__(self) -> None:
        alternatives = tuple(tuple(alt) for alt in self.alternatives)
        if any(not alt for alt in alternatives):
            # It could not be written back: "OR" needs a criterion on each side.
            raise ValueError("empty alternative in version filter")
        if self.not_used and alternatives:
            raise ValueError(f"{NOT_USED!r} cannot be combined with criteria")
        object.__setattr__(self, "alternatives", alternatives)

    @classmethod
    def parse(cls, text: str) -> VersionFilter:
        """Parse a filter such as ``>= 13 < 16 OR == 9.6``; raise ``ValueError`` if malformed."""
        return cls._parse(text, text.strip())

    @classmethod
    def _parse(cls, text: str, context: str) -> VersionFilter:
        # ``context`` is what error messages quote: the whole requirement line when known.
        if text.strip() == NOT_USED:
            return cls(not_used=True)
        tokens = [
            ("op", m["op"]) if m["op"] else ("word", m["word"]) for m in _TOKEN_RE.finditer(text)
        ]
        alternatives: list[tuple[Criterion, ...]] = []
        current: list[Criterion] = []
        i = 0
        while i < len(tokens):
            kind, value = tokens[i]
            if kind == "word" and value == "OR":
                if not current:
                    where = "after 'OR'" if alternatives else "before it"
                    raise ValueError(f"'OR' with no criterion {where} in {context!r}")
                alternatives.append(tuple(current))
                current = []
                i += 1
                continue
            if kind == "word" and value.upper() == "OR":
                raise ValueError(f"write {value!r} in uppercase, 'OR', in {context!r}")
            if kind == "word" and value.upper() == "AND":
                raise ValueError(
                    f"unexpected {value!r} in {context!r}: criteria separated by spaces "
                    "are already combined with AND"
                )
            if kind == "word" and value == NOT_USED:
                raise ValueError(
                    f"{NOT_USED!r} stands alone, as in 'postgresql {NOT_USED}', in {context!r}"
                )
            if kind == "word":
                current.append(Criterion("==", _parse_version_token(value, context)))
                i += 1
                continue
            if value not in _OPERATORS:
                raise ValueError(_unknown_operator(value, context))
            if i + 1 == len(tokens):
                raise ValueError(f"missing version after {value!r} in {context!r}")
            next_kind, next_value = tokens[i + 1]
            if next_kind == "op" or next_value == "OR":
                raise ValueError(
                    f"missing version after {value!r} (found {next_value!r}) in {context!r}"
                )
            current.append(Criterion(value, _parse_version_token(next_value, context)))
            i += 2
        if current:
            alternatives.append(tuple(current))
        elif alternatives:
            raise ValueError(f"dangling 'OR' at the end of {context!r}")
        return cls(tuple(alternatives))

    @property
    def is_any(self) -> bool:
        """True for the empty filter, which every version matches."""
        return not self.alternatives and not self.not_used

    def match(self, version: Version | str) -> bool:
        """Whether ``version`` satisfies all criteria of at least one alternative.

        ``not-used`` constrains nothing: every version matches."""
        if isinstance(version, str):
            version = Version(version)
        if not self.alternatives:
            return True
        return any(all(c.match(version) for c in alt) for alt in self.alternatives)

    def __str__(self) -> str:
        if self.not_used:
            return NOT_USED
        return " OR ".join(" ".join(str(c) for c in alt) for alt in self.alternatives)

    def __repr__(self) -> str:
        return f"VersionFilter.parse({str(self)!r})"


# ``+`` as in the ancestor's ``private-bzr+ssh-access`` example
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9._+-]*", re.ASCII)
_FIRST_TOKEN_RE = re.compile(r"[^\s<>=!~^]*")


def parse_requirement(text: str) -> tuple[str, VersionFilter]:
    """Split ``postgresql >= 13 < 16`` into the capability name and its filter.

    The name may be glued to the first operator (``postgresql>=13``). Error messages quote the
    whole line, which is what the user will look for in the file.
    """
    line = text.strip()
    first = _FIRST_TOKEN_RE.match(line)
    name = first[0] if first else ""
    if not name or name == "OR":
        if not line:
            raise ValueError("missing capability name")
        raise ValueError(f"missing capability name before the filter in {line!r}")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid capability name {name!r} in {line!r}: it must start with a letter "
            "and contain only letters, digits, '-', '_', '+' and '.'"
        )
    return name, VersionFilter._parse(line[len(name) :], line)
