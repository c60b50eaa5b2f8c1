"""The ``anybox-ci`` command: ``main`` and the table of subcommands.

Each subcommand is a module of this package with its own ``main(argv)``, imported only
when it runs, so that ``anybox-ci --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from .common import Parser


class Command(NamedTuple):
    help: str
    module: str
    function: str = "main"


#: name -> what it is for, in a user's words, and where it lives
COMMANDS: dict[str, Command] = {
    "check": Command(
        "find every mistake in a master folder's manifests and workers", "anybox_ci.cli.check"
    ),
    "matrix": Command(
        "show each builder, the workers that run it, and what cannot run", "anybox_ci.cli.matrix"
    ),
    "run": Command(
        "build and test a master folder on this machine, then print a table", "anybox_ci.cli.run"
    ),
    "demo": Command(
        "try anybox_ci: build and test the shipped sample buildouts here", "anybox_ci.cli.demo"
    ),
    "init": Command("create a new master folder, ready for 'buildbot start'", "anybox_ci.cli.init"),
    "migrate": Command(
        "rewrite the ancestor's manifests and workers files in today's names",
        "anybox_ci.cli.migrate",
    ),
    "update-mirrors": Command(
        "update the mirrors and tell the master about new commits", "anybox_ci.cli.update_mirrors"
    ),
    "install-hooks": Command(
        "add push hooks to a repository: builds start within a second",
        "anybox_ci.cli.hooks",
        "install_hooks_main",
    ),
    "notify-push": Command(
        "tell the master about pushed commits (run by the push hooks)",
        "anybox_ci.cli.hooks",
        "notify_push_main",
    ),
    "docs": Command("rewrite the manifest and workers reference pages", "anybox_ci.cli.docs"),
    "stack": Command(
        "list, show, diff, export and promote the stacks of a master", "anybox_ci.cli.stack"
    ),
}

DESCRIPTION = """\
Build and test zc.buildout projects (Odoo first) with Buildbot, on every worker and
PostgreSQL version that fits them."""


def build_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in COMMANDS) + 2
    listing = "\n".join(f"  {name:<{width}}{c.help}" for name, c in COMMANDS.items())
    parser = Parser(
        prog="anybox-ci",
        usage="anybox-ci [-h] COMMAND [ARGS...]",
        description=f"{DESCRIPTION}\n\ncommands:\n{listing}",
        epilog="'anybox-ci COMMAND --help' shows the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.help = argparse.SUPPRESS  # listed in the description, one line each
    for name in COMMANDS:
        sub.add_parser(name, add_help=False)
    return parser


def run_command(name: str, argv: Sequence[str]) -> int:
    command = COMMANDS[name]
    function = getattr(importlib.import_module(command.module), command.function)
    return int(function(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        build_parser().parse_args(args)  # prints help, or a one-line error, and exits
        return 2
    try:
        return run_command(args[0], args[1:])
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        print(f"anybox-ci {args[0]}: error: {exc}", file=sys.stderr)
        return 1


def update_mirrors_main(argv: Sequence[str] | None = None) -> int:
    """The ``update-mirrors`` console script."""
    return run_command("update-mirrors", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
