"""The step-set registry: plain functions keyed by the names users write in manifests.

``db-steps``, ``post-dl-steps`` and ``post-buildout-steps`` name step sets. Each is a
function ``(StepContext) -> list of steps``; master.cfg adds its own with
:func:`StepSets.register`, or passes a whole registry to the configurator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from buildbot.plugins import steps, util
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import SUCCESS, WARNINGS

from ..core.model import Buildout
from .buildsteps import CellEnv, UtilStep
from .utils_bundle import BUNDLE_NAME

KINDS = ("post-dl-steps", "db-steps", "post-buildout-steps")

TESTING_DB = util.Property("testing_db")
UTILS_PYTHON = util.Property("anybox_utils_python", default="python3")
UTILS_BUNDLE = util.Interpolate("%(prop:builddir)s/" + BUNDLE_NAME)


def util_argv(script: str, *args: Any) -> list[Any]:
    """argv running a build_utils script from the bundle sent to the worker."""
    return [UTILS_PYTHON, UTILS_BUNDLE, script, *args]


@dataclass(frozen=True)
class StepContext:
    """What a step set may use: the buildout, the cell env, where the buildout lives."""

    buildout: Buildout
    env: CellEnv
    #: folder of the buildout on the worker, relative to the builder's folder
    workdir: str
    #: the buildout configuration file, relative to ``workdir``
    config_file: str

    def opt(self, name: str) -> Any:
        return self.buildout.opt(name)

    @property
    def part(self) -> str:
        return str(self.opt("buildout-part"))

    def util_argv(self, script: str, *args: Any) -> list[Any]:
        return util_argv(script, *args)

    def shell(self, name: str, command: Any, **kwargs: Any) -> BuildStep:
        kwargs.setdefault("workdir", self.workdir)
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("haltOnFailure", True)
        kwargs.setdefault("timeout", self.opt("test-timeout"))
        return UtilStep(name=name, command=command, **kwargs)


StepSet = Callable[[StepContext], list[BuildStep]]


@dataclass
class StepSets:
    """Registry of step sets per kind, with deprecated aliases."""

    sets: dict[str, dict[str, StepSet]] = field(default_factory=lambda: {k: {} for k in KINDS})
    #: old names (deprecated) -> current names
    aliases: dict[str, str] = field(default_factory=dict)

    def register(self, kind: str, name: str, *aliases: str) -> Callable[[StepSet], StepSet]:
        if kind not in self.sets:
            raise ValueError(f"unknown step set kind {kind!r}; expected one of {KINDS}")

        def decorator(func: StepSet) -> StepSet:
            self.sets[kind][name] = func
            for alias in aliases:
                self.aliases[alias] = name
            return func

        return decorator

    def names(self) -> Mapping[str, Mapping[str, str]]:
        """Per kind, every accepted name -> its current name (aliases are old names)."""
        return {
            kind: {
                **{name: name for name in funcs},
                **{alias: name for alias, name in self.aliases.items() if name in funcs},
            }
            for kind, funcs in self.sets.items()
        }

    def get(self, kind: str, name: str) -> StepSet:
        return self.sets[kind][self.aliases.get(name, name)]

    def copy(self) -> StepSets:
        return StepSets({k: dict(v) for k, v in self.sets.items()}, dict(self.aliases))


DEFAULT_STEP_SETS = StepSets()
register = DEFAULT_STEP_SETS.register


def _addons(ctx: StepContext) -> str:
    return ",".join(ctx.opt("odoo-addons"))


def _script(ctx: StepContext, option: str, default: str) -> list[Any]:
    value = ctx.opt(option)
    if value:
        return list(value[0] if isinstance(value[0], tuple) else value)
    return [default]


# ---------------------------------------------------------------- database steps


@register("db-steps", "simple_create")
def simple_create(ctx: StepContext) -> list[BuildStep]:
    """Drop and create the cell's test database from ``db_template``."""
    return [_create_db(ctx.env, ctx.opt("db_template"), ctx.opt("test-timeout"))]


@lru_cache(maxsize=1024)
def _create_db(env: CellEnv, template: str, timeout: int) -> BuildStep:
    return UtilStep(
        name="create_db",
        command=util_argv(
            "pgdb",
            "create",
            "--name",
            TESTING_DB,
            "--template",
            template,
        ),
        workdir=".",
        env=env,
        haltOnFailure=True,
        timeout=timeout,
    )


@register("db-steps", "restore")
def restore(ctx: StepContext) -> list[BuildStep]:
    """Create an empty test database and fill it with ``db-restore-command``."""
    command = ctx.opt("db-restore-command")
    if not command:
        raise ValueError("the restore db step needs 'db-restore-command'")
    return [
        ctx.shell(
            "restore_db", ctx.util_argv("pgdb", "restore", "--name", TESTING_DB, "--", *command)
        )
    ]


@dataclass(frozen=True)
class _DropWhen:
    """``doStepIf`` of the final drop: always, or after a successful build only."""

    policy: str

    def __call__(self, step: BuildStep) -> bool:
        return self.policy == "always" or step.build.results in (SUCCESS, WARNINGS)


def cleanup_steps(ctx: StepContext) -> list[BuildStep]:
    """Drop the test database at the end, as ``db-cleanup`` says."""
    policy = ctx.opt("db-cleanup")
    if policy == "never" or not ctx.opt("db-steps"):
        return []
    return [_drop_db(ctx.env, policy, ctx.opt("test-timeout"))]


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


# ---------------------------------------------------------------- Odoo


def _odoo_run(ctx: StepContext, name: str, log: str, command: list[Any]) -> list[BuildStep]:
    return [
        ctx.shell(
            name,
            ctx.util_argv("odoo_log", "run", "--log", log, "--", *command),
            logfiles={log.replace(".", "_"): log},
        )
    ]


@register("post-buildout-steps", "install-modules-test", "standard", "test-openerp", "test-odoo")
def install_modules_test(ctx: StepContext) -> list[BuildStep]:
    """Install ``odoo-addons`` with their tests (``bin/test_<part>``); the log analyser names failures."""
    command = _script(ctx, "test-command", f"bin/test_{ctx.part}")
    command += ["-i", _addons(ctx), "-d", TESTING_DB]
    if ctx.opt("odoo.use-port"):
        command += ["--http-port=0"]
    return _odoo_run(ctx, "install_modules_test", "test.log", command)


@register("post-buildout-steps", "install-modules")
def install_modules(ctx: StepContext) -> list[BuildStep]:
    """Install ``odoo-addons`` without tests, optionally through the upgrade script."""
    if ctx.opt("install-as-upgrade"):
        command = _script(ctx, "upgrade.script", f"bin/upgrade_{ctx.part}")
        command += ["--init-load-demo-data"]
    else:
        command = _script(ctx, "start-command", f"bin/start_{ctx.part}")
        command += ["-i", _addons(ctx), "-d", TESTING_DB, "--stop-after-init"]
        if not ctx.opt("install.demo-data"):
            command.append("--without-demo=all")
    return _odoo_run(ctx, "install_modules", "install.log", command)


@register("post-buildout-steps", "update-modules", "update-odoo")
def update_modules(ctx: StepContext) -> list[BuildStep]:
    """Update ``odoo-addons`` (``-u``), or run ``upgrade.script``."""
    if ctx.opt("upgrade.script"):
        command = [ctx.opt("upgrade.script")]
    else:
        command = _script(ctx, "start-command", f"bin/start_{ctx.part}")
        command += ["-u", _addons(ctx), "-d", TESTING_DB, "--stop-after-init"]
    return _odoo_run(ctx, "update_modules", "update.log", command)


# ---------------------------------------------------------------- generic runners


def _each(ctx: StepContext, name: str, commands: tuple[tuple[str, ...], ...]) -> list[BuildStep]:
    if not commands:
        raise ValueError(f"step set {name!r} needs at least one command")
    return [
        ctx.shell(f"{name}_{i}" if len(commands) > 1 else name, list(cmd))
        for i, cmd in enumerate(commands, start=1)
    ]


@register("post-buildout-steps", "test-command")
def test_command(ctx: StepContext) -> list[BuildStep]:
    """Run each ``test-command`` line, for any buildout (Plone, plain Python...)."""
    return _each(ctx, "test", ctx.opt("test-command"))


@register("post-buildout-steps", "pytest")
def pytest_steps(ctx: StepContext) -> list[BuildStep]:
    """Run ``bin/pytest`` with ``pytest-args``."""
    return [ctx.shell("pytest", ["bin/pytest", *ctx.opt("pytest-args")])]


@register("post-buildout-steps", "nose", "install-modules-nose")
def nose(ctx: StepContext) -> list[BuildStep]:
    """Run ``bin/nosetests`` on ``nose.tests``, with coverage if asked."""
    command = ["bin/nosetests", "-v", *ctx.opt("nose.tests")]
    if ctx.opt("nose.coverage"):
        command += ["--with-coverage", *ctx.opt("nose.cover-options")]
    return [ctx.shell("nose", command)]


@register("post-buildout-steps", "static-analysis")
def static_analysis(ctx: StepContext) -> list[BuildStep]:
    """Run ``static-analysis-command`` (flake8 on ``static-analysis.flake-directories`` by default)."""
    commands = ctx.opt("static-analysis-command")
    dirs = ctx.opt("static-analysis.flake-directories")
    if dirs and commands == (("bin/flake8",),):
        length = f"--max-line-length={ctx.opt('static-analysis.max-line-length')}"
        commands = (("bin/flake8", length, *dirs),)
    return _each(ctx, "static_analysis", commands)


@register("post-buildout-steps", "doc")
def doc(ctx: StepContext) -> list[BuildStep]:
    """Build the docs (``doc-command``, or sphinx) and upload them to ``doc.upload-dir``."""
    commands = ctx.opt("doc-command") or (
        (ctx.opt("doc.sphinx-bin"), "-b", "html", ctx.opt("doc.sphinx-sourcedir"), "doc-html"),
    )
    result = _each(ctx, "doc", commands)
    if ctx.opt("doc.upload-dir"):
        result.append(
            steps.DirectoryUpload(
                name="upload_doc",
                workersrc="doc-html",
                masterdest=util.Interpolate(ctx.opt("doc.upload-dir")),
                workdir=ctx.workdir,
            )
        )
    return result


@register("post-buildout-steps", "functional")
def functional(ctx: StepContext) -> list[BuildStep]:
    """Start ``functional.server-command`` on a reserved port, wait until it answers, run ``functional.commands``, stop it."""
    server = ctx.opt("functional.server-command")
    commands = ctx.opt("functional.commands")
    if not server or not commands:
        raise ValueError(
            "the functional step set needs functional.server-command and functional.commands"
        )
    import json

    result = []
    for i, cmd in enumerate(commands, start=1):
        argv = ctx.util_argv(
            "functional",
            "--server-cmd-json",
            json.dumps(list(server)),
            "--timeout",
            str(ctx.opt("functional.timeout")),
        )
        if ctx.opt("functional.wait-url"):
            argv += ["--wait-url", ctx.opt("functional.wait-url")]
        argv += ["--", *cmd]
        result.append(ctx.shell(f"functional_{i}" if len(commands) > 1 else "functional", argv))
    return result


@register("post-buildout-steps", "packaging")
def packaging(ctx: StepContext) -> list[BuildStep]:
    """Make a tarball of the built buildout and upload it to ``packaging.upload-dir``."""
    prefix = ctx.opt("packaging.prefix") or ctx.buildout.name
    archive = util.Interpolate(f"{prefix}-%(prop:got_revision:-build%(prop:buildnumber)s)s.tar.gz")
    result: list[BuildStep] = [
        ctx.shell(
            "packaging",
            ["tar", "--exclude-vcs", "-czf", util.Interpolate(f"../{prefix}.tar.gz"), "."],
        ),
    ]
    if ctx.opt("packaging.upload-dir"):
        result.append(
            steps.FileUpload(
                name="upload_package",
                workersrc=f"../{prefix}.tar.gz",
                masterdest=util.Interpolate(
                    ctx.opt("packaging.upload-dir") + "/%(kw:a)s", a=archive
                ),
                workdir=ctx.workdir,
            )
        )
    return result


@register("post-buildout-steps", "autocommit")
def autocommit(ctx: StepContext) -> list[BuildStep]:
    """Run the recipe's autocommit script, which commits and pushes what the build froze."""
    script = ctx.opt("autocommit.script") or f"bin/autocommit_{ctx.part}"
    message = ctx.opt("autocommit.message")
    return [ctx.shell("autocommit", [script, "-c", ctx.config_file, "--push", "-m", message])]


@register("post-dl-steps", "noop")
def noop(ctx: StepContext) -> list[BuildStep]:
    """Nothing (the ancestor's default post-download step set)."""
    return []
