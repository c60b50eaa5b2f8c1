"""Database step sets: the cell's test database, created, restored, dropped."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from buildbot.process.buildstep import BuildStep
from buildbot.process.results import SUCCESS, WARNINGS

from ..core import schema
from ..core import stepset_catalogue as catalogue
from .buildsteps import CellEnv, UtilStep
from .stepset_registry import TESTING_DB, StepContext, StepSet, util_argv


def simple_create(ctx: StepContext) -> list[BuildStep]:
    """Drop and create the cell's test database from ``db_template``."""
    return [_create_db(ctx.env, ctx.get(schema.DB_TEMPLATE), ctx.get(schema.TEST_TIMEOUT))]


@lru_cache(maxsize=1024)
def _create_db(env: CellEnv, template: str, timeout: int) -> BuildStep:
    return UtilStep(
        name="create_db",
        command=util_argv("pgdb", "create", "--name", TESTING_DB, "--template", template),
        workdir=".",
        env=env,
        haltOnFailure=True,
        timeout=timeout,
    )


def restore(ctx: StepContext) -> list[BuildStep]:
    """Create an empty test database and fill it with ``db-restore-command``."""
    command = ctx.get(schema.DB_RESTORE_COMMAND) or ()
    return [
        ctx.shell(
            "restore_db", ctx.util_argv("pgdb", "restore", "--name", TESTING_DB, "--", *command)
        )
    ]


#: how the ancestor's manifests said "no option" for ``pg_remote_copy.db_option``
_NO_DB_OPTION = ("", "None")


def pg_remote_copy(ctx: StepContext) -> list[BuildStep]:
    """Drop the test database, then create it as a copy with ``pg_remote_copy.executable``."""
    command: list[Any] = [ctx.get(schema.PG_REMOTE_COPY_EXECUTABLE)]
    option = ctx.get(schema.PG_REMOTE_COPY_DB_OPTION)
    if option not in _NO_DB_OPTION:
        command.append(option)
    command += [TESTING_DB, *(ctx.get(schema.PG_REMOTE_COPY_ARGUMENTS) or ())]
    timeout = ctx.get(schema.PG_REMOTE_COPY_TIMEOUT) or ctx.get(schema.TEST_TIMEOUT)
    return [
        ctx.shell("drop_db", util_argv("pgdb", "drop", "--name", TESTING_DB), workdir="."),
        ctx.shell("pg_remote_copy", command, workdir=".", timeout=timeout),
    ]


@dataclass(frozen=True)
class _DropWhen:
    """``doStepIf`` of the final drop: always, or after a successful build only."""

    policy: str

    def __call__(self, step: BuildStep) -> bool:
        return self.policy == "always" or step.build.results in (SUCCESS, WARNINGS)


def cleanup_steps(ctx: StepContext) -> list[BuildStep]:
    """Drop the test database at the end, as ``db-cleanup`` says."""
    policy = ctx.get(schema.DB_CLEANUP)
    if policy == "never" or not ctx.get(schema.DB_STEPS):
        return []
    return [_drop_db(ctx.env, policy, ctx.get(schema.TEST_TIMEOUT))]


@lru_cache(maxsize=1024)
def _drop_db(env: CellEnv, policy: str, timeout: int) -> BuildStep:
    return UtilStep(
        name="drop_db",
        command=util_argv("pgdb", "drop", "--name", TESTING_DB),
        workdir=".",
        env=env,
        timeout=timeout,
        alwaysRun=True,
        doStepIf=_DropWhen(policy),
        haltOnFailure=False,
        flunkOnFailure=False,
        warnOnFailure=True,
    )


STEP_SETS: tuple[tuple[catalogue.StepSetSpec, StepSet], ...] = (
    (catalogue.SIMPLE_CREATE, simple_create),
    (catalogue.RESTORE, restore),
    (catalogue.PG_REMOTE_COPY, pg_remote_copy),
)
