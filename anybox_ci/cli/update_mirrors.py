"""``update-mirrors`` (also ``anybox-ci update-mirrors``): mirror, spool and deliver changes.

Run it from cron on the master's host. It updates a local mirror of every repository the
manifests watch, spools each new revision, and posts the spool to the master's change hook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from ..changes.delivery import SECRET_ENV, deliver, hook_endpoint, read_secret
from ..changes.layout import Remote, load_remotes
from ..changes.locking import MirrorsLocked
from ..changes.spool import Spool
from ..changes.tools import DEFAULT_TIMEOUT
from ..changes.update import EXIT_LOCKED, RemoteStatus, update_mirrors
from ..configurator import AnyboxConfigurator
from ..core.rewrites import RewriteRule, parse_rewrite_rules
from ..core.vcs import redact_url


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr, not a usage block or a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def remotes_from_master(master_dir: Path) -> tuple[list[Remote], list[str]]:
    """Every repository the master's manifests watch (auto-watched ones included), and one
    line per problem: a manifest error, or a repository that cannot be mirrored.

    One bad repository, or one bad buildout, never stops the others from being mirrored.
    """
    loaded = AnyboxConfigurator(master_dir).load()
    problems = [str(d) for d in loaded.diagnostics.errors]
    seen: list[Remote] = []
    for watch in loaded.watches:
        try:
            remote = Remote(watch.vcs, watch.url)
        except ValueError as exc:
            problems.append(f"skipped: {exc}")
            continue
        if remote not in seen:
            seen.append(remote)
    return seen, problems


def main(argv: list[str] | None = None) -> int:
    """``update-mirrors``: update, spool and deliver; exit 1 when any remote failed.

    A remote that cannot be mirrored (a bad URL, a broken buildout) is reported on one line
    and skipped: the others are still mirrored, and the exit code is 1. Exit 2 is for bad
    arguments and unreadable inputs.
    """
    parser = _Parser(
        prog="update-mirrors",
        description=(main.__doc__ or "").split("\n\n")[0],
        allow_abbrev=False,
    )
    parser.add_argument("--root", required=True, type=Path, help="folder holding the mirrors")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--master",
        type=Path,
        help="master directory: mirror every repository its manifests watch",
    )
    source.add_argument(
        "--remotes-file",
        type=Path,
        help='JSON list of {"vcs": "git|hg|bzr", "url": URL}',
    )
    parser.add_argument("--jobs", type=int, default=4, help="parallel fetches (default 4)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds allowed per VCS command"
    )
    parser.add_argument(
        "--rewrite-file",
        type=Path,
        help="'PREFIX -> REPLACEMENT' lines applied to the URLs fetched",
    )
    parser.add_argument(
        "--notify",
        metavar="URL",
        action="append",
        help="master base URL to deliver changes to; repeat it for several masters sharing "
        "one database: the next is tried when one is down",
    )
    parser.add_argument("--user", default="anybox-ci", help="change hook user")
    parser.add_argument("--secret-file", help=f"change hook password file (else ${SECRET_ENV})")
    parser.add_argument("--spool", type=Path, help="change spool (default ROOT/.spool)")
    parser.add_argument("--wait", action="store_true", help="wait for a concurrent run to finish")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    prog = parser.prog

    def fail(message: str, code: int = 2) -> int:
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code

    if args.jobs < 1:
        return fail("--jobs must be at least 1")
    if args.timeout <= 0:
        return fail("--timeout must be positive")
    problems: list[str] = []
    try:
        if args.master:
            remotes, problems = remotes_from_master(args.master)
        else:
            remotes = load_remotes(args.remotes_file)
        rules: list[RewriteRule] = []
        if args.rewrite_file:
            rules = parse_rewrite_rules(args.rewrite_file.read_text(), str(args.rewrite_file))
        secret = ""
        if args.notify:
            for url in args.notify:
                hook_endpoint(url)
            secret = read_secret(args.secret_file)
    except OSError as exc:
        return fail(f"{exc.filename}: {exc.strerror}")
    except ValueError as exc:
        return fail(str(exc))
    for problem in problems:
        print(f"{prog}: error: {' '.join(problem.split())}", file=sys.stderr)
    spool = None
    if args.notify or args.spool:
        spool = Spool(args.spool or args.root / ".spool")

    def show(status: RemoteStatus) -> None:
        where = f"{status.remote.vcs} {redact_url(status.remote.url)}"
        for warning in status.warnings:
            print(f"{prog}: warning: {where}: {warning}", file=sys.stderr)
        if not status.ok:
            print(f"{prog}: FAILED {where}: {status.reason}", file=sys.stderr)

    try:
        report = update_mirrors(
            remotes,
            args.root,
            jobs=args.jobs,
            timeout=args.timeout,
            progress=show,
            wait=args.wait,
            rules=rules,
            sink=None if spool is None else spool.append,
        )
    except MirrorsLocked as exc:
        return fail(str(exc), EXIT_LOCKED)
    except OSError as exc:
        return fail(f"{exc.filename or args.root}: {exc.strerror}")
    delivered, still = 0, 0
    if spool is not None:
        if args.notify:
            try:
                delivery = deliver(spool, args.notify, args.user, secret)
            except MirrorsLocked as exc:
                print(f"{prog}: delivery skipped: {exc}", file=sys.stderr)
            else:
                delivered = delivery.delivered
                if delivery.error:
                    print(f"{prog}: delivery stopped: {delivery.error}", file=sys.stderr)
                if delivery.rejected:
                    print(
                        f"{prog}: {delivery.rejected} change(s) refused by the master, "
                        f"kept in {spool.rejected_dir}",
                        file=sys.stderr,
                    )
        still = len(spool.pending())
    print(
        f"{prog}: {len(report.ok)} ok, {len(report.failed) + len(problems)} failed, "
        f"{len(report.changes)} changes, {delivered} delivered, {still} still spooled"
    )
    return 1 if report.failed or problems else 0
