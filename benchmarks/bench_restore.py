"""Restore of a production-sized dump against a copy of its cached template. A script, not a
test: it prints figures.

A throwaway PostgreSQL cluster restores a generated plain SQL dump of ``--size-mb`` megabytes
(default 120: a partner table filled by COPY, its primary key and an index built afterwards,
as pg_dump writes them, and the Odoo tables that neutralisation touches). Each figure is the
whole ``restore.py`` run, as a build step runs it:

- **restore**: ``--no-cache``, the dump read, restored into a staging database, neutralised and
  renamed, every time;
- **first cached restore**: the same plus the template made (once, not in the medians);
- **cached**: ``CREATE DATABASE ... TEMPLATE`` from that template, checksum read from the
  dump; and **cached, known checksum**: with ``--sha256`` (what the master can pass), so the
  dump is not read at all. On PostgreSQL 15 and later both ``CREATE DATABASE`` strategies
  are measured;
- **cached, spare copy**: ``--spare``, the copy made in the background after the previous run
  (waited for, so that it does not overlap the measured run), only renamed.

Medians of ``--runs`` runs each; the target is cached <= 5% of restore.

    .venv/bin/python benchmarks/bench_restore.py [--pg 15] [--size-mb 120] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from anybox_ci.devtools.pgcluster import Cluster, ensure_binaries

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "build_utils" / "restore.py"
TARGET_RATIO = 0.05

HEADER = """SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
CREATE TABLE public.ir_mail_server (id integer, name varchar, active boolean);
CREATE TABLE public.ir_cron (id integer, name varchar, active boolean);
CREATE TABLE public.ir_config_parameter (id serial, key varchar UNIQUE, value text);
INSERT INTO public.ir_mail_server VALUES (1, 'smtp', true);
INSERT INTO public.ir_cron VALUES (1, 'mail queue', true), (2, 'fetchmail', true);
CREATE TABLE public.res_partner (
    id integer NOT NULL, name varchar, email varchar, street varchar, city varchar,
    comment text, active boolean
);
COPY public.res_partner (id, name, email, street, city, comment, active) FROM stdin;
"""
FOOTER = """\\.

ALTER TABLE ONLY public.res_partner ADD CONSTRAINT res_partner_pkey PRIMARY KEY (id);
CREATE INDEX res_partner_email_index ON public.res_partner USING btree (email);
ANALYZE public.res_partner;
"""


def write_dump(path: Path, size_mb: int) -> int:
    """A plain dump of about ``size_mb`` MB; return the number of partner rows."""
    limit = size_mb * 1024 * 1024
    rows = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(HEADER)
        written = len(HEADER)
        batch: list[str] = []
        while written < limit:
            rows += 1
            digest = hashlib.md5(str(rows).encode()).hexdigest()  # noqa: S324 - filler text
            line = (
                f"{rows}\tPartner {digest[:12]}\t{digest[:10]}@example.com\t"
                f"{rows % 997} Rue {digest[12:20]}\tCity {rows % 311}\t"
                f"{digest * 2}\t{'t' if rows % 7 else 'f'}\n"
            )
            batch.append(line)
            written += len(line)
            if len(batch) == 10000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
        out.write(FOOTER)
    return rows


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    return took, proc.stdout.strip().splitlines()[-1]


def wait_for_spare(cluster: Cluster) -> None:
    """Until the background copy of ``--spare`` is there (CREATE DATABASE commits at its end)."""
    sql = "SELECT count(*) FROM pg_database WHERE datname LIKE 'anybox_spr_%'"
    deadline = time.monotonic() + 300
    while cluster.psql(sql) == "0":
        if time.monotonic() > deadline:
            raise SystemExit("the spare copy never appeared")
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", type=int, default=15, help="PostgreSQL major (default 15)")
    parser.add_argument("--size-mb", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="anybox-ci-bench-restore-"))
    work.mkdir(parents=True, exist_ok=True)
    dump = work / "prod.sql"
    started = time.perf_counter()
    rows = write_dump(dump, args.size_mb)
    size = dump.stat().st_size
    print(f"dump: {size / 1e6:.1f} MB, {rows} partner rows, written in "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    sha = hashlib.sha256(dump.read_bytes()).hexdigest()

    install = ensure_binaries(args.pg)
    cluster = Cluster(install, work / f"pg{args.pg}")
    try:
        cluster.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=cluster.host, PGPORT=str(cluster.port), PGUSER=cluster.user)
        if (Path(cluster.bin) / "psql").exists():
            env["PATH"] = f"{cluster.bin}{os.pathsep}{env.get('PATH', '')}"
            env["LD_LIBRARY_PATH"] = str(cluster.lib)
        print(f"PostgreSQL {cluster.version} on port {cluster.port}; {args.runs} runs each")
        base = [sys.executable, str(SCRIPT), "--name", "erp_test", "--dump", str(dump)]

        restores = [timed([*base, "--no-cache"], env)[0] for _ in range(args.runs)]
        first, summary = timed(base, env)
        print(f"first cached restore: {first:.2f}s ({summary.split(': ', 1)[1]})")
        rows_out: list[tuple[str, float]] = [("restore (no cache)", statistics.median(restores))]
        strategies = ["file_copy", "wal_log"] if args.pg >= 15 else ["file_copy"]
        for strategy in strategies:
            extra = [f"--strategy={strategy}"]
            label = f" [{strategy}]" if args.pg >= 15 else ""
            hits = [timed([*base, *extra], env)[0] for _ in range(args.runs)]
            known = [timed([*base, *extra, f"--sha256={sha}"], env)[0] for _ in range(args.runs)]
            rows_out.append((f"cached{label}", statistics.median(hits)))
            rows_out.append((f"cached, known checksum{label}", statistics.median(known)))
        spare_runs = []
        timed([*base, "--spare"], env)  # makes the first spare
        for _ in range(args.runs):
            wait_for_spare(cluster)  # the previous copy done: it does not overlap the figure
            took, summary = timed([*base, "--spare", f"--sha256={sha}"], env)
            assert "(spare copy)" in summary, summary
            spare_runs.append(took)
        wait_for_spare(cluster)
        rows_out.append(("cached, spare copy, known checksum", statistics.median(spare_runs)))
        count = cluster.psql("SELECT count(*) FROM res_partner", dbname="erp_test")
        assert count == str(rows), count
    finally:
        cluster.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    restore_median = rows_out[0][1]
    print(f"\n{'':34} {'median':>8} {'of restore':>11}")
    for label, value in rows_out:
        print(f"{label:34} {value:7.2f}s {value / restore_median:10.1%}")
    best = min(value for _, value in rows_out[1:])
    verdict = "met" if best <= TARGET_RATIO * restore_median else "NOT met"
    print(f"\ntarget cached <= {TARGET_RATIO:.0%} of restore: {verdict} (best {best:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
