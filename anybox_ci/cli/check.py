"""``anybox-ci check [DIR]``: every problem of a master folder, one line each.

Lines are ``FILE:LINE: [section] option: message``; cells no worker can run are
warnings in the same format. Exit 1 when there is an error; warnings do not count.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.loader import Loaded, check
from .common import Parser, add_dir_args, describe


def load(args: argparse.Namespace) -> Loaded:
    """Everything the master would refuse, without Buildbot (shared with ``matrix``)."""
    return check(args.dir, args.manifest or None, args.workers or None)


def report(args: argparse.Namespace) -> int:
    loaded = load(args)
    for diag in loaded.diagnostics.items:
        print(diag)
    errors = len(loaded.diagnostics.errors)
    if errors:
        print(f"{errors} error(s)", file=sys.stderr)
        return 1
    print(
        f"ok: {len(loaded.config.buildouts)} buildout(s), {len(loaded.config.workers)} "
        f"worker(s), {len(loaded.matrix.cells)} builder(s)",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="anybox-ci check", description=describe(__doc__))
    add_dir_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return report(build_parser().parse_args(argv))
