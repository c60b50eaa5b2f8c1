"""``anybox-ci demo``: ``anybox-ci run`` on the sample buildouts shipped with anybox_ci.

Each sample becomes its own git repository; a throwaway master builds them on
throwaway PostgreSQL servers and one local worker, with live progress, then prints a
table of the cells and stops everything. ``passing`` and ``restricted`` (which needs
wkhtmltopdf: the local worker says it has it) should pass; ``failing`` fails on purpose.
``--odoo SRC`` adds two real Odoo 18 buildouts, ``odoo`` and ``odoo-failing``, built
from SRC: an Odoo source folder, or a .tar.xz of one (unpacked once).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..devtools import localmaster, localrun, odoosamples
from .common import Parser, describe
from .run import Request, add_run_args, execute, failed, say, scratch

#: the local worker offers it, so that ``restricted`` has somewhere to run
EXTRA_CAPABILITIES = ["wkhtmltopdf 0.12.6"]
BUILD_FOR = "postgresql >= 13"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="anybox-ci demo",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--odoo",
        type=Path,
        metavar="SRC",
        help="also build the real Odoo samples, with Odoo from SRC (folder or .tar.xz)",
    )
    add_run_args(parser)
    return parser


def write_samples(folder: Path, odoo_src: Path | None) -> Request:
    """Git repositories of the samples and the manifest naming them, under ``folder``."""
    names = list(localmaster.SAMPLE_NAMES)
    if odoo_src is not None:
        names += list(odoosamples.ODOO_SAMPLES)
    repos = {
        name: localmaster.make_sample_repo(
            name, folder / "repos", with_fake_odoo=name in localmaster.SAMPLE_NAMES
        )
        for name in names
    }
    manifest = localmaster.sample_manifest(repos, build_for=BUILD_FOR)
    expect_fail = [n for n, r in localmaster.SAMPLE_EXPECTED.items() if r != "SUCCESS"]
    if odoo_src is not None:
        manifest += odoosamples.odoo_manifest(repos, odoo_src, BUILD_FOR)
        expect_fail.append(odoosamples.ODOO_FAILING)
    path = folder / "buildouts" / "MANIFEST.cfg"
    path.parent.mkdir(parents=True)
    path.write_text(manifest)
    return Request(
        manifests=[path],
        majors=[],
        expect_fail=expect_fail,
        capabilities=list(EXTRA_CAPABILITIES),
        title="anybox-ci demo",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        odoo_src = None
        if args.odoo is not None:
            odoo_src = odoosamples.odoo_source(args.odoo, localrun.cache_root() / "odoo", say)
            say(f"Odoo source: {odoo_src}")
        with scratch("anybox-ci-demo-", args.keep) as folder:
            request = write_samples(folder / "samples", odoo_src)
            request.majors = args.pg
            request.jobs, request.timeout, request.serve = args.jobs, args.timeout, args.serve
            return execute(request, folder / "run")
    except ValueError as exc:
        print(f"anybox-ci demo: error: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError, OSError) as exc:
        return failed("anybox-ci demo", exc)
