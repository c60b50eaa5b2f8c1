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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _load(args: argparse.Namespace) -> Loaded:
    configurator = AnyboxConfigurator(
        args.dir,
        manifests=args.manifest or None,
        workers=args.workers or None,
    )
    return configurator.load()


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args)
    for diag in sorted(loaded.diagnostics.items, key=lambda d: (d.path, d.line)):
        print(diag)
    for u in loaded.matrix.unmatched:
        cell = f" {u.cell}" if u.cell else ""
        print(f"warning: [{u.buildout}]{cell}: {u.reason}")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
