"""``anybox-ci matrix [DIR] [--json]``: every builder, the workers that can run it, and
the cells that no worker can run, with the reason.

``--json`` prints ``{"builders": [{"name", "buildout", "workers", "properties"}],
"unmatched": [{"buildout", "reason"}]}`` with every list sorted. A buildout section with
an error is shown as a starting master runs it: left out, under
``"broken": [{"buildout", "reason"}]`` (a key only there when a section is broken), and
the command then exits 1, as ``anybox-ci check`` does. Any other error (a workers file,
an unreadable manifest) prints the errors alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..core.loader import leave_out_broken
from .check import load
from .common import Parser, add_dir_args


def matrix(args: argparse.Namespace) -> int:
    loaded = load(args)
    errors = loaded.diagnostics.errors
    reduced = leave_out_broken(loaded, errors)
    if reduced is None:
        for diag in errors:
            print(diag, file=sys.stderr)
        return 1
    for diag in errors:
        print(diag, file=sys.stderr)
    found = reduced.matrix
    status = 1 if errors else 0
    if args.json:
        print(json.dumps(found.as_json(), indent=2, sort_keys=True))
        return status
    width = max([len(c.name) for c in found.cells] + [7])
    print(f"{'builder':<{width}}  workers")
    for c in found.cells:
        print(f"{c.name:<{width}}  {', '.join(sorted(c.workers))}")
    for u in found.unmatched:
        where = f" {u.cell}" if u.cell else ""
        print(f"unmatched: [{u.buildout}]{where}: {u.reason}")
    for b in found.broken:
        print(f"broken: {b.reason}")
    return status


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
