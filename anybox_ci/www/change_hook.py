"""The ``anybox`` change-hook dialect: Buildbot's base form, validated and de-duplicated.

Why not the ``base`` dialect: it adds whatever it is sent. This one refuses (HTTP 400, one
line) a change for a repository or branch that no buildout watches, a branch that is not a
valid git ref name (so no hostile string ever reaches a build), or a malformed revision; and it
acknowledges without adding a change that was already added (same ``anybox_ci_change_id``), so a
client that lost an acknowledgement can safely post again, to this master or to another one
sharing its database: :mod:`anybox_ci.www.change_claims` decides in the database, so the same
notification posted to two masters at once is added once.

It reads the form itself (:func:`read_form`), not through Buildbot's base handler: only the
fields the senders send, each once, as UTF-8, within the size limits of
:mod:`anybox_ci.changes.protocol` (comments, author, each file path, the number of files,
properties); a time must be a finite number the database can hold. A change naming a project,
or a codebase other than the one the configuration gives its repository and branch, is
refused: such a copy would build nothing, yet make the genuine change look like a replay. The
body itself is limited before it is read (:mod:`anybox_ci.www.limits`).

Buildbot builds the dialect handler once and keeps its options until the master restarts, so
the watched repositories are not hook options: they live in ``KNOWN_REPOSITORIES``, which the
configurator refreshes at every (re)configuration.

Enable it with ``c['www']['change_hook_dialects'] = {'anybox': {}}`` once the package's
``buildbot.webhooks`` entry point is installed, or without it with
``{'anybox': {'custom_class': AnyboxHookHandler}}``. Protect it with ``change_hook_auth``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from buildbot.www.hooks.base import BaseHookHandler
from twisted.internet import defer, task
from twisted.python import log

from anybox_ci.changes.protocol import (
    CHANGE_ID_PROPERTY,
    CONTROL,
    MAX_AUTHOR,
    MAX_COMMENTS,
    MAX_FILE_PATH,
    MAX_FILES,
    MAX_FILES_JSON,
    MAX_PROPERTIES_JSON,
    MAX_REPOSITORY,
    MAX_SHORT_FIELD,
    MAX_WHEN,
    VCS_PROPERTY,
    shown,
)
from anybox_ci.core.vcs import (
    MAX_BRANCH,
    VCS_NAMES,
    change_id,
    check_revision,
    check_vcs_branch,
    codebase_name,
)
from anybox_ci.www import change_claims
from anybox_ci.www.limits import install_request_limits

_PROPERTY_PREFIX = "anybox_ci_"
#: how long a request waits for a change that another request (on any master) is adding
CLAIM_WAIT = 5.0
_CLAIM_POLL = 0.05
_PRUNE_EVERY = 3600.0


class ChangeInFlight(Exception):
    """Another request claimed this change moments ago and has not added it yet: the
    sender keeps it and posts again later (HTTP 500, never a 400 that would drop it)."""


class KnownRepositories:
    """Repository URL -> watched branches, swapped atomically at each reconfiguration."""

    def __init__(self) -> None:
        self._mapping: Mapping[str, frozenset[str]] = MappingProxyType({})
        self._lock = threading.Lock()

    def set(self, mapping: Mapping[str, Iterable[str]]) -> None:
        frozen = {str(repo): frozenset(branches) for repo, branches in mapping.items()}
        with self._lock:
            self._mapping = MappingProxyType(frozen)

    def get(self) -> Mapping[str, frozenset[str]]:
        return self._mapping

    def branches(self, repository: str) -> frozenset[str] | None:
        return self._mapping.get(repository)


KNOWN_REPOSITORIES = KnownRepositories()


_TEXT_FIELDS = {
    # field: (largest size in characters, whether it is one line); the repository, branch and
    # revision have rules of their own, with messages of their own (see validate)
    "repository": (MAX_REPOSITORY, False),
    "branch": (MAX_BRANCH, False),
    "revision": (MAX_SHORT_FIELD, False),
    "author": (MAX_AUTHOR, True),
    "comments": (MAX_COMMENTS, False),
    "project": (MAX_SHORT_FIELD, True),
    "codebase": (MAX_SHORT_FIELD, True),
    "when_timestamp": (MAX_SHORT_FIELD, True),
    "files": (MAX_FILES_JSON, True),
    "properties": (MAX_PROPERTIES_JSON, True),
}
FIELDS = tuple(_TEXT_FIELDS)


def _text(name: str, values: Any) -> str:
    """One form field as text: given once, valid UTF-8, within its size, no stray control."""
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], bytes):
        raise ValueError(f"field {name} must be given once")
    limit, one_line = _TEXT_FIELDS[name]
    raw: bytes = values[0]
    if len(raw) > 4 * limit:  # no character takes more than 4 bytes in UTF-8
        raise ValueError(f"field {name} is longer than {limit} characters")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"field {name} is not valid UTF-8") from None
    if len(text) > limit:
        raise ValueError(f"field {name} is longer than {limit} characters")
    if "\x00" in text or (one_line and CONTROL.search(text)):
        raise ValueError(f"field {name} contains a control character")
    return text


def _json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"malformed change: {name} is nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"malformed change: {name}: {' '.join(str(exc).split())[:200]}") from None


def _when(text: str) -> float | None:
    if not text:
        return None
    try:
        when = float(text)
    except ValueError:
        raise ValueError(
            f"malformed change: when_timestamp {shown(text)} is not a number"
        ) from None
    if not (math.isfinite(when) and 0 <= when <= MAX_WHEN):
        raise ValueError(f"when_timestamp {shown(text)} is out of range (0 to {MAX_WHEN})")
    return when


def read_form(args: Mapping[bytes, Any]) -> dict[str, Any]:
    """The change dict Buildbot adds, from the posted form; ValueError with a one-line reason.

    Only the fields :func:`anybox_ci.changes.protocol.change_form` sends are read, each once,
    as UTF-8 within its size limit; ``files`` and ``properties`` are JSON. Anything else (an
    unknown field, a time that is not a finite number the master can store, a file path with
    a control character) is refused, never passed on.
    """
    names: dict[str, Any] = {}
    unknown = []
    for key, values in args.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if name in _TEXT_FIELDS:
            names[name] = values
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"unexpected fields {', '.join(shown(n) for n in sorted(unknown)[:10])}")
    text = {name: _text(name, values) for name, values in names.items()}
    for required in ("repository", "revision", "author", "properties"):
        if not text.get(required):
            raise ValueError(f"missing {required}")
    files = _json("files", text["files"]) if text.get("files") else []
    if (
        not isinstance(files, list)
        or len(files) > MAX_FILES
        or not all(isinstance(f, str) and f for f in files)
    ):
        raise ValueError(f"files must be a JSON list of at most {MAX_FILES} paths")
    for path in files:
        if len(path) > MAX_FILE_PATH or CONTROL.search(path):
            raise ValueError(
                f"file path {shown(path)} is longer than {MAX_FILE_PATH} characters "
                "or contains a control character"
            )
    return {
        "author": text["author"],
        "committer": None,
        "files": files,
        "comments": text.get("comments", ""),
        "revision": text["revision"],
        "when_timestamp": _when(text.get("when_timestamp", "")),
        "branch": text.get("branch", ""),
        "category": None,
        "revlink": "",
        "properties": _json("properties", text["properties"]),
        "repository": text["repository"],
        "project": text.get("project", ""),
        "codebase": text.get("codebase", ""),
    }


class AnyboxHookHandler(BaseHookHandler):
    """Handler of ``/change_hook/anybox``; option: ``registry`` (tests)."""

    def __init__(self, master: Any, options: Mapping[str, Any] | bool | None) -> None:
        opts = dict(options) if isinstance(options, Mapping) else {}
        opts.pop("custom_class", None)
        self.registry: KnownRepositories = opts.pop("registry", KNOWN_REPOSITORIES)
        self.unknown_options = sorted(opts)
        super().__init__(master, options)
        self._pruned_at = 0.0
        # in case the matrix page did not already (no wsgi_dashboards): later requests at least
        install_request_limits(getattr(getattr(master, "www", None), "site", None))

    def read(self, request: Any) -> tuple[dict[str, Any], str, str]:
        """(change dict, change id, vcs) of an acceptable request; ValueError, one line."""
        if self.unknown_options:
            raise ValueError(f"unknown options of the anybox change hook: {self.unknown_options}")
        try:
            if getattr(request, "method", b"POST") != b"POST":
                raise ValueError("changes must be posted (HTTP POST)")
            chdict = read_form(request.args or {})
            cid, vcs = self.validate(chdict)
        except ValueError as exc:
            log.msg(f"anybox change hook: refused: {exc}")
            raise
        chdict["codebase"] = chdict["codebase"] or None  # let c['codebaseGenerator'] name it
        return chdict, cid, vcs

    @defer.inlineCallbacks
    def getChanges(self, request: Any) -> Generator[Any, Any, tuple[list[dict[str, Any]], Any]]:
        chdict, cid, vcs = self.read(request)
        if not (yield self._admit(cid, chdict["revision"])):
            log.msg(f"anybox change hook: {cid} was already added, acknowledged as a replay")
            return [], None
        return [chdict], vcs

    def validate(self, chdict: dict[str, Any]) -> tuple[str, str]:
        """(change id, vcs) of an acceptable change; ValueError with a one-line reason.

        A change must be exactly the one its id names: a watched repository and branch, a
        full revision, and no project or codebase other than what the configuration gives
        that repository and branch (a copy that would build nothing must not be taken for
        the genuine change, which would then be dropped as a replay).
        """
        props = chdict.get("properties")
        if not isinstance(props, dict):
            raise ValueError("properties must be a JSON object")
        foreign = sorted(k for k in props if not str(k).startswith(_PROPERTY_PREFIX))
        if foreign:
            raise ValueError(f"unexpected properties {shown(foreign)}")
        vcs = props.get(VCS_PROPERTY)
        if vcs not in VCS_NAMES:
            raise ValueError(f"property {VCS_PROPERTY} must be one of {', '.join(VCS_NAMES)}")
        files = chdict.get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError("files must be a JSON list of strings")
        repository = chdict.get("repository") or ""
        branch = chdict.get("branch") or ""
        revision = chdict.get("revision") or ""
        if not isinstance(repository, str) or not repository:
            raise ValueError("missing repository")
        if not isinstance(branch, str) or not isinstance(revision, str):
            raise ValueError("branch and revision must be text")
        problem = check_vcs_branch(vcs, branch)
        if problem:
            raise ValueError(f"invalid branch name {shown(branch)}: {problem}")
        problem = check_revision(vcs, revision)
        if problem:
            raise ValueError(f"invalid {vcs} revision {shown(revision)}: {problem}")
        watched = self.registry.branches(repository)
        if watched is None:
            raise ValueError(f"unknown repository {shown(repository)}: no buildout watches it")
        if branch not in watched:
            raise ValueError(
                f"branch {shown(branch)} of repository {shown(repository)} is not watched"
            )
        project = chdict.get("project") or ""
        if project:
            raise ValueError(f"unexpected project {shown(project)}: changes carry none")
        codebase = chdict.get("codebase") or ""
        expected = codebase_name(repository, branch)
        if codebase and codebase != expected:
            raise ValueError(
                f"codebase {shown(codebase)} is not the one of this repository and branch "
                f"({expected})"
            )
        cid = props.get(CHANGE_ID_PROPERTY)
        if cid != change_id(vcs, repository, branch, revision):
            raise ValueError(f"property {CHANGE_ID_PROPERTY} does not match the change")
        return cid, vcs

    def _db(self, thd: Any, *args: Any) -> defer.Deferred[Any]:
        def with_table(conn: Any) -> Any:
            change_claims.ensure_table(conn)
            return thd(conn, *args)

        deferred: defer.Deferred[Any] = self.master.db.pool.do(with_table)
        return deferred

    @defer.inlineCallbacks
    def _admit(self, cid: str, revision: str) -> Generator[Any, Any, bool]:
        """Whether this request adds the change (True) or it is a replay (False).

        The change is looked up by revision, then claimed by inserting its id in the claims
        table (see :mod:`anybox_ci.www.change_claims`): only one insert succeeds, whichever
        master runs it. A request that lost waits for the winner's change to appear.
        """
        model = self.master.db.model

        def first_look(conn: Any, now: int, prune: bool) -> int | None | bool:
            if prune:
                change_claims.prune(conn, now)
            if change_claims.find_added(conn, model, revision, cid):
                conn.rollback()
                return False
            conn.rollback()
            return change_claims.claim(conn, cid, now)

        now = time.time()
        prune = now - self._pruned_at > _PRUNE_EVERY
        if prune:
            self._pruned_at = now
        held = yield self._db(first_look, int(now), prune)
        if held is False:
            return False
        if held is None:
            return True
        deadline = time.monotonic() + CLAIM_WAIT
        while time.monotonic() < deadline:
            yield task.deferLater(self.master.reactor, _CLAIM_POLL, lambda: None)
            if (yield self._db(change_claims.find_added, model, revision, cid)):
                return False
        now = time.time()
        if now - held > change_claims.STALE_AFTER and (
            yield self._db(change_claims.take_over, cid, held, int(now))
        ):
            log.msg(f"anybox change hook: {cid} was claimed but never added: adding it now")
            return True
        raise ChangeInFlight(f"change {cid} is being added by another request; post it again")


anybox = AnyboxHookHandler  # the name Buildbot's plugin lookup and users see
