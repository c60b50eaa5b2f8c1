"""``anybox-ci check [DIR]``: every problem of a master folder, one line each.

Lines are ``FILE:LINE: [section] option: message``; cells no worker can run are
warnings in the same format. Exit 1 when there is an error; warnings do not count.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.diagnostics import Diagnostic, Severity
from ..core.loader import Loaded
from .common import Parser, add_dir_args


def load(args: argparse.Namespace) -> Loaded:
    """Everything the master would refuse, without starting one (shared with ``matrix``)."""
    from ..configurator import AnyboxConfigurator

    configurator = AnyboxConfigurator(
        args.dir, manifests=args.manifest or None, workers=args.workers or None
    )
    loaded = configurator.load()
    loaded.diagnostics.extend(configurator.render_problems(loaded))
    return loaded


def _unmatched_warnings(loaded: Loaded) -> list[Diagnostic]:
    """Cells without a worker, as warnings at their section's line."""
    sections = {b.name: b for b in loaded.config.buildouts}
    return [
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


def check(args: argparse.Namespace) -> int:
    loaded = load(args)
    problems = [*loaded.diagnostics.items, *_unmatched_warnings(loaded)]
    for diag in sorted(problems, key=lambda d: (d.path, d.line)):
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
    parser = Parser(prog="anybox-ci check", description=__doc__)
    add_dir_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return check(build_parser().parse_args(argv))
