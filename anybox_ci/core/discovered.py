"""The file in which auto-watch keeps the sources that builds discovered, one per buildout.

A build's ``build_utils/watch.py`` dump is stored as ``anybox-ci/watch/SECTION.json`` in the
master directory; loading a configuration reads it back into extra watches and the pins
that fix each source to a build's revision. The content comes from a repository, so it is
untrusted: anything malformed is a warning, never an error, and never reaches a command.

Nor may it make the master fetch whatever it names (an internal address, say): a discovered
source is kept only when its URL is on the same origin (scheme, host and port) as one of the
buildout's own repositories (its ``buildout =`` repository or its ``watch`` lines), or starts
with one of the URL prefixes the admin lists in ``auto-watch-allow.cfg`` in the master
directory (one per line, ``#`` comments). Any other source is dropped with a warning that
names the discovery file. :func:`allowed_discoveries` is that rule, :func:`load_discovered`
applies it to one buildout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .diagnostics import Diagnostics
from .model import Buildout, Watch
from .schema import AUTO_WATCH
from .vcs import VCS_NAMES, check_url, check_vcs_branch, codebase_name

WATCH_DIR = "anybox-ci/watch"
#: the admin's list of URL prefixes that discovered sources may also come from
ALLOW_FILE = "auto-watch-allow.cfg"

#: schemes whose URLs name a host that a VCS contacts, and their default ports
_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ssh": 22,
    "git": 9418,
    "bzr": 4155,
    "sftp": 22,
    "file": None,
}
_SCHEME_ALIASES = {"git+ssh": "ssh", "ssh+git": "ssh", "bzr+ssh": "ssh"}
# what a VCS and Python both read as [userinfo@]host[:port], nothing more
_NETLOC = re.compile(
    r"(?:(?P<user>[A-Za-z0-9._~%!$&'()*+,;=-]*(?::[A-Za-z0-9._~%!$&'()*+,;=-]*)?)@)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?\Z"
)
_SCP_LIKE = re.compile(
    r"(?:[A-Za-z0-9._~-]+@)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?!:)"
)

Origin = tuple[str, str, int | None]


@dataclass(frozen=True)
class Pin:
    """How to pin one discovered source on the buildout command line."""

    kind: str  # "recipe" or "developer"
    section: str
    target: str = ""
    name: str = ""
    line: str = ""


def watch_file(basedir: Path, buildout: str) -> Path:
    return basedir / WATCH_DIR / f"{buildout}.json"


def _check_text(what: str, value: str) -> None:
    """Refuse a string that cannot be written out as UTF-8 (JSON allows lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value[:100]!r} is not valid Unicode") from None


def parse_discovered(text: str) -> list[tuple[Watch, Pin | None]]:
    """Watches from a watch.py dump; raises ValueError on anything malformed.

    URLs and branches follow the rules of ``core.vcs`` that manifest watches and the
    change hook follow, so a discovered source is watched only if a manifest could say it.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise ValueError("expected an object with a 'sources' list")
    found = []
    for source in data["sources"]:
        if not isinstance(source, dict):
            raise ValueError(f"bad source entry {str(source)[:200]!r}")
        vcs, url, branch = source.get("vcs"), source.get("url"), source.get("branch") or ""
        if vcs not in VCS_NAMES or not isinstance(url, str) or not isinstance(branch, str):
            raise ValueError(f"bad source entry {str(source)[:200]!r}")
        if why := check_url(url):
            raise ValueError(f"bad URL {url[:100]!r}: {why}")
        _check_text("URL", url)
        if why := check_vcs_branch(vcs, branch):
            raise ValueError(f"invalid branch name {branch[:100]!r}: {why}")
        pin = source.get("pin")
        fields = (
            {k: str(v) for k, v in pin.items() if k in Pin.__annotations__}
            if isinstance(pin, dict)
            else None
        )
        for value in (fields or {}).values():
            _check_text("pin value", value)
        found.append((Watch(vcs, url, branch), Pin(**fields) if fields is not None else None))
    return found


def url_origin(url: str) -> Origin | None:
    """``(scheme, host, port)`` of a repository URL, or None when it is not one we can vouch for.

    Plain paths and ``file:`` URLs are ``("file", "", None)``; scp-like ``user@host:path`` is
    ssh. Anything a VCS might read differently from Python's parser (odd characters in the
    host, several ``@``, an unknown scheme such as git's ``ext::``) gives None.
    """
    if "://" not in url:
        if url.startswith("/"):
            return ("file", "", None)
        scp = _SCP_LIKE.match(url)
        if scp and "/" not in url[: scp.end()]:
            return ("ssh", scp["host"].lower(), _DEFAULT_PORTS["ssh"])
        return None
    scheme, _, rest = url.partition("://")
    scheme = _SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    if scheme not in _DEFAULT_PORTS:
        return None
    if scheme == "file":
        return ("file", "", None) if rest.startswith("/") else None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    if not rest.startswith(netloc):
        return None
    match = _NETLOC.match(netloc)
    if not match:
        return None
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    return (scheme, match["host"].lower(), port)


def _prefix_matches(url: str, prefix: str) -> bool:
    """``url`` starts with the admin's ``prefix``, cut at a path boundary, on the same origin."""
    if not prefix or not url.startswith(prefix):
        return False
    if not prefix.endswith(("/", ":")) and url[len(prefix) :][:1] not in ("", "/"):
        return False  # https://forge.example.com must not allow https://forge.example.com.evil
    origin = url_origin(prefix)
    return origin is None or origin == url_origin(url)


def allowed_discoveries(
    found: Iterable[tuple[Watch, Pin | None]],
    buildout_watches: Iterable[Watch],
    allow_prefixes: Sequence[str] = (),
) -> tuple[list[tuple[Watch, Pin | None]], list[str]]:
    """(sources kept, one warning per source dropped): the auto-watch fetch policy.

    A discovered source is kept when its URL has the origin (scheme, host, port) of one of
    ``buildout_watches`` (the buildout's own repository and ``watch`` lines, as the manifest
    says them), or starts with one of the admin's ``allow_prefixes``.
    """
    origins = {o for w in buildout_watches if (o := url_origin(w.url)) is not None}
    kept: list[tuple[Watch, Pin | None]] = []
    warnings: list[str] = []
    for watch, pin in found:
        origin = url_origin(watch.url)
        if (origin is not None and origin in origins) or any(
            _prefix_matches(watch.url, p) for p in allow_prefixes
        ):
            kept.append((watch, pin))
            continue
        where = f"{origin[0]}://{origin[1]}" if origin else "its host"
        if origin and origin[2] is not None and origin[2] != _DEFAULT_PORTS.get(origin[0]):
            where += f":{origin[2]}"
        warnings.append(
            f"ignoring discovered source {_redacted(watch.url)[:200]!r}: {where} is not the "
            f"host of one of the buildout's repositories, nor allowed in {ALLOW_FILE}"
        )
    return kept, warnings


def _redacted(url: str) -> str:
    """The URL without a password it may carry."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        userinfo, _, hostpart = rest.partition("@")
        if ":" in userinfo:
            return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"
    return url


def read_allow_prefixes(basedir: Path, diags: Diagnostics) -> tuple[str, ...]:
    """The URL prefixes of ``basedir/auto-watch-allow.cfg`` (none when it does not exist)."""
    path = basedir / ALLOW_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        diags.warning(str(path), 0, "", "", f"cannot read, no prefix allowed: {exc}")
        return ()
    prefixes = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if check_url(stripped) or (url_origin(stripped) is None and "://" in stripped):
            diags.warning(str(path), number, "", "", f"not a URL prefix: {stripped[:100]!r}")
            continue
        prefixes.append(stripped)
    return tuple(prefixes)


def read_discovered(path: Path, diags: Diagnostics, section: str) -> list[tuple[Watch, Pin | None]]:
    if not path.exists():
        return []
    try:
        return parse_discovered(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, RecursionError) as exc:
        diags.warning(
            str(path), 0, section, AUTO_WATCH.name, f"ignoring the discovered sources: {exc}"
        )
        return []


def load_discovered(
    basedir: Path,
    buildout: Buildout,
    diags: Diagnostics,
    allow_prefixes: Sequence[str] | None = None,
) -> list[tuple[Watch, Pin | None]]:
    """The discovered sources of ``buildout`` that :func:`allowed_discoveries` keeps.

    Each source dropped is a warning naming the discovery file. ``allow_prefixes`` defaults
    to the master directory's ``auto-watch-allow.cfg``.
    """
    path = watch_file(basedir, buildout.name)
    found = read_discovered(path, diags, buildout.name)
    if not found:
        return []
    if allow_prefixes is None:
        allow_prefixes = read_allow_prefixes(basedir, diags)
    kept, warnings = allowed_discoveries(found, buildout.all_watches, allow_prefixes)
    for warning in warnings:
        diags.warning(str(path), 0, buildout.name, AUTO_WATCH.name, warning)
    return kept


def pins_by_codebase(discovered: list[tuple[Watch, Pin | None]]) -> dict[str, Pin]:
    return {codebase_name(w.url, w.branch): p for w, p in discovered if p is not None}
