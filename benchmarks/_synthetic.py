"""Synthetic master directories for benchmarks/bench_configurator.py.

Two shapes:

- :func:`write_best_case`: the best case for every cache of the configurator. Every section
  uses one shared buildout file and the same ``build-for`` line, 50 workers offer
  PostgreSQL 13 to 16 (4 cells per section).
- :func:`write_realistic`: what a big installation looks like. Every section has a
  buildout file of its own that ``extends`` shared local bases (one or two levels, sometimes
  two bases). Sections form ``inherit`` chains of 2 and 3 levels. ``build-for`` and
  ``build-requires`` lines mix ``OR``, ``!=``, ranges and a second capability (a cartesian
  product). Each section has 2 to 4 ``watch`` lines: repositories of its own plus shared ones.
  200 workers have 2 to 4 capabilities each (PostgreSQL 12 to 17, Python 3.10 to 3.12,
  wkhtmltopdf), split over ``workers.cfg`` and ``workers.d/*.cfg``. That is about 4 cells per
  section.

Both use the repository's master.cfg.sample as master.cfg, as an admin would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "master.cfg.sample"

# ---------------------------------------------------------------- shared helpers


def _new_master(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    (root / "buildouts").mkdir(parents=True)
    (root / "secrets").mkdir(mode=0o700)
    shutil.copyfile(SAMPLE, root / "master.cfg")


def _secret(root: Path, name: str) -> str:
    path = root / "secrets" / f"worker-{name}"
    path.write_text(f"pw-{name}\n")
    path.chmod(0o600)  # SecretInAFile refuses files readable by others
    return f"secret:worker-{name}"


# ---------------------------------------------------------------- best case

BEST_CASE_PG = ("13", "14", "15", "16")
BEST_CASE_WORKERS = 50

_BEST_CASE_BUILDOUT = """\
[buildout]
parts = openerp
versions = versions

[openerp]
recipe = anybox.recipe.odoo:server
version = git https://github.com/odoo/odoo.git odoo 17.0 depth=1
options.log_level = info

[versions]
zc.buildout = 4.1.4
"""


def write_best_case(root: Path, sections: int) -> Path:
    """One shared buildout file, one requirement shape, 50 workers: 4 cells per section."""
    _new_master(root)
    (root / "buildouts" / "buildout.cfg").write_text(_BEST_CASE_BUILDOUT)
    repos = max(1, sections // 10)
    manifest = [
        "# Synthetic manifest (best case) for benchmarks/bench_configurator.py",
        "[DEFAULT]",
        "db-steps = simple_create",
        "post-buildout-steps = install-modules-test",
        "build-category = bench",
        "",
    ]
    for i in range(sections):
        manifest += [
            f"[proj-{i:05d}]",
            "buildout = standalone buildout.cfg",
            "build-for = postgresql >= 13",
            f"watch = git https://git.example.com/addons-{i % repos:04d}.git 17.0",
            f"odoo-addons = mod_{i}",
            "",
        ]
    (root / "buildouts" / "MANIFEST.cfg").write_text("\n".join(manifest))

    workers = ["# Synthetic workers (best case) for benchmarks/bench_configurator.py"]
    for w in range(BEST_CASE_WORKERS):
        name = f"w{w:02d}"
        versions = BEST_CASE_PG[w % 4], BEST_CASE_PG[(w + 1) % 4]
        workers += [
            f"[{name}]",
            f"password = {_secret(root, name)}",
            "max_builds = 2",
            f"priority = {w % 3}",
            "capability =",
            *(
                f"    postgresql {v} port={5400 + int(v)} bin=/usr/lib/postgresql/{v}/bin"
                for v in versions
            ),
            "    python 3.11",
            "",
        ]
    (root / "workers.cfg").write_text("\n".join(workers))
    return root


# ---------------------------------------------------------------- realistic

REALISTIC_WORKERS = 200
PG_VERSIONS = ("12", "13", "14", "15", "16", "17")
PY_VERSIONS = ("3.10", "3.11", "3.12")

#: shared watched repositories (OCA-like), each watched by many sections
_SHARED_REPOS = tuple(
    f"https://github.com/OCA/{name}.git"
    for name in (
        "server-tools",
        "server-ux",
        "web",
        "reporting-engine",
        "account-financial-tools",
        "account-financial-reporting",
        "sale-workflow",
        "purchase-workflow",
        "stock-logistics-workflow",
        "stock-logistics-warehouse",
        "partner-contact",
        "hr",
        "project",
        "connector",
        "queue",
        "l10n-france",
        "l10n-switzerland",
        "bank-payment",
        "mis-builder",
        "social",
        "knowledge",
        "contract",
        "product-attribute",
        "manufacture",
    )
)

#: (build-for lines, build-requires lines) of the chain heads, cycled
_HEAD_SHAPES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("postgresql >= 12 != 14",), ()),  # 5 cells
    (("postgresql >= 16", "python 3.10 OR 3.11"), ()),  # 2 x 2 cells
    (("postgresql == 12 OR >= 15",), ("wkhtmltopdf",)),  # 4 cells
    (("postgresql >= 15",), ("python 3.10 OR 3.11",)),  # 3 cells
    (("postgresql >= 13 < 16", "python != 3.10"), ()),  # 3 x 2 cells
    (("postgresql >= 14 != 16",), ("python >= 3.11", "wkhtmltopdf >= 0.12")),  # 3 cells
)
#: what some grandchildren say instead of their ancestors' build-for
_GRANDCHILD_BUILD_FOR = ("postgresql >= 14", "postgresql == 13 OR == 17", "postgresql >= 16")

_STEP_SETS = (
    ("install-modules-test",),
    ("install-modules-test",),
    ("install-modules", "update-modules"),
    ("install-modules-test", "static-analysis"),
)

_BASES = {
    "base/odoo-16.cfg": ("16.0", None),
    "base/odoo-17.cfg": ("17.0", None),
    "base/odoo-18.cfg": ("18.0", None),
    # a second level: extends odoo-17.cfg
    "base/odoo-17-ocb.cfg": ("17.0", "odoo-17.cfg"),
    # a second base some buildouts extend as well
    "base/pg-tuning.cfg": (None, None),
}
_BASE_CHOICE = ("base/odoo-16.cfg", "base/odoo-17.cfg", "base/odoo-18.cfg", "base/odoo-17-ocb.cfg")


def _base_text(version: str | None, parent: str | None) -> str:
    if version is None:
        return "[openerp]\noptions.db_maxconn = 64\noptions.workers = 0\n"
    lines = ["[buildout]"]
    if parent:
        lines.append(f"extends = {parent}")
    lines += [
        "parts = openerp",
        "versions = versions",
        "",
        "[openerp]",
        "recipe = anybox.recipe.odoo:server",
    ]
    if parent:
        lines.append(f"version = git https://github.com/OCA/OCB.git odoo {version} depth=1")
    else:
        lines.append(f"version = git https://github.com/odoo/odoo.git odoo {version} depth=1")
    lines += ["options.log_level = info", "", "[versions]", "zc.buildout = 4.1.4", ""]
    return "\n".join(lines)


def _project_buildout(i: int, branch: str) -> str:
    base = _BASE_CHOICE[i % len(_BASE_CHOICE)]
    extends = base if i % 5 else f"{base} base/pg-tuning.cfg"
    shared = _SHARED_REPOS[i % len(_SHARED_REPOS)]
    return (
        f"[buildout]\nextends = {extends}\n\n"
        "[openerp]\n"
        "addons =\n"
        f"    git https://git.example.com/c{i:05d}/addons.git addons-{i} {branch}\n"
        f"    git {shared} oca {branch}\n"
        f"options.dbfilter = ^c{i:05d}.*$\n"
        f"eggs += requests\n\n"
        f"[versions]\nrequests = 2.{i % 30}.0\n"
    )


def _watch_lines(i: int) -> list[str]:
    """2 to 4 watch lines: one or two repositories of its own, one or two shared."""
    branch = ("16.0", "17.0", "18.0")[i % 3]
    lines = [f"git https://git.example.com/c{i:05d}/addons.git {branch}"]
    if i % 2:
        lines.append(f"git https://git.example.com/c{i:05d}/themes.git main")
    lines.append(f"git {_SHARED_REPOS[i % len(_SHARED_REPOS)]} {branch}")
    if i % 3 == 0:
        lines.append(f"git {_SHARED_REPOS[(i * 7 + 3) % len(_SHARED_REPOS)]} {branch}")
    return lines


def _option(name: str, values: list[str] | tuple[str, ...]) -> list[str]:
    if len(values) == 1:
        return [f"{name} = {values[0]}"]
    return [f"{name} =", *(f"    {v}" for v in values)]


def _section(i: int) -> list[str]:
    """Section ``i``: a chain head (i % 3 == 0), its child, or its grandchild."""
    name = f"erp-{i:05d}"
    family = i // 3
    level = i % 3
    lines = [f"[{name}]"]
    if level:
        lines.append(f"inherit = erp-{i - 1:05d}")
    lines.append(f"buildout = standalone projects/{name}.cfg")
    if level == 0:
        build_for, requires = _HEAD_SHAPES[family % len(_HEAD_SHAPES)]
        lines += _option("build-for", build_for)
        if requires:
            lines += _option("build-requires", requires)
        steps = _STEP_SETS[family % len(_STEP_SETS)]
        lines += _option("post-buildout-steps", steps)
        if "static-analysis" in steps:
            lines.append("static-analysis-command = bin/flake8 addons")
        lines.append(f"build-category = team-{family % 7}")
        if family % 4 == 0:
            lines.append("tree-stable-timer = 60")
    elif level == 2 and family % 2:
        lines.append(f"build-for = {_GRANDCHILD_BUILD_FOR[family % len(_GRANDCHILD_BUILD_FOR)]}")
    lines += _option("watch", _watch_lines(i))
    lines.append(f"odoo-addons = c{i:05d}_base, c{i:05d}_sale")
    return [*lines, ""]


def _worker_capabilities(w: int) -> list[str]:
    """2 to 4 capability lines; every PostgreSQL and Python version is offered widely."""
    pgs = [PG_VERSIONS[w % 6]]
    if w % 3:
        pgs.append(PG_VERSIONS[(w // 6 + w + 1) % 6])
    pgs = list(dict.fromkeys(pgs))
    lines = [
        f"postgresql {v} port={5400 + int(v)} host=/var/run/postgresql "
        f"bin=/usr/lib/postgresql/{v}/bin lib=/usr/lib/postgresql/{v}/lib"
        for v in pgs
    ]
    if w % 4 != 3 or len(lines) < 2:
        py = PY_VERSIONS[(w + w // 6) % 3]
        lines.append(f"python {py} cmd=python{py}")
    if w % 5 == 0:
        lines.append("wkhtmltopdf 0.12.6 display=:99")
    return lines[:4]


def write_realistic(root: Path, sections: int) -> Path:
    """Distinct buildouts extending shared bases, inherit chains, mixed filters, 200 workers."""
    _new_master(root)
    projects = root / "buildouts" / "projects"
    (projects / "base").mkdir(parents=True)
    for rel, (version, parent) in _BASES.items():
        (projects / rel).write_text(_base_text(version, parent))
    for i in range(sections):
        branch = ("16.0", "17.0", "18.0")[i % 3]
        (projects / f"erp-{i:05d}.cfg").write_text(_project_buildout(i, branch))

    manifest = [
        "# Synthetic manifest (realistic) for benchmarks/bench_configurator.py",
        "[DEFAULT]",
        "db-steps = simple_create",
        "post-buildout-steps = install-modules-test",
        "",
    ]
    for i in range(sections):
        manifest += _section(i)
    (root / "buildouts" / "MANIFEST.cfg").write_text("\n".join(manifest))

    (root / "workers.d").mkdir()
    files: dict[Path, list[str]] = {}
    for w in range(REALISTIC_WORKERS):
        name = f"ci{w:03d}"
        target = root / "workers.cfg" if w < 50 else root / "workers.d" / f"dc{w // 50}.cfg"
        lines = files.setdefault(target, [f"# Synthetic workers for {target.name}"])
        lines += [
            f"[{name}]",
            f"password = {_secret(root, name)}",
            f"max_builds = {1 + w % 3}",
            f"priority = {w % 4}",
            f"location = dc{w // 50}",
            "capability =",
            *(f"    {line}" for line in _worker_capabilities(w)),
            "",
        ]
    for path, lines in files.items():
        path.write_text("\n".join(lines))
    return root
