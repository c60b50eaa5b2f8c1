"""Who may read and who may act in the web UI: the ``c['www']['authz']`` object.

:func:`authz_config` turns a few plain settings (admin names, groups, the roles allowed to force)
into Buildbot's rules, covering what Buildbot's matchers miss (cancelling a build request);
:func:`read_htgroups` reads the groups from an Apache htgroup file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from buildbot.www.authz import Authz
from buildbot.www.authz.endpointmatchers import (
    AnyControlEndpointMatcher,
    AnyEndpointMatcher,
    EndpointMatcherBase,
    ForceBuildEndpointMatcher,
    Match,
    RebuildBuildEndpointMatcher,
    StopBuildEndpointMatcher,
)
from buildbot.www.authz.roles import RolesFromBase, RolesFromUsername
from twisted.internet import defer

from ..core.selection import FORCE_MATCHING_SCHEDULER

__all__ = [
    "ADMIN_ROLE",
    "AUTHENTICATED_ROLE",
    "CancelBuildRequestEndpointMatcher",
    "ForceSchedulerEndpointMatcher",
    "RolesFromAuthenticated",
    "authz_config",
    "read_htgroups",
]

#: Role given to the ``admins`` of :func:`authz_config`: they may do everything.
ADMIN_ROLE = "admins"
#: Role every logged-in user has; reading requires it when anonymous read is off.
AUTHENTICATED_ROLE = "authenticated"


def read_htgroups(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read an Apache htgroup file (``group: user1 user2``) into ``{group: [users]}``.

    Suitable as the ``groups`` argument of :func:`authz_config` (group names become roles).
    """
    groups: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            group, sep, members = stripped.partition(":")
            if not sep:
                raise ValueError(f"{os.fspath(path)}: not a 'group: users' line: {stripped!r}")
            groups.setdefault(group.strip(), []).extend(members.split())
    return groups


class RolesFromAuthenticated(RolesFromBase):
    """Gives ``role`` to every logged-in user (and nothing to anonymous visitors)."""

    def __init__(self, role: str = AUTHENTICATED_ROLE) -> None:
        super().__init__()
        self.role = role

    def getRolesFromUser(self, userDetails: dict[str, Any]) -> list[str]:
        if userDetails.get("anonymous") or not userDetails.get("username"):
            return []
        return [self.role]


class CancelBuildRequestEndpointMatcher(StopBuildEndpointMatcher):
    """The UI cancels a pending build request with the ``cancel`` action, which Buildbot's
    ``StopBuildEndpointMatcher`` (``stop`` only) does not cover: whoever may stop, may cancel."""

    match_BuildRequestEndpoint_cancel = StopBuildEndpointMatcher.match_BuildRequestEndpoint_stop


class ForceSchedulerEndpointMatcher(EndpointMatcherBase):
    """Forcing through one named force scheduler (``scheduler``, an fnmatch pattern):
    Buildbot's ``ForceBuildEndpointMatcher`` tells builders apart, not force forms."""

    def __init__(self, scheduler: str, **kwargs: Any) -> None:
        self.scheduler = scheduler
        super().__init__(**kwargs)

    def match_ForceSchedulerEndpoint_force(
        self, epobject: Any, epdict: dict[str, Any], options: dict[str, Any]
    ) -> defer.Deferred[Match | None]:
        if self.authz.match(str(epdict.get("schedulername", "")), self.scheduler):
            return defer.succeed(Match(self.master))
        return defer.succeed(None)


def _rules_for(matcher: type[EndpointMatcherBase], roles: list[str]) -> list[EndpointMatcherBase]:
    """One rule per role; only the last one denies, so any of the roles is enough."""
    return [matcher(role=role, defaultDeny=i == len(roles) - 1) for i, role in enumerate(roles)]


def authz_config(
    admins: Iterable[str],
    anonymous_read: bool,
    force_roles: Iterable[str],
    *,
    groups: Mapping[str, Iterable[str]] | None = None,
) -> Authz:
    """The ``c['www']['authz']`` object.

    - ``admins``: user names given the :data:`ADMIN_ROLE` role, which may do everything.
    - ``groups``: ``{role: [user names]}`` (for example from :func:`read_htgroups`).
    - ``force_roles``: roles that may force, stop, rebuild builds and cancel build requests, on
      top of the admins. Every other control action (enabling schedulers, ...) is admins-only,
      and so is the "force everything matching" form (``FORCE_MATCHING_SCHEDULER``).
    - ``anonymous_read``: when false, anonymous visitors may read nothing, not even the list of
      builders; every logged-in user may read.
    """
    role_matchers: list[RolesFromBase] = [RolesFromAuthenticated(AUTHENTICATED_ROLE)]
    admin_names = sorted(set(admins))
    if admin_names:
        role_matchers.append(RolesFromUsername(roles=[ADMIN_ROLE], usernames=admin_names))
    for role, members in sorted((groups or {}).items()):
        names = sorted(set(members))
        if names:
            role_matchers.append(RolesFromUsername(roles=[role], usernames=names))

    control_roles = [ADMIN_ROLE]
    control_roles += [r for r in dict.fromkeys(force_roles) if r != ADMIN_ROLE]

    # first: the rules below would let force_roles use it
    allow_rules: list[EndpointMatcherBase] = [
        ForceSchedulerEndpointMatcher(scheduler=FORCE_MATCHING_SCHEDULER, role=ADMIN_ROLE)
    ]
    for matcher in (
        ForceBuildEndpointMatcher,
        StopBuildEndpointMatcher,
        CancelBuildRequestEndpointMatcher,
        RebuildBuildEndpointMatcher,
    ):
        allow_rules += _rules_for(matcher, control_roles)
    # Everything else that is not a read: admins only.
    allow_rules.append(AnyControlEndpointMatcher(role=ADMIN_ROLE))
    if not anonymous_read:
        # Reads (the only thing left) need a login. The websocket also asks for 'masters'.
        allow_rules.append(AnyEndpointMatcher(role=AUTHENTICATED_ROLE))
    return Authz(allowRules=allow_rules, roleMatchers=role_matchers)
