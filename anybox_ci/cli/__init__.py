"""The ``anybox-ci`` command: thin, over the same layers as the master.

Every problem prints as one ``FILE:LINE: [section] option: message`` line; no
traceback reaches the user for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..configurator import AnyboxConfigurator
from ..core.diagnostics import Diagnostic, Severity
from ..core.loader import Loaded


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _load(args: argparse.Namespace) -> Loaded:
    configurator = AnyboxConfigurator(
        args.dir,
        manifests=args.manifest or None,
        workers=args.workers or None,
    )
    loaded = configurator.load()
    loaded.diagnostics.extend(configurator.render_problems(loaded))
    return loaded


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    # unmatched cells are warnings in the same FILE:LINE format, at their section
    sections = {b.name: b for b in loaded.config.buildouts}
    unmatched = [
        Diagnostic(
            sections[u.buildout].manifest,
            sections[u.buildout].line,
            u.buildout,
            u.cell,
            u.reason,
            Severity.WARNING,
        )
        for u in loaded.matrix.unmatched
    ]
    for diag in sorted([*loaded.diagnostics.items, *unmatched], key=lambda d: (d.path, d.line)):
        print(diag)
    errors = len(loaded.diagnostics.errors)
    if errors:
        print(f"{errors} error(s)", file=sys.stderr)
        return 1
    cells = len(loaded.matrix.cells)
    print(
        f"ok: {len(loaded.config.buildouts)} buildout(s), {len(loaded.config.workers)} "
        f"worker(s), {cells} builder(s)",
        file=sys.stderr,
    )
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded.diagnostics.errors:
        for diag in loaded.diagnostics.errors:
            print(diag, file=sys.stderr)
        return 1
    matrix = loaded.matrix
    if args.json:
        print(json.dumps(matrix.as_json(), indent=2, sort_keys=True))
        return 0
    width = max([len(c.name) for c in matrix.cells] + [7])
    print(f"{'builder':<{width}}  workers")
    for c in matrix.cells:
        print(f"{c.name:<{width}}  {', '.join(sorted(c.workers))}")
    for u in matrix.unmatched:
        where = f" {u.cell}" if u.cell else ""
        print(f"unmatched: [{u.buildout}]{where}: {u.reason}")
    return 0


def _add_dir_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir",
        nargs="?",
        default=".",
        type=Path,
        help="master directory (default: current directory)",
    )
    parser.add_argument(
        "--manifest",
        action="append",
        metavar="PATH",
        help="manifest file, relative to DIR (repeatable)",
    )
    parser.add_argument(
        "--workers",
        action="append",
        metavar="PATH",
        help="workers file, relative to DIR (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="anybox-ci", description=__doc__.splitlines()[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="validate manifests and workers files")
    _add_dir_args(check)
    check.set_defaults(func=cmd_check)
    matrix = sub.add_parser("matrix", help="show every builder, its workers, unmatched cells")
    _add_dir_args(matrix)
    matrix.add_argument("--json", action="store_true", help="machine-readable output")
    matrix.set_defaults(func=cmd_matrix)
    # commands with their own parsers, dispatched by main() before this parser runs
    for name, (help_text, _) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _delegate(module: str, function: str = "main") -> Callable[[list[str]], int]:
    """Subcommands with their own parsers live in their own modules, imported on use."""

    def run(argv: list[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(argv))

    return run


DELEGATED: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "demo": (
        "run every sample buildout on a throwaway local setup",
        _delegate("anybox_ci.cli.demo"),
    ),
    "init": ("create a master folder ready for buildbot start", _delegate("anybox_ci.cli.init")),
    "docs": ("regenerate docs/reference from the option schema", _delegate("anybox_ci.cli.docs")),
    "update-mirrors": (
        "mirror every watched repository and notify the master of new commits",
        _delegate("anybox_ci.cli.update_mirrors"),
    ),
    "install-hooks": (
        "install push hooks that notify the master (git post-receive, hg changegroup)",
        _delegate("anybox_ci.changes.pushhooks", "install_hooks_main"),
    ),
    "notify-push": (
        "called by the push hooks",
        _delegate("anybox_ci.changes.pushhooks", "notify_push_main"),
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        try:
            return DELEGATED[argv[0]][1](argv[1:])
        except KeyboardInterrupt:
            return 130
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        print(f"anybox-ci: error: {exc}", file=sys.stderr)
        return 1


def update_mirrors_main(argv: Sequence[str] | None = None) -> int:
    """The ``update-mirrors`` console script."""
    return DELEGATED["update-mirrors"][1](list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
