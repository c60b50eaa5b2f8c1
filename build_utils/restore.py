"""Restore a production dump into the test database, cached as a template per dump and server.

    python3 restore.py (--name DB | --map DB=MEMBER ...) (--dump PATH | --url URL [--auth-env VAR])
                       [--sha256 HEX] [--cache-key KEY | --no-cache] [--spare] [--jobs N]
                       [--delete-dump]
                       [--strategy file_copy|wal_log] [--no-neutralize] [--maintenance-db DB]
                       [-- NEUTRALIZE-COMMAND ARGS...]

Why: restoring a real database takes minutes; copying a template takes about a second. The
first restore of a dump on a cluster becomes the template ``anybox_tpl_<16 hex>`` (a hash of
the cache key, the dump's SHA-256, the server major, the archive member and the
neutralisation), marked by a JSON ``COMMENT ON DATABASE``; later builds only run
``CREATE DATABASE DB TEMPLATE tpl``. When the dump of a cache key (default: the path or URL)
changes, the templates of its older checksums are dropped. That copy is bound by the disk;
``--spare`` keeps one more copy ready (``anybox_spr_<16 hex>``, made in a detached psql after
the step's work), which the next build only renames: one more copy on disk, no copy in the step.

Prints ``restore_cache=hit|miss|off``, for a single database ``restore_template=NAME`` (empty
without a cache), one line per database, then the summary line. Pass values that may start
with ``-`` attached: ``--name=DB``, ``--dump=PATH``.

Formats are recognised by their content: plain SQL, ``pg_dump -Fc`` (``PGDMP``), each
possibly gzip, bzip2 or xz compressed, and tar archives of such dumps, one per database
(``--map DB=MEMBER``). Members are streamed, never extracted, so their names are only keys.

Safety: every restore goes into a staging database ``anybox_stg_<16 hex>`` that gets its final
name (template or ``DB``) only once complete and neutralised; on failure it is dropped with the
target databases, and the summary holds the first ``ERROR:`` line. A plain SQL dump reaches
psql after ``\\restrict KEY`` (psql 13.22, 14.19, 15.14, 16.10, 17.6 and later), so its
backslash commands (``\\!`` runs a shell) are refused; custom dumps go through pg_restore,
which has no such commands. Note that a dump still runs SQL as ``PGUSER``: restore untrusted
dumps as a non-superuser (``COPY ... FROM PROGRAM`` needs a superuser or a role granted it).

Neutralisation, before the template is made: the command after ``--`` (``{db}`` in its
arguments is replaced by the database, also given as ``ANYBOX_CI_DB``), e.g.
``-- bin/odoo_start neutralize -d {db}``; otherwise built-in SQL for Odoo databases (mail
servers and crons off, ``database.is_neutralized`` set), touching only tables that exist.

Credentials for ``--url`` come from the environment variable named by ``--auth-env``
(``user:password`` for Basic, anything else as a Bearer token); they never appear in argv or
in the log, and are not sent on after a redirect.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import lzma
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

try:  # package modules in tests, top-level ones in the worker's bundle
    from . import pgdb
    from .dumps import Hashing, RestoreError, guarded_sql, open_dump, sha256_of
    from .summary import ArgumentParser, print_summary
except ImportError:
    import pgdb  # type: ignore[no-redef]
    from dumps import Hashing, RestoreError, guarded_sql, open_dump, sha256_of  # type: ignore[no-redef]
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]

CHUNK = 1 << 20
TEMPLATE_PREFIX = "anybox_tpl_"
STAGING_PREFIX = "anybox_stg_"
SPARE_PREFIX = "anybox_spr_"
TEMPLATE_RE = r"^anybox_tpl_[0-9a-f]{16}$"
SPARE_RE = r"^anybox_spr_[0-9a-f]{16}$"
COMMENT_KIND = "anybox-ci restore template"
NEUTRALIZE_BUILTIN = "builtin-v1"
RESTRICT_MIN = "13.22, 14.19, 15.14, 16.10 or 17.6"

NEUTRALIZE_TABLES = ("ir_mail_server", "fetchmail_server", "ir_cron", "ir_config_parameter")
NEUTRALIZE_SQL = """
DO $anybox_ci$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['ir_mail_server', 'fetchmail_server', 'ir_cron'] LOOP
        IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public'
                   AND table_name = tbl AND column_name = 'active') THEN
            EXECUTE format('UPDATE public.%I SET active = false WHERE active', tbl);
        END IF;
    END LOOP;
    IF to_regclass('public.ir_config_parameter') IS NOT NULL THEN
        UPDATE public.ir_config_parameter SET value = 'true'
         WHERE key = 'database.is_neutralized';
        IF NOT FOUND THEN
            INSERT INTO public.ir_config_parameter (key, value)
            VALUES ('database.is_neutralized', 'true');
        END IF;
    END IF;
END
$anybox_ci$;
SELECT string_agg(t, ', ') FROM unnest(:'tables'::text[]) AS t
 WHERE to_regclass('public.' || quote_ident(t)) IS NOT NULL;
"""


class UsageError(RestoreError):
    """Bad arguments (exit status 2)."""


# --- feeding PostgreSQL ----------------------------------------------------------------------


@dataclass
class ErrorLines:
    """Drains a client's stderr into the log, keeping what the summary needs."""

    first_error: str | None = None
    last: str | None = None

    def drain(self, pipe: IO[bytes]) -> threading.Thread:
        def run() -> None:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip()
                sys.stderr.write(line + "\n")
                if not line.strip():
                    continue
                self.last = line
                if self.first_error is None and "ERROR:" in line:
                    self.first_error = line[line.index("ERROR:") :]

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def message(self, tool: str, code: int) -> str:
        if self.first_error:
            return self.first_error
        if self.last and "invalid command \\restrict" in self.last:
            return f"{tool} is too old to restore a plain dump safely (needs {RESTRICT_MIN})"
        if self.last and "backslash commands are restricted" in self.last:
            return "the dump holds a psql backslash command (refused): " + self.last
        if self.last:
            return self.last
        return f"{tool} exited with code {code}"


def client_env(database: str) -> dict[str, str]:
    """The database goes in PGDATABASE, which libpq never reads as a connection string."""
    return dict(os.environ, PGDATABASE=database)


def feed(argv: list[str], database: str, chunks: Iterator[bytes] | None) -> None:
    """Run a client on ``database``, writing ``chunks`` to its stdin; raise its first error."""
    tool = os.path.basename(argv[0])
    proc = subprocess.Popen(
        argv,
        env=client_env(database),
        stdin=subprocess.PIPE if chunks is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    errors = ErrorLines()
    assert proc.stderr is not None
    drainer = errors.drain(proc.stderr)
    try:
        if chunks is not None:
            assert proc.stdin is not None
            try:
                for chunk in chunks:
                    proc.stdin.write(chunk)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the client stopped at an error: its stderr says which
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise RestoreError(f"unreadable dump: {exc}") from None
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drainer.join()
    if code != 0:
        raise RestoreError(errors.message(tool, code))


def psql_argv() -> list[str]:
    return [pgdb.find_tool("psql"), "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"]


def restore_stream(kind: str, stream: Any, staging: str, path: str | None, jobs: int) -> None:
    """Fill the empty ``staging`` database from a decompressed dump (``path`` when seekable)."""
    if kind == "sql":
        feed(psql_argv(), staging, guarded_sql(stream))
        return
    if kind != "custom":
        raise RestoreError(f"{kind} archives can only hold dumps, not be held in one")
    argv = [
        pgdb.find_tool("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "-w",
        f"--dbname={staging}",  # ours: anybox_stg_ and hex digits, never a connection string
    ]
    if path is not None:
        feed([*argv, f"--jobs={jobs}", "--", path], staging, None)
    else:
        feed(argv, staging, iter(lambda: stream.read(CHUNK), b""))


# --- templates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A database to fill, from the whole dump (member None) or from one archive member."""

    database: str
    member: str | None


@dataclass
class Plan:
    """Names of one restore: the hash gives the template and the staging database."""

    target: Target
    digest: str
    cached: bool = False
    detail: str = ""

    @property
    def template(self) -> str:
        return TEMPLATE_PREFIX + self.digest

    @property
    def staging(self) -> str:
        return STAGING_PREFIX + self.digest

    @property
    def spare(self) -> str:
        return SPARE_PREFIX + self.digest


def cache_digest(key: str, sha: str, major: int, member: str | None, neutralize: str) -> str:
    data = json.dumps([key, sha, major, member, neutralize]).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def comment_for(key: str, sha: str, member: str | None, neutralize: str) -> str:
    info = {"kind": COMMENT_KIND, "key": key, "member": member, "sha256": sha}
    return json.dumps({**info, "neutralize": neutralize}, sort_keys=True)


class Control:
    """One psql session on the maintenance database for the whole run.

    It holds the advisory lock of the cache key (one restore per key at a time; if this
    process dies, psql reads end-of-file, exits, and the server releases the lock) and answers
    fixed queries, ours only, without a new process each: a cache hit is mostly the copy.
    """

    def __init__(self, maintenance_db: str) -> None:
        argv = [*psql_argv(), "-A", "-t", f"--dbname={maintenance_db}"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.wait()

    def ask(self, sql: str) -> list[str]:
        """Run ``sql`` (no outside values in it) and return its output lines."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(sql + "\n\\echo anybox-ci-done\n")
            proc.stdin.flush()
        lines: list[str] = []
        for line in proc.stdout:
            if line.strip() == "anybox-ci-done":
                return lines
            lines.append(line.rstrip("\n"))
        error = proc.stderr.read().strip().splitlines()
        raise pgdb.PgError(error[-1] if error else "psql ended unexpectedly")

    def lock(self, key: str) -> None:
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        if self.ask(f"SELECT pg_try_advisory_lock({number});") != ["t"]:
            print("waiting for another restore of the same dump", flush=True)
            self.ask(f"SELECT pg_advisory_lock({number});")

    def spares(self) -> list[str]:
        return self.ask(f"SELECT datname FROM pg_database WHERE datname ~ '{SPARE_RE}';")

    def templates(self) -> dict[str, dict[str, Any]]:
        """Our templates on this cluster, by name, with the JSON of their comment."""
        rows = self.ask(
            "SELECT datname || ' ' || coalesce(shobj_description(oid, 'pg_database'), '')"
            f" FROM pg_database WHERE datname ~ '{TEMPLATE_RE}';"
        )
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            name, _, comment = row.partition(" ")
            with contextlib.suppress(ValueError):
                info = json.loads(comment)
                if isinstance(info, dict) and info.get("kind") == COMMENT_KIND:
                    found[name] = info
        return found


# --- neutralisation --------------------------------------------------------------------------


def neutralize(staging: str, command: Sequence[str] | None, enabled: bool) -> str:
    """Make a restored production database harmless; say what was done."""
    if not enabled:
        return "not neutralized"
    if command:
        argv = [arg.replace("{db}", staging) for arg in command]
        print("neutralizing with " + " ".join(command), flush=True)
        try:
            code = subprocess.call(argv, env=dict(os.environ, ANYBOX_CI_DB=staging))
        except OSError as exc:
            raise RestoreError(f"cannot run {command[0]}: {exc.strerror}") from None
        if code != 0:
            raise RestoreError(f"neutralize command exited with code {code}")
        return f"neutralized by {os.path.basename(command[0])}"
    tables = pgdb.run_psql(NEUTRALIZE_SQL, staging, tables="{" + ",".join(NEUTRALIZE_TABLES) + "}")
    return f"neutralized ({tables})" if tables else "nothing to neutralize"


def neutralize_mode(command: Sequence[str] | None, enabled: bool) -> str:
    if not enabled:
        return "none"
    return "command:" + json.dumps(list(command)) if command else NEUTRALIZE_BUILTIN


# --- sources ---------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """What may be logged of a URL: no user info, no query (presigned URLs carry keys)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def download(url: str, auth_env: str | None, directory: str) -> tuple[str, str]:
    """Download into ``directory``; return (path, sha256)."""
    import urllib.request  # here: a cache hit need not pay for importing http and ssl

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "file"):
        raise UsageError(f"unsupported URL scheme: {parts.scheme or 'none'}")
    if parts.username is not None or parts.password is not None:
        raise UsageError("credentials do not belong in --url: use --auth-env VAR")
    request = urllib.request.Request(url)
    if auth_env:
        secret = os.environ.get(auth_env)
        if not secret:
            raise UsageError(f"--auth-env: {auth_env} is not set")
        if ":" in secret:
            value = "Basic " + base64.b64encode(secret.encode()).decode()
        else:
            value = "Bearer " + secret
        request.add_unredirected_header("Authorization", value)  # not sent on after redirects
    path = os.path.join(directory, "dump")
    digest = hashlib.sha256()
    print(f"downloading {redact_url(url)}", flush=True)
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(path, "wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise RestoreError(f"download of {redact_url(url)} failed: {reason}") from None
    return path, digest.hexdigest()


# --- the restore -----------------------------------------------------------------------------


@dataclass
class Options:
    targets: list[Target]
    dump: str | None
    url: str | None
    auth_env: str | None
    sha256: str | None
    cache_key: str | None
    jobs: int
    strategy: str | None
    neutralize: bool
    command: list[str]
    maintenance_db: str
    spare: bool = False
    delete_dump: bool = False
    version: int = 0  # server_version_num, once connected


def fill_stagings(plans: list[Plan], path: str, opts: Options, expected: str | None) -> None:
    """Restore every plan's staging database from the dump at ``path``."""
    with open(path, "rb") as raw:
        hashing = Hashing(raw)
        compression, kind, stream = open_dump(hashing)
        if kind == "tar":
            by_member = {p.target.member: p for p in plans}
            if None in by_member:
                raise UsageError("the dump is an archive: give --map DB=MEMBER for its dumps")
            done: set[str | None] = set()
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    name = member.name.removeprefix("./")
                    plan = by_member.get(name)
                    if plan is None or not member.isreg() or name in done:
                        continue
                    handle = archive.extractfile(member)
                    assert handle is not None
                    _, inner, inner_stream = open_dump(handle)
                    restore_one(plan, inner, inner_stream, None, opts)
                    done.add(name)
            missing = sorted(str(m) for m in by_member if m not in done)
            if missing:
                raise RestoreError("not in the archive: " + ", ".join(missing))
        else:
            if len(plans) != 1 or plans[0].target.member is not None:
                raise UsageError("--map needs a tar archive of dumps")
            seekable = path if kind == "custom" and compression == "none" else None
            restore_one(plans[0], kind, stream, seekable, opts)
        if expected is not None:
            while hashing.read(CHUNK):
                pass
            if hashing.digest.hexdigest() != expected:
                raise RestoreError(f"sha256 mismatch: the dump is not {expected}")


def restore_one(plan: Plan, kind: str, stream: Any, path: str | None, opts: Options) -> None:
    label = {"sql": "plain SQL", "custom": "custom format"}.get(kind, kind)
    print(f"restoring {plan.target.database} ({label}) into {plan.staging}", flush=True)
    started = time.monotonic()
    pgdb.create_database(plan.staging, "template0", opts.maintenance_db, None, opts.version)
    restore_stream(kind, stream, plan.staging, path, opts.jobs)
    done = neutralize(plan.staging, opts.command, opts.neutralize)
    plan.detail = f"restored ({label}) in {time.monotonic() - started:.1f}s, {done}"


def run_restore(opts: Options) -> list[Plan]:
    """Under the lock of the cache key: restore what is not cached, then hand out copies."""
    mdb = opts.maintenance_db
    mode = neutralize_mode(opts.command, opts.neutralize)
    source = os.path.abspath(opts.dump) if opts.dump else redact_url(opts.url or "")
    key = opts.cache_key or source
    caching = opts.cache_key != ""
    lock_key = "anybox-ci restore " + (
        key if caching else json.dumps([t.database for t in opts.targets])
    )
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="anybox-ci-dump-"))
        control = stack.enter_context(Control(mdb))
        opts.version = int(control.ask("SHOW server_version_num;")[0])
        major = opts.version // 10000
        control.lock(lock_key)
        path = opts.dump
        sha = opts.sha256
        if caching and sha is None:
            if path is None:
                path, sha = download(opts.url or "", opts.auth_env, tmp)
            else:
                sha = sha256_of(path)
        existing = control.templates() if caching else {}
        plans = []
        for target in opts.targets:
            if caching:
                digest = cache_digest(key, sha or "", major, target.member, mode)
            else:
                digest = cache_digest("", "", major, target.database, "no cache")
            plans.append(Plan(target, digest, cached=TEMPLATE_PREFIX + digest in existing))
        todo = [p for p in plans if not p.cached]
        try:
            if todo:
                for plan in todo:  # leftovers of a killed run (we hold the lock)
                    pgdb.drop_database(plan.staging, mdb, server_version=opts.version)
                if path is None:
                    path, got = download(opts.url or "", opts.auth_env, tmp)
                    if opts.sha256 and got != opts.sha256:
                        raise RestoreError(f"sha256 mismatch: the dump is not {opts.sha256}")
                check = opts.sha256 if (opts.sha256 and path == opts.dump) else None
                fill_stagings(todo, path, opts, check)
                for plan in todo:
                    publish(plan, caching, key, sha or "", mode, opts)
            if caching:
                hand_out(plans, set(control.spares()), opts)
                drop_stale(key, plans, existing, control, opts)
        except BaseException:
            for name in [p.staging for p in plans] + [p.target.database for p in plans]:
                with contextlib.suppress(pgdb.PgError):
                    pgdb.drop_database(name, mdb, server_version=opts.version)
            raise
    return plans


def hand_out(plans: list[Plan], spares: set[str], opts: Options) -> None:
    """Each target database becomes a copy of its template: a spare one if there is one."""
    mdb = opts.maintenance_db
    for plan in plans:
        started = time.monotonic()
        if plan.spare in spares:
            pgdb.run_psql(
                pgdb.drop_sql(True, opts.version) + 'ALTER DATABASE :"spare" RENAME TO :"dbname";',
                mdb,
                dbname=plan.target.database,
                spare=plan.spare,
            )
            how = " (spare copy)"
        else:
            pgdb.create_database(
                plan.target.database, plan.template, mdb, opts.strategy, opts.version
            )
            how = ""
        took = time.monotonic() - started
        if plan.cached:
            plan.detail = f"from cached template {plan.template}{how} in {took:.1f}s"
        else:
            plan.detail += f"; cached as {plan.template}"
    if opts.spare:
        for plan in plans:
            spawn_spare(plan, opts)


def spawn_spare(plan: Plan, opts: Options) -> None:
    """Copy the template for the next build in a detached psql: the copy leaves the build's
    critical path (not its disk). The names are ours (prefix and hex digits), hence inline."""
    assert re.fullmatch(r"[0-9a-f]{16}", plan.digest)
    sql = f'CREATE DATABASE "{plan.spare}" TEMPLATE "{plan.template}"'
    if opts.strategy and opts.version >= pgdb.STRATEGY_MIN_VERSION:
        sql += f" STRATEGY {opts.strategy.upper()}"
    subprocess.Popen(
        [*psql_argv(), f"--dbname={opts.maintenance_db}", "-c", sql],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this step, and its pipes are not the step's
    )
    print(f"preparing a spare copy {plan.spare} in the background", flush=True)


def drop_stale(
    key: str,
    plans: list[Plan],
    existing: dict[str, dict[str, Any]],
    control: Control,
    opts: Options,
) -> None:
    """Drop the templates of ``key`` that another checksum replaced, and orphaned spares."""
    current = {p.target.member: p.template for p in plans}
    alive = set(existing) | set(current.values())
    for name, info in existing.items():
        member = info.get("member")
        if info.get("key") == key and member in current and current[member] != name:
            pgdb.drop_database(name, opts.maintenance_db, server_version=opts.version)
            alive.discard(name)
            print(f"dropped stale template {name}", flush=True)
    for spare in control.spares():
        if TEMPLATE_PREFIX + spare.removeprefix(SPARE_PREFIX) not in alive:
            pgdb.drop_database(spare, opts.maintenance_db, server_version=opts.version)
            print(f"dropped stale spare {spare}", flush=True)


def publish(plan: Plan, caching: bool, key: str, sha: str, mode: str, opts: Options) -> None:
    """Give a complete staging database its final name: the template, or the target."""
    mdb = opts.maintenance_db
    if caching:
        comment = comment_for(key, sha, plan.target.member, mode)
        pgdb.comment_database(plan.staging, comment, mdb)
        pgdb.run_psql('ALTER DATABASE :"dbname" ALLOW_CONNECTIONS false;', mdb, dbname=plan.staging)
        pgdb.rename_database(plan.staging, plan.template, mdb)
    else:
        pgdb.drop_database(plan.target.database, mdb, server_version=opts.version)
        pgdb.rename_database(plan.staging, plan.target.database, mdb)


# --- command line ----------------------------------------------------------------------------


def parse_map(value: str) -> Target:
    database, sep, member = value.partition("=")
    if not sep or not database or not member:
        raise argparse.ArgumentTypeError(f"expected DB=MEMBER, got {value!r}")
    return Target(database, member.removeprefix("./"))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Restore a dump into test databases, cached as templates.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--name", help="the database to fill from a single dump")
    where.add_argument(
        "--map", type=parse_map, action="append", help="DB=MEMBER of a tar archive (repeat)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dump", help="local dump file")
    source.add_argument("--url", help="http(s):// or file:// URL of the dump")
    parser.add_argument("--auth-env", help="environment variable holding the URL's credentials")
    parser.add_argument("--sha256", help="the dump's known checksum: a cache hit skips reading it")
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache-key", help="what identifies the dump source (default: path/URL)")
    cache.add_argument("--no-cache", action="store_true", help="no template: restore every time")
    parser.add_argument("--jobs", type=int, default=1, help="pg_restore jobs (local -Fc dumps)")
    parser.add_argument(
        "--strategy",
        choices=pgdb.CREATE_STRATEGIES,
        default="file_copy",
        help="how CREATE DATABASE copies a template, on 15+ (default file_copy: dumps are big)",
    )
    parser.add_argument(
        "--spare",
        action="store_true",
        help="keep a spare copy of each template for the next build (one more copy on disk)",
    )
    parser.add_argument("--no-neutralize", action="store_true", help="keep mail servers and crons")
    parser.add_argument(
        "--delete-dump",
        action="store_true",
        help="remove the --dump file at the end (a copy sent by the master)",
    )
    parser.add_argument("--maintenance-db", default="postgres")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- NEUTRALIZE-COMMAND ARGS...")
    return parser


def options(argv: Sequence[str] | None) -> Options:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    elif command:
        parser.error(f"unrecognized arguments: {' '.join(command)} (the command goes after --)")
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        parser.error("--sha256 must be 64 hexadecimal digits")
    if args.auth_env and not args.url:
        parser.error("--auth-env goes with --url")
    if args.delete_dump and not args.dump:
        parser.error("--delete-dump goes with --dump")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    targets = [Target(args.name, None)] if args.name is not None else list(args.map)
    if len({t.database for t in targets}) != len(targets):
        parser.error("each database may be mapped once")
    return Options(
        targets=targets,
        dump=args.dump,
        url=args.url,
        auth_env=args.auth_env,
        sha256=args.sha256.lower() if args.sha256 else None,
        cache_key="" if args.no_cache else args.cache_key,
        jobs=args.jobs,
        strategy=args.strategy,
        neutralize=not args.no_neutralize,
        command=command,
        maintenance_db=args.maintenance_db,
        spare=args.spare,
        delete_dump=args.delete_dump,
    )


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-ups


def main(argv: Sequence[str] | None = None) -> int:
    opts = options(argv)
    try:
        return restore_main(opts)
    finally:
        if opts.delete_dump and opts.dump:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(opts.dump)


def restore_main(opts: Options) -> int:
    if opts.dump is not None and not os.path.isfile(opts.dump):
        print_summary(f"restore failed: no such dump file: {opts.dump}")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    names = ", ".join(t.database for t in opts.targets)
    started = time.monotonic()
    try:
        plans = run_restore(opts)
    except SystemExit as exc:
        print_summary(f"restore into {names} interrupted")
        raise exc
    except UsageError as exc:
        print_summary(f"restore failed: {exc}")
        return 2
    except (RestoreError, pgdb.PgError, OSError, tarfile.TarError) as exc:
        print_summary(f"restore into {names} failed: {exc}")
        return 1
    for plan in plans:
        print(f"{plan.target.database}: {plan.detail}")
    hits = sum(p.cached for p in plans)
    cache = "off" if opts.cache_key == "" else "hit" if hits == len(plans) else "miss"
    print(f"restore_cache={cache}")
    if len(plans) == 1:
        print(f"restore_template={plans[0].template if cache != 'off' else ''}")
    took = f"{time.monotonic() - started:.1f}s"
    if len(plans) == 1:
        print_summary(f"{plans[0].target.database} {plans[0].detail}")
    else:
        kind = "all from cached templates" if cache == "hit" else f"{hits} from cached templates"
        print_summary(f"restored {len(plans)} databases ({names}) in {took}, {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
