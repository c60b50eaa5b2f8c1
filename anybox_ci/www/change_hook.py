"""The ``anybox`` change-hook dialect: Buildbot's base form, validated and de-duplicated.

Why not the ``base`` dialect: it adds whatever it is sent. This one refuses (HTTP 400, one
line) a change for a repository or branch that no buildout watches, a branch that is not a
valid git ref name (so no hostile string ever reaches a build), or a malformed revision; and it
acknowledges without adding a change it has already added (same ``anybox_ci_change_id``), so a
client that lost an acknowledgement can safely post again.

Buildbot builds the dialect handler once and keeps its options until the master restarts, so
the watched repositories are not hook options: they live in ``KNOWN_REPOSITORIES``, which the
configurator refreshes at every (re)configuration.

Enable it with ``c['www']['change_hook_dialects'] = {'anybox': {}}`` once the package's
``buildbot.webhooks`` entry point is installed, or without it with
``{'anybox': {'custom_class': AnyboxHookHandler}}``. Protect it with ``change_hook_auth``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from buildbot.www.hooks.base import BaseHookHandler
from twisted.internet import defer
from twisted.python import log

from anybox_ci.changes.protocol import CHANGE_ID_PROPERTY, VCS_PROPERTY, shown
from anybox_ci.core.vcs import VCS_NAMES, change_id, check_revision, check_vcs_branch

DEFAULT_DEDUPE_WINDOW = 10_000  # a replay is looked for among this many latest changes
_PROPERTY_PREFIX = "anybox_ci_"


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


class AnyboxHookHandler(BaseHookHandler):
    """Handler of ``/change_hook/anybox``; options: ``registry``, ``dedupe_window``."""

    def __init__(self, master: Any, options: Mapping[str, Any] | bool | None) -> None:
        opts = dict(options) if isinstance(options, Mapping) else {}
        opts.pop("custom_class", None)
        self.registry: KnownRepositories = opts.pop("registry", KNOWN_REPOSITORIES)
        self.dedupe_window = int(opts.pop("dedupe_window", DEFAULT_DEDUPE_WINDOW))
        self.unknown_options = sorted(opts)
        super().__init__(master, options)
        # change id -> requests waiting for an in-flight request with the same id to finish
        self._busy: dict[str, list[defer.Deferred[None]]] = {}

    @defer.inlineCallbacks
    def getChanges(self, request: Any) -> Generator[Any, Any, tuple[list[dict[str, Any]], Any]]:
        if self.unknown_options:
            raise ValueError(f"unknown options of the anybox change hook: {self.unknown_options}")
        try:
            changes, _ = yield super().getChanges(request)
        except (ValueError, TypeError) as exc:  # bad JSON in files/properties, bad timestamp
            raise ValueError(f"malformed change: {' '.join(str(exc).split())[:200]}") from None
        chdict: dict[str, Any] = changes[0]
        if not chdict.get("codebase"):
            chdict["codebase"] = None  # let c['codebaseGenerator'] name it
        try:
            cid, vcs = self.validate(chdict)
        except ValueError as exc:
            log.msg(f"anybox change hook: refused: {exc}")
            raise
        yield self._claim(cid, request)
        if (yield self._already_added(cid)):
            log.msg(f"anybox change hook: {cid} was already added, acknowledged as a replay")
            return [], None
        return [chdict], vcs

    def validate(self, chdict: dict[str, Any]) -> tuple[str, str]:
        """(change id, vcs) of an acceptable change; ValueError with a one-line reason."""
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
        if not repository:
            raise ValueError("missing repository")
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
        cid = props.get(CHANGE_ID_PROPERTY)
        if cid != change_id(vcs, repository, branch, revision):
            raise ValueError(f"property {CHANGE_ID_PROPERTY} does not match the change")
        return cid, vcs

    @defer.inlineCallbacks
    def _claim(self, cid: str, request: Any) -> Generator[Any, Any, None]:
        """Serialise requests carrying the same change id until the first one has finished.

        Buildbot adds the change after ``getChanges`` returns and finishes the request after
        that, so waiting for the request to finish closes the window in which a concurrent
        replay would not yet find the change in the database.
        """
        while cid in self._busy:
            waiter: defer.Deferred[None] = defer.Deferred()
            self._busy[cid].append(waiter)
            yield waiter
        self._busy[cid] = []

        def release(result: object) -> None:
            for waiter in self._busy.pop(cid, []):
                waiter.callback(None)

        request.notifyFinish().addBoth(release)

    def _already_added(self, cid: str) -> defer.Deferred[bool]:
        """Whether one of the latest ``dedupe_window`` changes carries this change id."""
        model = self.master.db.model
        value = json.dumps([cid, "Change"])  # how Buildbot stores a change property
        window = self.dedupe_window

        def thd(conn: Any) -> bool:
            changes, props = model.changes, model.change_properties
            latest = conn.execute(sa.select(sa.func.max(changes.c.changeid))).scalar()
            if latest is None:
                return False
            query = (
                sa.select(props.c.changeid)
                .where(props.c.changeid > latest - window)
                .where(props.c.property_name == CHANGE_ID_PROPERTY)
                .where(props.c.property_value == value)
                .limit(1)
            )
            return conn.execute(query).first() is not None

        deferred: defer.Deferred[bool] = self.master.db.pool.do(thd)
        return deferred


anybox = AnyboxHookHandler  # the name Buildbot's plugin lookup and users see
