"""Old path of the push hooks, kept because installed git/hg hooks run
``python -m anybox_ci.hooks notify-push``; the code lives in ``anybox_ci.changes.pushhooks``."""

import sys

from anybox_ci.changes.pushhooks import _module_main, install_hooks, notify_push_command

__all__ = ["install_hooks", "notify_push_command"]

if __name__ == "__main__":
    sys.exit(_module_main(sys.argv[1:]))
