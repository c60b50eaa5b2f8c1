"""``python -m anybox_ci.cli``: the ``anybox-ci`` command where its console script is not on the
PATH (a checkout run with any interpreter, benchmarks timing the command itself)."""

import sys

from . import main

sys.exit(main())
