"""What several commands share: one-line usage errors and the master-folder arguments."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (no usage block): bad input is one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def describe(doc: str | None) -> str:
    """A command's docstring as its ``--help`` text: without the reST markup."""
    return (doc or "").replace("``", "")


def add_dir_args(parser: argparse.ArgumentParser, workers: bool = True) -> None:
    """``[DIR] [--manifest PATH]... [--workers PATH]...``, as the configurator takes them;
    without ``--workers`` for commands that bring their own worker (``run``)."""
    parser.add_argument(
        "dir",
        nargs="?",
        default=".",
        type=Path,
        help="master folder (default: the current folder)",
    )
    parser.add_argument(
        "--manifest",
        action="append",
        metavar="PATH",
        help="manifest file, relative to DIR (repeatable; default buildouts/MANIFEST.cfg)",
    )
    if not workers:
        return
    parser.add_argument(
        "--workers",
        action="append",
        metavar="PATH",
        help="workers file, relative to DIR (repeatable; default workers.cfg, workers.d/*.cfg)",
    )


def majors(text: str) -> list[int]:
    """``--pg 13,15,17``: PostgreSQL major versions, sorted, without duplicates."""
    try:
        found = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected majors like 13,15,17, got {text!r}") from None
    if not found:
        raise argparse.ArgumentTypeError("no PostgreSQL version given")
    return found
