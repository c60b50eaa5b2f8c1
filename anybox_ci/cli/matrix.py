"""``anybox-ci matrix [DIR] [--json]``: every builder, the workers that can run it, and
the cells that no worker can run, with the reason.

``--json`` prints ``{"builders": [{"name", "buildout", "workers", "properties"}],
"unmatched": [{"buildout", "reason"}]}`` with every list sorted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .check import load
from .common import Parser, add_dir_args


def matrix(args: argparse.Namespace) -> int:
    loaded = load(args)
    if loaded.diagnostics.errors:
        for diag in loaded.diagnostics.errors:
            print(diag, file=sys.stderr)
        return 1
    found = loaded.matrix
    if args.json:
        print(json.dumps(found.as_json(), indent=2, sort_keys=True))
        return 0
    width = max([len(c.name) for c in found.cells] + [7])
    print(f"{'builder':<{width}}  workers")
    for c in found.cells:
        print(f"{c.name:<{width}}  {', '.join(sorted(c.workers))}")
    for u in found.unmatched:
        where = f" {u.cell}" if u.cell else ""
        print(f"unmatched: [{u.buildout}]{where}: {u.reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="anybox-ci matrix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dir_args(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return matrix(build_parser().parse_args(argv))
