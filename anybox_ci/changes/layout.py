"""Which repositories are mirrored, and where each mirror lives under the mirrors root.

The layout is readable (``root/VCS/HOST/PATH``) so that URL rewrite rules can point builds
at the mirror tree, yet two different URLs never share a mirror.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from anybox_ci.core.vcs import VCS_NAMES, check_url, redact_url

_SEGMENT_BAD_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
_SCP_LIKE = re.compile(r"(?:[^@/:]+@)?(?P<host>[^/:]{2,}):(?P<path>.*)\Z")


@dataclass(frozen=True)
class Remote:
    """A repository to mirror, as the manifests name it (the URL is the identity)."""

    vcs: str
    url: str

    def __post_init__(self) -> None:
        if self.vcs not in VCS_NAMES:
            raise ValueError(f"unsupported vcs {self.vcs!r} (expected git, hg or bzr)")
        why = check_url(self.url)
        if why:
            raise ValueError(f"invalid {self.vcs} URL {ascii(redact_url(self.url)[:100])}: {why}")


def _safe_segment(segment: str) -> str:
    cleaned = _SEGMENT_BAD_CHARS.sub("_", segment)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned
    return cleaned[:80]


def _split_location(url: str) -> tuple[str, list[str], bool]:
    """(host, path segments, canonical) where canonical means the layout alone is unambiguous."""
    if "://" in url:
        parts = urlsplit(url)
        canonical = (
            parts.scheme == "https"
            and "@" not in parts.netloc
            and not parts.query
            and not parts.fragment
            and not url.endswith(("?", "#"))
        )
        host = parts.netloc.rsplit("@", 1)[-1]
        if parts.scheme == "file":
            host = "_local"
        raw_path = parts.path
    elif (scp := _SCP_LIKE.match(url)) and "/" not in url.split(":", 1)[0]:
        host, raw_path, canonical = scp["host"], "/" + scp["path"], False
    else:
        host, raw_path, canonical = "_local", url, False
    if raw_path.startswith("/"):
        raw_path = raw_path[1:]
    raw_segments = raw_path.split("/")
    if any(not s for s in raw_segments):  # "//", trailing "/", empty path
        canonical = False
    segments = [s for s in raw_segments if s]
    safe = [_safe_segment(s) for s in segments]
    safe_host = _safe_segment(host.replace(":", "_")) or "_nohost"
    if safe != segments or safe_host != host or not safe:
        canonical = False
    return safe_host, safe or ["_root"], canonical


def mirror_path(root: Path, remote: Remote) -> Path:
    """Where the mirror of ``remote`` lives: ``root/VCS/HOST/PATH``.

    Plain ``https://host/path`` URLs (ending in ``.git`` for git) map to exactly that path, so
    prefix rewrite rules can point builds at the mirror tree. Any other URL (ssh, scp-like,
    local path, user or port, characters that had to be replaced) gets a short hash of the full
    URL in its last component: different URLs never share a mirror, and the name stays readable.
    """
    host, segments, canonical = _split_location(remote.url)
    leaf = segments[-1]
    if remote.vcs == "git" and not (leaf.endswith(".git") and len(leaf) > 4):
        canonical = False
    if not canonical:
        digest = hashlib.sha256(f"{remote.vcs}\0{remote.url}".encode()).hexdigest()[:10]
        stem = leaf[:-4] if remote.vcs == "git" and leaf.endswith(".git") else leaf
        leaf = f"{stem}-{digest}" + (".git" if remote.vcs == "git" else "")
    return Path(root, remote.vcs, host, *segments[:-1], leaf)


def load_remotes(path: Path) -> list[Remote]:
    """Read a JSON list of ``{"vcs": ..., "url": ...}`` objects."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{'vcs': ..., 'url': ...}} objects")
    remotes = []
    for index, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or not {"vcs", "url"} <= entry.keys():
            raise ValueError(f"{path}: entry {index}: expected an object with 'vcs' and 'url'")
        try:
            remotes.append(Remote(str(entry["vcs"]), str(entry["url"])))
        except ValueError as exc:
            raise ValueError(f"{path}: entry {index}: {exc}") from None
    return remotes
