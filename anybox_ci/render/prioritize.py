"""``c['prioritizeBuilders']``: Buildbot's default order of builders, in one query.

Buildbot sorts the builders it is about to start builds on by the highest priority of their
pending requests, then by their oldest pending request. Its default sorter asks the database
twice per builder, and it sorts every builder after each reconfig and each worker
connection: with thousands of builders, that is most of a reconfig. This one reads the
pending requests once, and gives the same order.

It also leaves out the builders with no pending request: Buildbot would then query each of
them for a request to start, and find none. A request that arrives later puts its builder
back (Buildbot's botmaster reacts to every new request).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from buildbot.data import resultspec
from twisted.internet import defer


class PendingRequestsOrder:
    """Builders with pending requests: highest priority first, then the oldest request,
    then the name."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PendingRequestsOrder)

    def __hash__(self) -> int:
        return hash(PendingRequestsOrder)

    @defer.inlineCallbacks
    def __call__(self, master: Any, builders: Sequence[Any]) -> Any:
        pending = yield master.data.get(
            ("buildrequests",), filters=[resultspec.Filter("claimed", "eq", [False])]
        )
        priority: dict[int, float] = {}
        oldest: dict[int, float] = {}
        for request in pending:
            builderid = request["builderid"]
            at = request["submitted_at"]
            when = at.timestamp() if isinstance(at, datetime) else float(at)
            priority[builderid] = max(
                priority.get(builderid, request["priority"]), request["priority"]
            )
            oldest[builderid] = min(oldest.get(builderid, when), when)
        keys = {}
        for builder in builders:
            builderid = yield builder.getBuilderId()
            if builderid in oldest:
                keys[builder.name] = (-priority[builderid], oldest[builderid], builder.name)
        return sorted((b for b in builders if b.name in keys), key=lambda b: keys[b.name])
