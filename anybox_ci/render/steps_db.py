"""Database step sets: the cell's test database, created, restored, dropped."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.plugins import util
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import SUCCESS, WARNINGS
from twisted.internet import defer
from zope.interface import implementer

from ..core import schema
from ..core import stepset_catalogue as catalogue
from .buildsteps import CellEnv, UtilStep
from .master_dump import MASTER_DUMP_FILE, SHA256_PROPERTY, MasterDumpDownload
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


#: the variable holding ``restore.auth-secret`` in the restore step's environment only
AUTH_ENV = "ANYBOX_CI_RESTORE_AUTH"


@implementer(IRenderable)
@dataclass(frozen=True)
class SecretEnv:
    """A step's environment: ``base`` plus one variable holding a Buildbot secret.

    Buildbot replaces the secret's value in every log line the master receives; the step
    must also not log its environment (``logEnviron=False``), which the worker would write
    to its own twistd.log."""

    base: Any
    variable: str
    secret: str

    @defer.inlineCallbacks
    def getRenderingFor(self, props: Any) -> Any:
        env = yield props.render(self.base)
        result = dict(env or {})
        result[self.variable] = yield props.render(util.Secret(self.secret))
        return result


def extra_databases(ctx: StepContext) -> list[Any]:
    """The databases of ``restore.map``: ``<test database>_NAME`` each."""
    return [
        util.Interpolate("%(prop:testing_db)s_" + name)
        for name, _member in ctx.get(schema.RESTORE_MAP)
    ]


def _neutralize_command(ctx: StepContext) -> list[str]:
    how = ctx.get(schema.RESTORE_NEUTRALIZE)
    if how == "none":
        return ["--no-neutralize"]
    if how == "sql":
        return []
    # Odoo subcommands come first; the start command's own options after them
    given = ctx.get(schema.START_COMMAND)
    start: list[str] = list(given) if given else [f"bin/start_{ctx.part}"]
    return ["--", start[0], "neutralize", *start[1:], "-d", "{db}"]


def restore(ctx: StepContext) -> list[BuildStep]:
    """Restore a dump into the test database (cached as a template per dump and server,
    neutralised); without a dump, fill an empty one with ``db-restore-command``."""
    dump, url = ctx.get(schema.RESTORE_DUMP), ctx.get(schema.RESTORE_URL)
    on_master = ctx.get(schema.RESTORE_MASTER_DUMP)
    sources = [
        option.name
        for option, value in (
            (schema.RESTORE_DUMP, dump),
            (schema.RESTORE_MASTER_DUMP, on_master),
            (schema.RESTORE_URL, url),
        )
        if value
    ]
    if not sources:
        command = ctx.get(schema.DB_RESTORE_COMMAND)
        if not command:
            raise ValueError(
                "step set 'restore' needs a dump (restore.dump, restore.master-dump or "
                "restore.url) or a db-restore-command"
            )
        return [
            ctx.shell(
                "restore_db",
                ctx.util_argv("pgdb", "restore", "--name", TESTING_DB, "--", *command),
            )
        ]
    if len(sources) > 1:
        count = {2: "two", 3: "three"}[len(sources)]
        raise ValueError(f"{' and '.join(sources)} are {count} sources: give one")
    secret = ctx.get(schema.RESTORE_AUTH_SECRET)
    if secret and not url:
        raise ValueError("restore.auth-secret goes with restore.url")
    member = ctx.get(schema.RESTORE_MEMBER)
    extra = ctx.get(schema.RESTORE_MAP)
    if extra and not member:
        raise ValueError("restore.map needs restore.member: the test database's own dump")
    argv: list[Any] = ["restore"]
    if member:
        argv.append(util.Interpolate("--map=%(prop:testing_db)s=%(kw:m)s", m=member))
        for (_name, path), db in zip(extra, extra_databases(ctx), strict=True):
            argv.append(util.Interpolate("--map=%(kw:db)s=%(kw:m)s", db=db, m=path))
    else:
        argv.append(util.Interpolate("--name=%(prop:testing_db)s"))
    sha = ctx.get(schema.RESTORE_SHA256)
    before: list[BuildStep] = []
    if on_master:
        root = ctx.get(schema.RESTORE_MASTER_DIR)
        before.append(MasterDumpDownload(root, on_master, sha or None))
        argv += [
            util.Interpolate("--dump=%(prop:builddir)s/" + MASTER_DUMP_FILE),
            "--delete-dump",
            # the same dump for every cell: one template per server, not per builder
            f"--cache-key=master:{root.rstrip('/')}/{on_master}",
            util.Interpolate(f"--sha256=%(prop:{SHA256_PROPERTY})s"),
        ]
    else:
        argv.append(f"--dump={dump}" if dump else f"--url={url}")
        if sha:
            argv.append(f"--sha256={sha}")
    if secret:
        argv.append(f"--auth-env={AUTH_ENV}")
    if not ctx.get(schema.RESTORE_CACHE):
        argv.append("--no-cache")
    elif ctx.get(schema.RESTORE_SPARE):
        argv.append("--spare")
    argv += _neutralize_command(ctx)
    kwargs: dict[str, Any] = {}
    if secret:
        kwargs = {"env": SecretEnv(ctx.env, AUTH_ENV, secret), "logEnviron": False}
    return [*before, ctx.shell("restore_db", ctx.util_argv(*argv), **kwargs)]


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
    result = [_drop_db(ctx.env, policy, ctx.get(schema.TEST_TIMEOUT))]
    if catalogue.RESTORE.name in ctx.get(schema.DB_STEPS):
        for i, name in enumerate(extra_databases(ctx), start=1):
            result.append(
                UtilStep(
                    name=f"drop_db_{i}",
                    command=util_argv("pgdb", "drop", "--name", name),
                    workdir=".",
                    env=ctx.env,
                    timeout=ctx.get(schema.TEST_TIMEOUT),
                    alwaysRun=True,
                    doStepIf=_DropWhen(policy),
                    haltOnFailure=False,
                    flunkOnFailure=False,
                    warnOnFailure=True,
                )
            )
    return result


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
