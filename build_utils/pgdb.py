"""Database steps of a build, with the PostgreSQL client tools of the cell (stdlib only).

The master puts the cell's PostgreSQL ``bin`` first on PATH and sets PGHOST, PGPORT, PGUSER
and LD_LIBRARY_PATH, so the ``psql`` found on PATH talks to the cluster of the cell. A
password, if any, only ever comes from PGPASSWORD or PGPASSFILE in the environment: this
script takes none as an argument and never prints the environment.

    python3 pgdb.py create --name DB [--template TPL]    # drop if exists, create from TPL
    python3 pgdb.py drop --name DB
    python3 pgdb.py restore --name DB [--template TPL] -- CMD ARGS...
    python3 pgdb.py version                                # proves which cluster we reach

SQL is fed to ``psql -X -v ON_ERROR_STOP=1`` on stdin; database names only reach it as psql
variables quoted by psql itself (``:"dbname"``), and commands are argv lists, never shell
strings.
``restore`` creates an empty database (from ``template0`` by default) and runs the user's
command with ``ANYBOX_CI_DB=DB`` in its environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]

FORCE_DROP_MIN_VERSION = 130000  # DROP DATABASE ... WITH (FORCE)
STRATEGY_MIN_VERSION = 150000  # CREATE DATABASE ... STRATEGY
CREATE_STRATEGIES = ("file_copy", "wal_log")


class PgError(RuntimeError):
    """A client tool failed; the message is short enough for a summary."""


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PgError(f"{name} not found on PATH")
    return path


def run_psql(sql: str, maintenance_db: str = "postgres", **variables: str) -> str:
    """Run SQL (autocommit) and return its unaligned, tuples-only output.

    Values travel as psql variables (``-v name=value`` argv items) and are referenced in the
    SQL as ``:"name"`` (psql quotes an identifier) or ``:'name'`` (psql quotes a literal), so
    no value is ever pasted into SQL text. The SQL goes through stdin, where psql
    interpolates variables (it does not for ``-c``).
    """
    argv = [find_tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    for key, value in variables.items():
        argv += ["-v", f"{key}={value}"]
    argv.append(f"--dbname={maintenance_db}")
    proc = subprocess.run(argv, input=sql, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise PgError(first_error(proc.stderr) or f"psql exited with code {proc.returncode}")
    return proc.stdout.strip()


#: what libpq and the server call an error; other stderr lines (``password retrieved from
#: file``, notices) only say what happened on the way
_ERROR_MARKS = ("FATAL:", "ERROR:", "error:", "could not", "failed")


def first_error(stderr: str) -> str:
    """The line of psql's stderr that says what went wrong, for a one-line summary."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if any(mark in line for mark in _ERROR_MARKS):
            return line
    return lines[-1] if lines else ""


def server_version_num(maintenance_db: str = "postgres") -> int:
    return int(run_psql("SHOW server_version_num;", maintenance_db))


def drop_sql(force: bool, server_version: int) -> str:
    """DROP DATABASE of the psql variable ``dbname``; FORCE disconnects leftover sessions."""
    sql = 'DROP DATABASE IF EXISTS :"dbname"'
    if force and server_version >= FORCE_DROP_MIN_VERSION:
        sql += " WITH (FORCE)"
    return sql + ";\n"


def drop_database(
    name: str,
    maintenance_db: str = "postgres",
    force: bool = True,
    server_version: int | None = None,
) -> None:
    """Drop ``name`` if it exists; on 13+ also disconnect leftover sessions (Odoo crons).

    ``server_version`` (``server_version_num``), when the caller knows it, saves a round trip.
    """
    version = server_version or server_version_num(maintenance_db)
    run_psql(drop_sql(force, version), maintenance_db, dbname=name)


def create_database(
    name: str,
    template: str = "template1",
    maintenance_db: str = "postgres",
    strategy: str | None = None,
    server_version: int | None = None,
) -> None:
    """Drop ``name`` if it exists, then create it from ``template`` (one psql run).

    ``strategy`` (``file_copy`` or ``wal_log``) applies from PostgreSQL 15 on: ``file_copy``
    copies a big template's files at the price of a checkpoint, ``wal_log`` (15's default)
    writes the whole copy to the WAL.
    """
    if strategy is not None and strategy not in CREATE_STRATEGIES:
        raise ValueError(f"unknown CREATE DATABASE strategy: {strategy!r}")
    version = server_version or server_version_num(maintenance_db)
    sql = drop_sql(True, version) + 'CREATE DATABASE :"dbname" TEMPLATE :"template"'
    if strategy is not None and version >= STRATEGY_MIN_VERSION:
        sql += f" STRATEGY {strategy.upper()}"
    run_psql(sql + ";", maintenance_db, dbname=name, template=template)


def rename_database(old: str, new: str, maintenance_db: str = "postgres") -> None:
    """Give a finished database its final name: readers never see it half made."""
    run_psql('ALTER DATABASE :"old" RENAME TO :"new";', maintenance_db, old=old, new=new)


def comment_database(name: str, comment: str, maintenance_db: str = "postgres") -> None:
    run_psql(
        "COMMENT ON DATABASE :\"dbname\" IS :'comment';",
        maintenance_db,
        dbname=name,
        comment=comment,
    )


def major_version(maintenance_db: str = "postgres") -> int:
    """The server's major version: 13 for 130022, 9 for 90624 (9.x majors are not split)."""
    return server_version_num(maintenance_db) // 10000


def database_exists(name: str, maintenance_db: str = "postgres") -> bool:
    sql = "SELECT 1 FROM pg_database WHERE datname = :'dbname';"
    return run_psql(sql, maintenance_db, dbname=name) == "1"


def version_info(maintenance_db: str = "postgres") -> dict[str, str]:
    """What the build really talks to: client path, server version, number and port."""
    return {
        "psql": find_tool("psql"),
        "server_version": run_psql("SELECT version();", maintenance_db),
        "server_version_num": run_psql("SHOW server_version_num;", maintenance_db),
        "port": run_psql("SHOW port;", maintenance_db),
    }


def short_version(version: str) -> str:
    """'PostgreSQL 15.10 (Debian ...) on x86_64...' -> 'PostgreSQL 15.10'."""
    words = version.split()
    return " ".join(words[:2]) if len(words) >= 2 else version


def restore(name: str, cmd: Sequence[str], template: str, maintenance_db: str) -> int:
    create_database(name, template, maintenance_db)
    env = dict(os.environ, ANYBOX_CI_DB=name)
    return subprocess.call(list(cmd), env=env)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Database steps with psql from PATH.")
    parser.add_argument(
        "--maintenance-db", default="postgres", help="database psql connects to (default postgres)"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="drop if exists, then create from a template")
    create.add_argument("--name", required=True)
    create.add_argument("--template", default="template1")
    drop = sub.add_parser("drop", help="drop if exists")
    drop.add_argument("--name", required=True)
    rest = sub.add_parser("restore", help="create empty, then run a restore command")
    rest.add_argument("--name", required=True)
    rest.add_argument("--template", default="template0")
    rest.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    sub.add_parser("version", help="print server version, number and port")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    mdb = args.maintenance_db
    try:
        if args.action == "create":
            create_database(args.name, args.template, mdb)
            print_summary(f"created {args.name} from {args.template}")
            return 0
        if args.action == "drop":
            drop_database(args.name, mdb)
            print_summary(f"dropped {args.name}")
            return 0
        if args.action == "restore":
            cmd = list(args.cmd)
            if cmd and cmd[0] == "--":
                cmd = cmd[1:]
            if not cmd:
                print_summary("no restore command given")
                return 2
            try:
                code = restore(args.name, cmd, args.template, mdb)
            except OSError as exc:
                print_summary(f"cannot run {cmd[0]}: {exc.strerror}")
                return 2
            if code != 0:
                print_summary(f"restore into {args.name} failed: command exited with code {code}")
                return code if code > 0 else 128 - code
            print_summary(f"restored {args.name}")
            return 0
        info = version_info(mdb)
        for key in ("psql", "server_version", "server_version_num", "port"):
            print(f"{key}={info[key]}")
        print_summary(
            f"{short_version(info['server_version'])} ({info['server_version_num']}) "
            f"on port {info['port']}"
        )
        return 0
    except (PgError, ValueError, OSError) as exc:
        print_summary(f"{args.action} failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
