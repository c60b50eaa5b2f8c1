"""Parsers of the one-line values with a grammar of their own.

``buildout =`` sources, ``watch =`` lines and worker ``capability =`` lines. Each raises
``ValueError`` with a one-line message that the loaders turn into a diagnostic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from .diagnostics import did_you_mean
from .model import BuildoutSource, Offer, Watch
from .vcs import VCS_NAMES, branch_error, redact_url, url_error
from .versions import Version

SOURCE_TYPES = ("standalone", "git", "hg", "bzr", "gittag", "hgtag", "archive")

#: section and capability names
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

_SOURCE_ARITY = {
    "standalone": ("FILE",),
    "git": ("URL", "BRANCH", "FILE"),
    "hg": ("URL", "BRANCH", "FILE"),
    "bzr": ("URL", "FILE"),
    "gittag": ("URL", "FILE"),
    "hgtag": ("URL", "FILE"),
    "archive": ("URL", "FILE"),
}


def _shown(text: str) -> str:
    """A value as error messages quote it: URL passwords masked."""
    return " ".join(redact_url(word) for word in text.split())


def _split_kw(words: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    positional = [w for w in words if "=" not in w]
    keywords = dict(w.split("=", 1) for w in words if "=" in w)
    return positional, keywords


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
        raise ValueError(f"expected '{kind} {' '.join(expected)}', got {_shown(text)!r}")
    bad_kw = set(keywords) - {"subdir"}
    if bad_kw:
        raise ValueError(f"unknown keyword {sorted(bad_kw)[0]!r} (only subdir= is allowed)")
    args = dict(zip(expected, positional, strict=True))
    subdir = keywords.get("subdir", "")
    if subdir and (subdir.startswith("/") or ".." in Path(subdir).parts):
        raise ValueError(f"subdir must be a relative path inside the checkout, got {subdir!r}")
    if "URL" in args and (why := url_error(args["URL"])):
        raise ValueError(why)
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
    """Parse ``git URL BRANCH``, ``hg URL BRANCH`` or ``bzr URL``."""
    words = line.split()
    if not words or words[0] not in VCS_NAMES:
        raise ValueError(
            f"expected 'git URL BRANCH', 'hg URL BRANCH' or 'bzr URL', got {_shown(line)!r}"
        )
    want = 2 if words[0] == "bzr" else 3
    if len(words) != want:
        raise ValueError(f"expected {want - 1} words after {words[0]!r}, got {_shown(line)!r}")
    if why := url_error(words[1]):
        raise ValueError(why)
    branch = words[2] if want == 3 else ""
    if branch and (why := branch_error(branch)):
        raise ValueError(why)
    return Watch(words[0], words[1], branch)


def parse_offer(line: str) -> Offer:
    """Parse ``NAME [VERSION [key=value ...]]``; raises ValueError."""
    words = line.split()
    if not words:
        raise ValueError("empty capability line")
    name, rest = words[0], words[1:]
    if not NAME_RE.match(name) or "=" in name:
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
    return Offer(name, version, MappingProxyType(options))
