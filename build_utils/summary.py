"""What every worker-side script shares: the summary line and argv parsing.

The last stdout line of a script is ``anybox-ci summary: TEXT``; the master shows TEXT
as the step's summary. Usage errors end with that line too.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

SUMMARY_PREFIX = "anybox-ci summary: "


def print_summary(text: str) -> None:
    sys.stdout.flush()
    print(SUMMARY_PREFIX + " ".join(text.split()), flush=True)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors also end with the summary line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print_summary(f"usage error: {message}")
        sys.exit(2)
