"""A stand-in for Odoo's test runner: real database checks, Odoo-format log lines."""

import argparse
import configparser
import os
import subprocess
import sys
import time


def log(level, db, logger, message):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S") + ",000"
    print(f"{stamp} {os.getpid()} {level} {db} {logger}: {message}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="test_openerp")
    parser.add_argument("-i", dest="modules", default="all")
    parser.add_argument("-d", dest="db", required=True)
    parser.add_argument("--http-port", default=None)
    args, _ = parser.parse_known_args(argv)
    db = args.db
    try:
        version = subprocess.run(
            ["psql", "-XAtq", "-d", db, "-c", "SELECT version()"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        number = subprocess.run(
            ["psql", "-XAtq", "-d", db, "-c", "SHOW server_version_num"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        log("CRITICAL", db, "odoo.service.server", f"cannot connect to database {db}: {exc}")
        return 1
    log("INFO", db, "odoo.sql_db", f"server: {version}")
    expected = os.environ.get("PG_VERSION", "")
    major = str(int(number) // 10000)
    if expected and expected.split(".")[0] != major:
        log("ERROR", db, "odoo.sql_db", f"expected PostgreSQL {expected}, server is {major}")
        return 1
    tests = configparser.ConfigParser()
    tests.read("tests.cfg")
    failed = 0
    module = "sample"
    items = tests.items("tests") if tests.has_section("tests") else []
    for name, outcome in items:
        logger = f"odoo.addons.{module}.tests.test_{module}"
        log("INFO", db, logger, f"Starting TestSample.{name} ...")
        if outcome.strip() != "pass":
            failed += 1
            log("ERROR", db, logger, f"FAIL: {name} ({logger[5:]}.TestSample.{name})")
            print("Traceback (most recent call last):")
            print(f'  File "tests/test_{module}.py", line 12, in {name}')
            print("AssertionError: 10.01 != 10.0")
    log("INFO", db, "odoo.modules.loading", f"Modules loaded: {args.modules}")
    log("INFO", db, "odoo.tests.result",
        f"{failed} failed, 0 error(s) of {len(items)} tests when loading database '{db}'")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
