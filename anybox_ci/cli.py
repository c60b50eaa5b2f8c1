"""The ``anybox-ci`` command: thin, over the same layers as the master.

Every problem prints as one ``FILE:LINE: [section] option: message`` line; no
traceback reaches the user for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .configurator import AnyboxConfigurator, Loaded
from .diagnostics import Diagnostic, Severity


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
    demo = sub.add_parser(
        "demo", help="run every sample buildout on a throwaway local setup", add_help=False
    )
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    demo.set_defaults(func=lambda a: _delegate("demo", a.rest))
    docs = sub.add_parser(
        "docs", help="regenerate docs/reference from the option schema", add_help=False
    )
    docs.add_argument("rest", nargs=argparse.REMAINDER)
    docs.set_defaults(func=lambda a: _delegate("docs", a.rest))
    mirrors = sub.add_parser(
        "update-mirrors", help="fetch every watched repository's mirror", add_help=False
    )
    mirrors.add_argument("rest", nargs=argparse.REMAINDER)
    mirrors.set_defaults(func=lambda a: update_mirrors_main(a.rest))
    return parser


def _hooks(function: str, argv: list[str]) -> int:
    from . import hooks

    return int(getattr(hooks, function)(argv))


def _delegate(module: str, argv: list[str]) -> int:
    """Subcommands with their own parsers live in their own modules."""
    import importlib

    return int(importlib.import_module(f"anybox_ci.{module}").main(argv))


DELEGATED = {
    "demo": lambda rest: _delegate("demo", rest),
    "docs": lambda rest: _delegate("docs", rest),
    "init": lambda rest: _delegate("init", rest),
    "install-hooks": lambda rest: _hooks("install_hooks_main", rest),
    "notify-push": lambda rest: _hooks("notify_push_main", rest),
    "update-mirrors": lambda rest: update_mirrors_main(rest),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        try:
            return int(DELEGATED[argv[0]](argv[1:]))
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
    from . import mirrors

    return mirrors.update_mirrors_main(list(argv) if argv is not None else None)


if __name__ == "__main__":
    sys.exit(main())
