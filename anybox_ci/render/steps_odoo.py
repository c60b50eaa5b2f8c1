"""Odoo step sets: install, test and update modules through the log analyser; autocommit."""

from __future__ import annotations

from typing import Any

from buildbot.process.buildstep import BuildStep

from ..core import schema
from ..core import stepset_catalogue as catalogue
from .stepset_registry import TESTING_DB, StepContext, StepSet

#: the log file ``update.log_file_option`` makes the upgrade script write
UPGRADE_LOG = "upgrade.log"


def _addons(ctx: StepContext) -> str:
    return ",".join(ctx.get(schema.ODOO_ADDONS))


def _start(ctx: StepContext) -> list[Any]:
    """The Odoo start script's argv: ``start-command``, else ``bin/start_<part>``."""
    command = ctx.get(schema.START_COMMAND)
    return list(command) if command else [f"bin/start_{ctx.part}"]


def _odoo_run(
    ctx: StepContext, name: str, log: str, command: list[Any], *more_logs: str
) -> list[BuildStep]:
    logfiles = {path.replace(".", "_"): path for path in (log, *more_logs)}
    return [
        ctx.shell(
            name,
            ctx.util_argv("odoo_log", "run", "--log", log, "--", *command),
            logfiles=logfiles,
        )
    ]


def install_modules_test(ctx: StepContext) -> list[BuildStep]:
    """Install ``odoo-addons`` with their tests; the log analyser names failures."""
    scripts = ctx.get(schema.TEST_COMMAND)
    command: list[Any] = list(scripts[0]) if scripts else [f"bin/test_{ctx.part}"]
    command += ["-i", _addons(ctx), "-d", TESTING_DB]
    tags = ctx.get(schema.ODOO_TEST_TAGS)
    if tags:
        command.append(f"--test-tags={tags}")
    if ctx.get(schema.ODOO_USE_PORT):
        command += ["--http-port=0"]
    return _odoo_run(ctx, "install_modules_test", "test.log", command)


def install_modules(ctx: StepContext) -> list[BuildStep]:
    """Install ``odoo-addons`` without tests, optionally through the upgrade script."""
    if ctx.get(schema.INSTALL_AS_UPGRADE):
        script = ctx.get(schema.UPGRADE_SCRIPT) or f"bin/upgrade_{ctx.part}"
        command: list[Any] = [script, "--init-load-demo-data"]
    else:
        command = _start(ctx)
        command += ["-i", _addons(ctx), "-d", TESTING_DB, "--stop-after-init"]
        if not ctx.get(schema.INSTALL_DEMO_DATA):
            command.append("--without-demo=all")
    return _odoo_run(ctx, "install_modules", "install.log", command)


def update_modules(ctx: StepContext) -> list[BuildStep]:
    """Update ``odoo-addons`` (``-u``), or run ``upgrade.script`` with its own log file."""
    script = ctx.get(schema.UPGRADE_SCRIPT)
    if not script:
        command = _start(ctx) + ["-u", _addons(ctx), "-d", TESTING_DB, "--stop-after-init"]
        return _odoo_run(ctx, "update_modules", "update.log", command)
    log_option = ctx.get(schema.UPDATE_LOG_FILE_OPTION)
    if not log_option:
        return _odoo_run(ctx, "update_modules", "update.log", [script])
    command = [script, log_option, UPGRADE_LOG]
    return _odoo_run(ctx, "update_modules", "update.log", command, UPGRADE_LOG)


#: modules the ancestor left out of ``--all-modules`` (they need services a build lacks)
_ALL_MODULES_EXCLUDED = ("auth_ldap", "document_ftp")


def openerp_command_tests(ctx: StepContext) -> list[BuildStep]:
    """Install ``odoo-addons`` with their tests through ``bin/<part>_command initialize``."""
    command: list[Any] = [
        f"bin/{ctx.part}_command",
        "initialize",
        "--no-create",
        "--tests",
        "--database",
        TESTING_DB,
    ]
    addons = ctx.get(schema.ODOO_ADDONS)
    if addons == ("all",):
        command.append("--all-modules")
        for module in _ALL_MODULES_EXCLUDED:
            command += ["--exclude", module]
    else:
        for module in addons:
            command += ["--module", module]
    if ctx.get(schema.ODOO_USE_PORT):
        # a free port reserved for the whole run (build_utils/ports.py)
        command = ctx.util_argv("ports", "--", *command, "--port={port}")
    return [ctx.shell("openerp_command_tests", command)]


def autocommit(ctx: StepContext) -> list[BuildStep]:
    """Run the recipe's autocommit script, which commits and pushes what the build froze."""
    script = ctx.get(schema.AUTOCOMMIT_SCRIPT) or f"bin/autocommit_{ctx.part}"
    message = ctx.get(schema.AUTOCOMMIT_MESSAGE)
    return [ctx.shell("autocommit", [script, "-c", ctx.config_file, "--push", "-m", message])]


STEP_SETS: tuple[tuple[catalogue.StepSetSpec, StepSet], ...] = (
    (catalogue.INSTALL_MODULES_TEST, install_modules_test),
    (catalogue.INSTALL_MODULES, install_modules),
    (catalogue.UPDATE_MODULES, update_modules),
    (catalogue.OPENERP_COMMAND_TESTS, openerp_command_tests),
    (catalogue.AUTOCOMMIT, autocommit),
)
