"""The vocabulary of version control shared by every layer: names, refs, revisions, URLs.

One rule per kind of value, so that the manifest, the workers files, auto-watch, the
change hook, the force form and ``update-mirrors`` accept and refuse the same strings.
Nothing here runs a VCS: it only decides what may be handed to one.
"""

from __future__ import annotations

import hashlib
import re

VCS_NAMES = ("git", "hg", "bzr")

_REF_FORBIDDEN = frozenset(" ~^:?*[\\")
_HEX = re.compile(r"[0-9a-f]+\Z")
_BZR_REVID = re.compile(r"[!-~]{1,255}\Z")  # printable ASCII, no whitespace
_ABBREV = re.compile(r"[0-9a-fA-F]{4,64}\Z")
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*):[^/@]*@")
_ANY_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
MAX_BRANCH = 255
MAX_URL = 2000


def check_branch(name: str) -> str | None:
    """Why ``name`` is not a safe branch name (``git check-ref-format --branch``), or None."""
    if not name:
        return "it is empty"
    if len(name) > MAX_BRANCH:
        return f"it is longer than {MAX_BRANCH} characters"
    if any(not c.isprintable() for c in name):
        return "it contains a control or non-printable character"
    bad = sorted(set(name) & _REF_FORBIDDEN)
    if bad:
        return "it contains " + " ".join(repr(c) for c in bad)
    for sequence in ("..", "@{"):
        if sequence in name:
            return f"it contains {sequence!r}"
    if name.startswith("-"):
        return "it starts with '-'"
    if name in ("@", "HEAD"):
        return f"{name!r} is reserved"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty path component"
    if name.endswith("."):
        return "it ends with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return "a path component starts with '.'"
        if component.endswith(".lock"):
            return "a path component ends with '.lock'"
    return None


def branch_error(name: str) -> str | None:
    """A one-line message for an unacceptable branch name, or None."""
    why = check_branch(name)
    return f"invalid branch name {name[:100]!r}: {why}" if why else None


def check_vcs_branch(vcs: str, branch: str) -> str | None:
    """Why ``branch`` cannot be the branch of a ``vcs`` watch or change, or None.

    bzr has no branch names (a bzr URL is the branch): its branch is empty. git and hg
    branches follow :func:`check_branch`, even hg's, which hg itself would allow.
    """
    if vcs == "bzr" and branch == "":
        return None
    return check_branch(branch)


def check_revision(vcs: str, revision: str) -> str | None:
    """Why ``revision`` is not a full revision id of ``vcs``, or None."""
    if vcs == "git":
        ok = len(revision) in (40, 64) and bool(_HEX.match(revision))
        return None if ok else "expected 40 or 64 lowercase hex digits"
    if vcs == "hg":
        ok = len(revision) in (12, 40) and bool(_HEX.match(revision))
        return None if ok else "expected 40 (or 12) lowercase hex digits"
    ok = bool(_BZR_REVID.match(revision)) and not revision.startswith("-") and revision != "null:"
    return None if ok else "expected a bzr revision id without whitespace"


def check_ref(vcs: str, value: str) -> str | None:
    """Why ``value`` cannot be a revision typed by a person (force form), or None.

    A full revision id, an abbreviated hex one, or a name that :func:`check_branch`
    accepts (a tag, a branch): never anything a VCS could read as an option.
    """
    if check_revision(vcs, value) is None or (vcs != "bzr" and _ABBREV.match(value)):
        return None
    why = check_branch(value)
    return f"not a revision id nor a valid ref name ({why})" if why else None


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be handed to a VCS as a repository, or None.

    A URL that starts with ``-`` would be read as an option (``--upload-pack=CMD``), and
    whitespace or control characters would split or forge log lines.
    """
    if not url:
        return "it is empty"
    if url.startswith("-"):
        return "it starts with '-' (it would be read as an option)"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "it contains whitespace or a control character"
    if len(url) > MAX_URL:
        return f"it is longer than {MAX_URL} characters"
    return None


def url_error(url: str) -> str | None:
    """A one-line message for an unacceptable repository URL (password masked), or None."""
    why = check_url(url)
    return f"invalid URL {redact_url(url)[:100]!r}: {why}" if why else None


def redact_url(url: str) -> str:
    """``url`` with the password of its ``scheme://user:password@`` part masked.

    The one place that decides how a URL is shown: force form labels, poller names,
    update-mirrors reports and diagnostics all show what this returns.
    """
    return _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)


def has_password(url: str) -> bool:
    """Whether ``url`` holds a password (``scheme://user:password@``): it is then stored
    in changes and sourcestamps, where :func:`redact_url` cannot hide it."""
    return redact_url(url) != url


def _without_userinfo(url: str) -> str:
    return _ANY_USERINFO.sub(r"\g<scheme>", url)


def change_id(vcs: str, repository: str, branch: str, revision: str) -> str:
    """Identity of a change: the same revision on the same branch is one change, whoever saw it."""
    raw = "\0".join((vcs, repository, branch, revision)).encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()


def codebase_name(url: str, branch: str) -> str:
    """A stable codebase per watched (repository, branch): the unit of revision pinning."""
    tail = _without_userinfo(url).rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in tail)[:40]
    digest = hashlib.sha1(f"{url}\0{branch}".encode()).hexdigest()[:8]
    return f"{safe}-{digest}"
