"""From a push to the master's change hook: mirrors, the changes they reveal, spool, delivery.

Stdlib and ``anybox_ci.core`` only, so ``update-mirrors`` and push hooks run without Buildbot.
``update`` drives the per-VCS backends (``git``, ``hg``, ``bzr``); ``spool`` and ``delivery``
carry the changes to the hook, whose side of the exchange is ``protocol``.
"""
