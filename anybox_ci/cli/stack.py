"""``anybox-ci stack``: the stacks of a master, read from its own database.

    anybox-ci stack [--master DIR | --db-url URL] [--domain D] list
    anybox-ci stack ... show N | diff N M | export N [--format buildout|json]
    anybox-ci stack ... promote N CHANNEL [--author NAME] [--note TEXT]

The database is the master's ``c['db']['db_url']``, read from DIR's master.cfg (as
``buildbot`` reads it), or given with ``--db-url``. ``promote`` is an admin's forced
promotion or rollback, recorded with its author; everything else only reads.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from ..stacks.export import buildout_export, diff_lines, list_lines, show_lines, stack_dict
from ..stacks.model import CHANNELS, Stack
from ..stacks.store import StackError, StackStore, db_url_of
from .common import Parser, describe


def master_db_url(basedir: Path) -> str:
    """The ``db_url`` of the master in ``basedir``, as its master.cfg sets it."""
    from buildbot.config.master import FileLoader

    config = FileLoader(str(basedir.resolve()), "master.cfg").loadConfig()
    return db_url_of(config.db)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="anybox-ci stack", description=describe(__doc__))
    parser.add_argument("--master", type=Path, default=Path("."), metavar="DIR")
    parser.add_argument("--db-url", default=None, help="the database, instead of --master's")
    parser.add_argument("--domain", default=None, help="needed when there are several")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every stack, newest first, with its channels")
    show = sub.add_parser("show", help="one stack: its members and exact revisions")
    show.add_argument("number", type=int)
    show.add_argument("--json", action="store_true")
    compare = sub.add_parser("diff", help="what changed between two stacks")
    compare.add_argument("before", type=int)
    compare.add_argument("after", type=int)
    export = sub.add_parser("export", help="pinned revisions for deployment tools")
    export.add_argument("number", type=int)
    export.add_argument("--format", choices=("buildout", "json"), default="buildout")
    promote = sub.add_parser("promote", help="put a stack in a channel (promote or roll back)")
    promote.add_argument("number", type=int)
    promote.add_argument("channel", choices=CHANNELS)
    promote.add_argument("--author", default=None, help="default: USER@HOST")
    promote.add_argument("--note", default="", help="why, kept in the channel log")
    return parser


def _domain(store: StackStore, wanted: str | None) -> str:
    if wanted:
        return wanted
    domains = store.domains()
    if len(domains) == 1:
        return domains[0]
    if not domains:
        raise StackError("no stack yet")
    raise StackError(f"several domains ({', '.join(domains)}): choose one with --domain")


def run(args: argparse.Namespace, store: StackStore) -> list[str]:
    if args.action == "list":
        stacks = store.stacks(args.domain, limit=1000)
        channels = {d: store.channels(d) for d in {s.domain for s in stacks}}
        return list_lines(stacks, channels) or ["no stack yet"]
    domain = _domain(store, args.domain)

    def get(number: int) -> Stack:
        stack = store.stack(domain, number)
        if stack is None:
            raise StackError(f"domain {domain!r} has no stack {number}")
        return stack

    if args.action == "show":
        stack = get(args.number)
        if args.json:
            return [json.dumps(stack_dict(stack, store.channels(domain)), indent=1)]
        return show_lines(stack, store.channels(domain))
    if args.action == "diff":
        return diff_lines(get(args.before), get(args.after))
    if args.action == "export":
        stack = get(args.number)
        if args.format == "json":
            return [json.dumps(stack_dict(stack), indent=1)]
        return [buildout_export(stack).rstrip("\n")]
    author = args.author or f"{getpass.getuser()}@{socket.gethostname()}"
    move = store.promote(domain, args.number, args.channel, author, args.note or "anybox-ci stack")
    before = f" (was {move.previous})" if move.previous is not None else ""
    return [f"{domain}: stack {args.number} is {args.channel}{before}, by {author}"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        db_url = args.db_url or master_db_url(args.master)
    except Exception as exc:  # a master.cfg that does not load: one line
        print(f"anybox-ci stack: cannot read {args.master}/master.cfg: {exc}", file=sys.stderr)
        return 1
    store = StackStore.open(db_url, args.master.resolve())
    try:
        for line in run(args, store):
            print(line)
    except StackError as exc:
        print(f"anybox-ci stack: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
