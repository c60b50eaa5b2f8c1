"""Several masters on one database: master roles, and builds of a dead master retried.

Buildbot runs several masters on one database with ``c['multiMaster'] = True`` and a WAMP
message queue (``c['mq'] = {'type': 'wamp', ...}``, a crossbar router). Its documentation
advises separating the masters that serve people from those that run builds:

- ``ui``: the web UI, the change hooks and the force schedulers; no change sources and no
  change-driven schedulers. Workers are still declared (Buildbot wants them for the
  builders it shows) but must connect to the engine masters only.
- ``engine``: workers, builders, change sources and the change-driven schedulers; no web
  server and no force schedulers.
- ``all`` (the default): everything, as a single master has.

Every master keeps the builders and the ``Triggerable`` schedulers: Buildbot refuses a
scheduler naming a builder it does not know, and a ``Trigger`` step runs on the engine
master that runs its build.

:class:`RetryOrphans` closes two gaps of Buildbot's handling of a master that stops or
dies (found out when it restarts and clears its own entry, or when another master expires it
after ``EXPIRE_MINUTES``, 10):

- its build requests are unclaimed in the database without a message, so the other masters
  would pick them up only at their next unrelated event;
- its schedulers and change sources are released, but another master claims them only at
  its next activity poll, up to 5 minutes later, and a scheduler that no master runs misses
  the changes added meanwhile.

On the ``masters/*/stopped`` message it makes this master try to claim the released
schedulers and change sources at once, and asks its build request distributor to look
again, so the orphaned builds restart on a master that has a worker for them.
"""

from __future__ import annotations

from typing import Any

from buildbot.schedulers.forcesched import ForceScheduler
from buildbot.schedulers.triggerable import Triggerable
from buildbot.util import service
from twisted.internet import defer
from twisted.python import log

ROLES = ("all", "ui", "engine")


def role_problem(role: object) -> str | None:
    """A one-line reason when ``role`` is not a master role."""
    if role in ROLES:
        return None
    return f"role must be one of {', '.join(map(repr, ROLES))}, not {role!r}"


def keeps_scheduler(role: str, scheduler: Any) -> bool:
    """Whether a master of ``role`` runs this scheduler."""
    if role == "all" or isinstance(scheduler, Triggerable):
        return True
    forced = isinstance(scheduler, ForceScheduler)
    return forced if role == "ui" else not forced


def for_role(role: str, generated: dict[str, Any]) -> dict[str, Any]:
    """What a master of ``role`` takes of the generated configuration."""
    if role == "all":
        return generated
    kept = dict(generated)
    kept["schedulers"] = [s for s in generated.get("schedulers", []) if keeps_scheduler(role, s)]
    if role == "ui":
        kept["change_source"] = []
    return kept


class RetryOrphans(service.BuildbotService):
    """When any master is marked stopped, look for build requests to start right away."""

    name = "anybox-ci-retry-orphans"

    @defer.inlineCallbacks
    def startService(self) -> Any:
        yield super().startService()
        self._consumer = yield self.master.mq.startConsuming(
            self._master_stopped, ("masters", None, "stopped")
        )

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            yield consumer.stopConsuming()
            self._consumer = None
        yield super().stopService()

    def _master_stopped(self, key: tuple[str, ...], message: dict[str, Any]) -> None:
        if message.get("masterid") == self.master.masterid:
            return
        log.msg(
            f"anybox-ci: master {message.get('name')} stopped: taking over its schedulers "
            "and build requests where possible"
        )
        for clustered in [*self.master.scheduler_manager, *self.master.change_svc]:
            poll = getattr(clustered, "_activityPoll", None)  # Buildbot's ClusteredService
            if poll is not None and not getattr(clustered, "active", True):
                poll()
        self.master.botmaster.maybeStartBuildsForAllBuilders()
