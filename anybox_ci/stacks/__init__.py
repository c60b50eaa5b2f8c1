"""Stacks: immutable sets of candidates that passed together, in the master's own database.

Beside ``changes`` and ``www``, on top of ``core``: :mod:`.store` holds the tables and the
atomic operations (record, freeze, promote), :mod:`.export` the read-only views the
command line, the REST resource and the web page share.
"""
