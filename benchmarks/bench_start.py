"""Benchmark: start and reconfig of REAL masters, anybox_ci against an equivalent static
master.cfg. A script, not a test: it prints figures.

The master (see ``_synthetic.write_best_case``): ``--sections`` buildouts (default 1,000)
built for PostgreSQL 13 to 16 on 50 workers, that is 4 cells per buildout (4,000 cells),
in hook mode (a ``change-hook-users`` file: no pollers hitting the network). The baseline
is the same master with the configurator line replaced by the literal objects it
generates (``_staticmaster.write_equivalent``, verified object by object before any
timing), SQLite for both. The anybox_ci side runs with ``virtual_builders=True`` (one real
builder per buildout, a virtual builder per cell: ``anybox_ci.render.cells``) unless
``--per-cell-builders`` is given; the static side has a real builder per cell, as a
hand-written master.cfg would. anybox_ci also sets ``c['prioritizeBuilders']``
(``render.prioritize``); the static side keeps Buildbot's default sorter.

For each of ``--runs`` rounds, both sides alternate (static first, then anybox_ci), each on
a fresh copy of an empty database made by ``buildbot create-master``:

1. ``buildbot start`` until the master logs that it is running;
2. ``buildbot reconfig`` with nothing changed;
3. ``buildbot reconfig`` after editing one buildout section (its ``odoo-addons``): the
   static side gets its master.cfg written again from the edited configuration, as its
   admin would edit it;
4. ``buildbot reconfig`` with nothing changed again (Buildbot's reconfigs get slower one
   after the other on both sides: this tells that apart from the edit's own cost);
5. ``buildbot stop`` (not timed).

Medians are printed per side, with the ratio and the targets of issue 15: start <= 0.5 x
the static master's, reconfig with nothing changed <= 1.1 x, reconfig after one edit <= 2 s.
The master's own reconfig time (between "beginning configuration update" and "configuration
update complete" in its log) and the master's CPU time are printed beside the wall time of the
command. Starts are bound by SQLite commits (an fsync each: thousands per start), so on a
machine shared with other jobs the wall times of one run vary a lot: trust medians of
several runs, and the CPU ratios.

Usage::

    .venv/bin/python benchmarks/bench_start.py [--sections 1000] [--runs 3] [--keep DIR]
        [--per-cell-builders]

A full run at 1,000 sections takes many minutes (a few per start); progress is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _staticmaster  # noqa: E402
import _synthetic  # noqa: E402

TARGET_START_RATIO = 0.5
TARGET_RECONFIG_RATIO = 1.1
TARGET_EDIT_SECONDS = 2.0
#: the section the "one edit" reconfig changes
EDITED = "[proj-00000]"

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _print(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------- the two masters


def _configure(master: Path) -> dict[str, Any]:
    from anybox_ci.configurator import AnyboxConfigurator

    config_dict: dict[str, Any] = {}
    AnyboxConfigurator(master).configure(config_dict)
    if not config_dict.get("builders"):
        sys.exit(f"configure() generated no builder for {master}")
    return config_dict


def _write_static(static: Path, generated: Path) -> int:
    """(Re)write the static master from the generated one's current configuration."""
    config_dict = _configure(generated)
    master_cfg = static / "master.cfg"
    if static.exists():
        # keep the database and logs of a running static master: only master.cfg changes
        tmp = static.with_name(static.name + ".tmp")
        _staticmaster.write_equivalent(tmp, generated, config_dict)
        problems = _staticmaster.verify(tmp, config_dict)
        shutil.copyfile(tmp / "master.cfg", master_cfg)
        shutil.rmtree(tmp)
    else:
        _staticmaster.write_equivalent(static, generated, config_dict)
        problems = _staticmaster.verify(static, config_dict)
    if problems:
        sys.exit("the static master is not equivalent:\n" + "\n".join(problems))
    return len(config_dict["builders"])


def _edit(generated: Path, round_no: int) -> None:
    """Change one buildout section: its addons (a new step command, same cells)."""
    manifest = generated / "buildouts" / "MANIFEST.cfg"
    text = manifest.read_text()
    head, sep, rest = text.partition(EDITED + "\n")
    body, nl, tail = rest.partition("\n\n")
    body = re.sub(r"^odoo-addons = .*$", f"odoo-addons = mod_0, edit_{round_no}", body, flags=re.M)
    manifest.write_text(head + sep + body + nl + tail)


@dataclass
class Side:
    label: str
    basedir: Path
    pristine_db: Path = field(init=False)
    www_port: int = field(default_factory=_free_port)
    pb_port: int = field(default_factory=_free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            **self.extra_env,
            PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            ANYBOX_CI_WWW_PORT=f"tcp:{self.www_port}:interface=127.0.0.1",
            ANYBOX_CI_PB_PORT=f"tcp:{self.pb_port}:interface=127.0.0.1",
            ANYBOX_CI_URL=f"http://127.0.0.1:{self.www_port}/",
        )

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [_tool("buildbot"), *argv, str(self.basedir)],
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            sys.exit(f"{self.label}: buildbot {argv[0]} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def create(self) -> None:
        self.run("create-master", "-q")
        self.pristine_db = self.basedir / "pristine.sqlite"
        shutil.copyfile(self.basedir / "state.sqlite", self.pristine_db)

    def fresh(self) -> None:
        for name in ("state.sqlite", "twistd.log"):
            (self.basedir / name).unlink(missing_ok=True)
        shutil.copyfile(self.pristine_db, self.basedir / "state.sqlite")

    def log(self) -> str:
        return (self.basedir / "twistd.log").read_text(errors="replace")

    def timed(self, *argv: str) -> float:
        started = time.perf_counter()
        self.run(*argv)
        return time.perf_counter() - started

    def start(self) -> float:
        return self.timed("start", "--start_timeout=3600")

    def cpu(self) -> float:
        """CPU seconds the running master used so far (all its threads)."""
        pid = (self.basedir / "twistd.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reconfig(self) -> tuple[float, float, float]:
        """Wall time of ``buildbot reconfig``, the master's own (from its log), and the
        master's CPU time meanwhile."""
        before = self.log().count("configuration update complete")
        cpu = self.cpu()
        wall = self.timed("reconfig", "--progress_timeout=3600")
        log = self.log()
        if log.count("configuration update complete") <= before:
            sys.exit(f"{self.label}: reconfig did not complete:\n{log[-3000:]}")
        return wall, _last_update_seconds(log), self.cpu() - cpu

    def stop(self) -> None:
        self.run("stop", check=False)


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}) ")


def _last_update_seconds(log: str) -> float:
    """Seconds between the last 'beginning configuration update' and its completion."""
    lines = log.splitlines()
    end = max(i for i, line in enumerate(lines) if "configuration update complete" in line)
    begin = max(i for i in range(end) if "beginning configuration update" in lines[i])

    def stamp(i: int) -> datetime:
        match = _STAMP.match(lines[i])
        assert match, lines[i]
        return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S%z")

    # the log has whole seconds: good enough beside the command's wall time
    return (stamp(end) - stamp(begin)).total_seconds()


# ---------------------------------------------------------------- measuring


@dataclass
class Figures:
    start: list[float] = field(default_factory=list)
    #: the master's CPU seconds once running
    start_cpu: list[float] = field(default_factory=list)
    reconfig: list[tuple[float, float, float]] = field(default_factory=list)
    edit: list[tuple[float, float, float]] = field(default_factory=list)
    #: nothing changed again, after the edit: Buildbot's reconfigs grow slower one after
    #: the other on both sides, so this separates that from the edit's own cost
    again: list[tuple[float, float, float]] = field(default_factory=list)


def one_round(side: Side, figures: Figures, edit: Callable[[], None], round_no: int) -> None:
    side.fresh()
    _print(f"  round {round_no}, {side.label}: buildbot start ...")
    try:
        figures.start.append(side.start())
        figures.start_cpu.append(side.cpu())
        _print(f"    started in {figures.start[-1]:.1f} s; reconfig, nothing changed ...")
        figures.reconfig.append(side.reconfig())
        _print(f"    reconfig in {figures.reconfig[-1][0]:.2f} s; editing one section ...")
        edit()
        figures.edit.append(side.reconfig())
        _print(f"    reconfig after one edit in {figures.edit[-1][0]:.2f} s; again, unchanged ...")
        figures.again.append(side.reconfig())
        _print(
            f"    reconfig in {figures.again[-1][0]:.2f} s (load average {os.getloadavg()[0]:.1f})"
        )
    finally:
        side.stop()


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _pairs(values: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(_median([v[i] for v in values]) for i in range(len(values[0])))


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def report(static: Figures, ours: Figures, cells: int, runs: int) -> bool:
    s_start, o_start = _median(static.start), _median(ours.start)
    s_cpu, o_cpu = _median(static.start_cpu), _median(ours.start_cpu)
    s_re, o_re = _pairs(static.reconfig), _pairs(ours.reconfig)
    s_ed, o_ed = _pairs(static.edit), _pairs(ours.edit)
    s_ag, o_ag = _pairs(static.again), _pairs(ours.again)
    _print(
        f"\n{cells} cells, medians of {runs} run(s): wall time of the buildbot command, "
        "[the master's own time from its log],\n(the master's CPU time)"
    )
    _print(f"  {'':<30} {'static master.cfg':>26} {'anybox_ci':>26} {'ratio':>6}")
    _print(
        f"  {'buildbot start until running':<30} {s_start:>8.1f} s {'':>7} ({s_cpu:>5.1f} s) "
        f"{o_start:>8.1f} s {'':>7} ({o_cpu:>5.1f} s) {o_start / s_start:>6.2f}"
    )
    for label, s, o in (
        ("reconfig, nothing changed", s_re, o_re),
        ("reconfig after one edit", s_ed, o_ed),
        ("reconfig, unchanged again", s_ag, o_ag),
    ):
        _print(
            f"  {label:<30} {s[0]:>8.2f} s [{s[1]:>3.0f} s] ({s[2]:>5.2f} s) "
            f"{o[0]:>8.2f} s [{o[1]:>3.0f} s] ({o[2]:>5.2f} s) {o[0] / s[0]:>6.2f}"
        )
    ok_start = o_start <= TARGET_START_RATIO * s_start
    ok_re = o_re[0] <= TARGET_RECONFIG_RATIO * s_re[0]
    ok_edit = o_ed[0] <= TARGET_EDIT_SECONDS
    _print(
        f"  CPU ratios (less disturbed by other jobs): start {o_cpu / s_cpu:.2f}, reconfig "
        f"{o_re[2] / s_re[2]:.2f}, after one edit {o_ed[2] / s_ed[2]:.2f}"
    )
    _print("targets (wall time)")
    _print(
        f"  start <= {TARGET_START_RATIO} x static: {o_start / s_start:.2f} -> {_verdict(ok_start)}"
    )
    _print(
        f"  reconfig, nothing changed <= {TARGET_RECONFIG_RATIO} x static: "
        f"{o_re[0] / s_re[0]:.2f} -> {_verdict(ok_re)}"
    )
    _print(
        f"  reconfig after one edit <= {TARGET_EDIT_SECONDS} s: {o_ed[0]:.2f} s -> "
        f"{_verdict(ok_edit)}"
    )
    return ok_start and ok_re and ok_edit


def run(args: argparse.Namespace, work: Path) -> int:
    began = time.perf_counter()
    _print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
        f"{os.getloadavg()[0]:.1f}; work folder {work}"
    )
    generated = _synthetic.write_best_case(work / "anybox", args.sections)
    # hook mode: no pollers on either side (they would hit unreachable forges)
    users = generated / "secrets" / "change-hook-users"
    users.write_text("bench:bench-password\n")
    users.chmod(0o600)
    static_dir = work / "static"
    cells = _write_static(static_dir, generated)
    size = (static_dir / "master.cfg").stat().st_size / 1024
    _print(
        f"{args.sections} sections, {cells} cells; static master.cfg {size:.0f} KiB: "
        "builds the same objects (verified)"
    )
    # master.cfg.sample turns on virtual_builders from this variable (render.cells)
    virtual = {} if args.per_cell_builders else {"ANYBOX_CI_VIRTUAL_BUILDERS": "1"}
    _print(
        "anybox_ci: "
        + ("a builder per cell" if args.per_cell_builders else "virtual_builders=True")
        + "; static: a builder per cell"
    )
    static, ours = Side("static", static_dir), Side("anybox_ci", generated, extra_env=virtual)
    for side in (static, ours):
        side.create()
    manifest = generated / "buildouts" / "MANIFEST.cfg"
    original = manifest.read_text()
    figures = {"static": Figures(), "anybox_ci": Figures()}
    for n in range(1, args.runs + 1):
        manifest.write_text(original)
        _write_static(static_dir, generated)

        def edit_static(n: int = n) -> None:
            _edit(generated, n)
            _write_static(static_dir, generated)
            manifest.write_text(original)  # anybox_ci's turn edits it again

        def edit_ours(n: int = n) -> None:
            _edit(generated, n)

        one_round(static, figures["static"], edit_static, n)
        one_round(ours, figures["anybox_ci"], edit_ours, n)
        manifest.write_text(original)
    ok = report(figures["static"], figures["anybox_ci"], cells, args.runs)
    _print(f"benchmark took {time.perf_counter() - began:.0f} s")
    return 0 if ok else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--per-cell-builders",
        action="store_true",
        help="anybox_ci without virtual_builders (a real builder per cell, as the static side)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="anybox-ci-bench-start-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
