"""``anybox-ci install-hooks`` and ``anybox-ci notify-push``: push hooks of local
repositories, so that builds start within a second of a push.

Both live in :mod:`anybox_ci.changes.pushhooks` (installed hooks run it directly); this
module only gives them their place among the commands.
"""

from __future__ import annotations

from collections.abc import Sequence


def install_hooks_main(argv: Sequence[str] | None = None) -> int:
    from ..changes.pushhooks import install_hooks_main as run

    return run(None if argv is None else list(argv))


def notify_push_main(argv: Sequence[str] | None = None) -> int:
    from ..changes.pushhooks import notify_push_main as run

    return run(None if argv is None else list(argv))
