"""Buildbot objects of ``[domain:NAME]`` sections: acceptance, install tests, promotion.

Per domain:

- ``NAME-acceptance``: freezes *unstable* into stack N (moved to *testing*), triggers each
  member's builders on the stack's pinned revisions (``acceptance-steps = members``) and
  one install build per target worker (``install-test``), then promotes N to *stable* —
  only when every part passed: a red part halts the build before the promotion;
- ``NAME-install-WORKER``: one per worker matching ``install-test.targets``;
- ``NAME-promote``: an admin's forced promotion or rollback (stack number and channel in
  the force form), recorded with its author; the configurator restricts it to admins;

plus one :class:`~.steps_stacks.StackRecorder` service for every member buildout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buildbot.plugins import schedulers, util

from ..core import schema
from ..core.domains import install_target_workers
from ..core.loader import Loaded
from ..core.model import Buildout, Domain
from ..core.plan import Cell
from ..core.vcs import codebase_name
from ..stacks.model import CHANNELS, STABLE
from .cells import Triggerable
from .changes import codebases
from .factory import send_utils
from .steps_generic import package_folder
from .steps_stacks import (
    PROMOTE_CHANNEL_FIELD,
    PROMOTE_STACK_FIELD,
    FreezeStack,
    InstallStack,
    PromoteStack,
    StackRecorder,
    stack_trigger,
    step_name,
)
from .stepset_registry import UTILS_BUNDLE, UTILS_PYTHON
from .utils_bundle import BUNDLE_NAME

#: builder name suffixes
ACCEPTANCE = "acceptance"
INSTALL = "install"
PROMOTE = "promote"


@dataclass
class StackObjects:
    builders: list[Any] = field(default_factory=list)
    schedulers: list[Any] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)

    def add_to(self, generated: dict[str, Any]) -> None:
        """Append to the render loop's output (after its catch-all force scheduler)."""
        generated["builders"] = [*generated.get("builders", []), *self.builders]
        generated["schedulers"] = [*generated.get("schedulers", []), *self.schedulers]
        generated["services"] = [*generated.get("services", []), *self.services]


def member_scheduler(domain: Domain, member: str) -> str:
    return f"stack:{domain.name}:{member}"


def install_scheduler(domain: Domain) -> str:
    return f"stack-install:{domain.name}"


def promote_builder(domain: Domain) -> str:
    return f"{domain.name}-{PROMOTE}"


def _recorded(buildout: Buildout, builders: Sequence[str]) -> dict[str, Any]:
    """What the recorder needs to know of a member buildout (plain, comparable data)."""
    source = buildout.source
    own = codebase_name(source.url, source.branch) if source.branch else ""
    return {
        "builders": sorted(builders),
        "codebases": {
            codebase_name(w.url, w.branch): [w.vcs, w.url, w.branch] for w in buildout.all_watches
        },
        "own": own,
        "upload_dir": package_folder(buildout) or "",
    }


def stack_objects(
    loaded: Loaded,
    by_buildout: Mapping[str, Sequence[Cell]],
    scheduled: Mapping[str, Sequence[str]] | None = None,
    bundle: str = BUNDLE_NAME,
) -> StackObjects:
    """Builders, schedulers and the recorder service of every domain.

    ``scheduled``: each buildout's builders, when they are not its cells (virtual cells)."""
    out = StackObjects()
    buildouts = {b.name: b for b in loaded.config.buildouts}
    recorded: dict[str, Any] = {}
    for domain in loaded.config.domains:
        members = [m for m in domain.get(schema.MEMBERS) if by_buildout.get(m)]
        if len(members) != len(domain.get(schema.MEMBERS)):
            continue  # a member no worker can build: `check` says why
        workers = sorted({w for m in members for c in by_buildout[m] for w in c.workers})
        steps_wanted = domain.get(schema.ACCEPTANCE_STEPS)
        factory = util.BuildFactory()
        factory.addStep(FreezeStack(domain.name, members))
        for member in members:
            recorded[member] = _recorded(buildouts[member], [c.name for c in by_buildout[member]])
        if schema.ACCEPTANCE_MEMBERS in steps_wanted:
            for member in members:
                name = member_scheduler(domain, member)
                out.schedulers.append(
                    Triggerable(
                        name=name,
                        builderNames=list(
                            (scheduled or {}).get(member) or [c.name for c in by_buildout[member]]
                        ),
                        codebases=codebases(buildouts[member].all_watches),
                    )
                )
                factory.addStep(
                    stack_trigger(step_name(f"test_{member}"), name, domain.name, [member])
                )
        if schema.ACCEPTANCE_INSTALL_TEST in steps_wanted:
            targets = install_target_workers(domain, loaded.config.workers)
            names = [f"{domain.name}-{INSTALL}-{w}" for w in targets]
            out.builders += [
                util.BuilderConfig(
                    name=name,
                    workernames=[worker],
                    factory=_install_factory(domain, bundle),
                    tags=["stacks", domain.name],
                    project=None,
                )
                for name, worker in zip(names, targets, strict=True)
            ]
            all_watches = tuple(dict.fromkeys(w for m in members for w in buildouts[m].all_watches))
            out.schedulers.append(
                schedulers.Triggerable(
                    name=install_scheduler(domain),
                    builderNames=names,
                    codebases=codebases(all_watches) or {"": {}},
                )
            )
            factory.addStep(
                stack_trigger("install_test", install_scheduler(domain), domain.name, None)
            )
        factory.addStep(PromoteStack(domain.name, STABLE))
        acceptance = f"{domain.name}-{ACCEPTANCE}"
        out.builders.append(
            util.BuilderConfig(
                name=acceptance,
                workernames=workers,
                factory=factory,
                tags=["stacks", domain.name],
                description=f"freeze, test and promote the stacks of {domain.section}",
            )
        )
        promote = util.BuildFactory()
        promote.addStep(PromoteStack(domain.name))
        out.builders.append(
            util.BuilderConfig(
                name=promote_builder(domain),
                workernames=workers,
                factory=promote,
                tags=["stacks", domain.name],
                description=f"admins: put a stack of {domain.section} in a channel",
            )
        )
        out.schedulers.append(
            schedulers.ForceScheduler(
                name=f"stack-promote-{domain.name}",
                buttonName="Promote",
                label=f"Promote or roll back a stack of {domain.name}",
                builderNames=[promote_builder(domain)],
                codebases=[util.CodebaseParameter("", hide=True)],
                properties=[
                    util.IntParameter(
                        name=PROMOTE_STACK_FIELD, label="stack number", required=True
                    ),
                    util.ChoiceStringParameter(
                        name=PROMOTE_CHANNEL_FIELD,
                        label="channel",
                        choices=list(CHANNELS),
                        default=STABLE,
                    ),
                ],
            )
        )
        out.schedulers.append(
            schedulers.ForceScheduler(
                name=f"stack-acceptance-{domain.name}",
                buttonName="Freeze and test",
                label=f"Freeze unstable of {domain.name} into a stack and test it",
                builderNames=[acceptance],
                codebases=[util.CodebaseParameter("", hide=True)],
            )
        )
    if recorded:
        out.services.append(StackRecorder(members=recorded))
    return out


def _install_factory(domain: Domain, bundle: str) -> Any:
    from buildbot.plugins import steps

    factory = util.BuildFactory()
    # each install starts from an empty folder: nothing left from the previous stack
    factory.addStep(steps.RemoveDirectory(dir="build", name="clean", haltOnFailure=True))
    # build_utils: fetch.py checks each archive's hash, functional.py runs the service
    factory.addStep(send_utils(bundle))
    factory.addStep(InstallStack(domain.name))
    server = domain.get(schema.INSTALL_TEST_SERVER_COMMAND)
    given = domain.get(schema.INSTALL_TEST_COMMAND)
    command: list[Any] = list(given) if given else []
    env = {
        "ANYBOX_CI_STACK": "stack.json",
        "ANYBOX_CI_TARGET_WORKER": util.Property("workername"),
    }
    if server:
        argv = [
            UTILS_PYTHON,
            UTILS_BUNDLE,
            "functional",
            "--server-cmd-json",
            json.dumps(list(server)),
            "--timeout",
            str(domain.get(schema.INSTALL_TEST_TIMEOUT)),
        ]
        wait_url = domain.get(schema.INSTALL_TEST_WAIT_URL)
        if wait_url:
            argv += ["--wait-url", wait_url]
        command = [*argv, "--", *command]
    factory.addStep(
        steps.ShellCommand(name="install_test", command=command, env=env, haltOnFailure=True)
    )
    return factory
