"""A wheel of the project installed into a fresh virtualenv works away from the checkout:
``anybox-ci --help``, ``init`` and ``check`` (and, live, a whole ``demo``) find their
data (master.cfg.sample, the sample buildouts) inside the installed package.

The fast test gives the new virtualenv this checkout's dependencies through a ``.pth``
line (never its editable anybox_ci, whose ``.pth`` is not processed there) and installs
the wheel with ``--no-deps``; the live one installs the wheel with its dependencies
resolved by pip, as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.test_live_run import table_rows

REPO = Path(__file__).resolve().parent.parent
#: what a clean checkout does not have
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "test-artifacts"
)
SCRIPTS = {
    "buildbot": "buildbot.scripts.runner",
    "buildbot-worker": "buildbot_worker.scripts.runner",
}


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def clean_env(venv: Path) -> dict[str, str]:
    """The new virtualenv's bin first; nothing pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the checkout (the build writes into its source folder)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES, symlinks=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    proc = run([*pip, "wheel", "--no-deps", "--no-build-isolation", ".", "-w", root], source)
    assert proc.returncode == 0, proc.stderr
    (found,) = root.glob("anybox_ci-*.whl")
    return found


def venv_with_checkout_deps(venv: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = Path(sysconfig.get_path("purelib"))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (venv / "lib" / version / "site-packages" / "checkout-deps.pth").write_text(f"{site}\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    proc = run([*pip, "--python", venv / "bin" / "python", "install", "--no-deps", wheel], venv)
    assert proc.returncode == 0, proc.stderr
    # what pip would have written for the dependencies' own commands
    for name, module in SCRIPTS.items():
        script = venv / "bin" / name
        script.write_text(
            f"#!{venv}/bin/python\nimport sys\nfrom {module} import run\nsys.exit(run())\n"
        )
        script.chmod(0o755)
    return venv


def test_the_wheel_holds_the_data_and_no_junk(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "anybox_ci/data/master.cfg.sample" in names
    for sample in ("passing", "failing", "restricted"):
        assert f"anybox_ci/samples/{sample}/buildout.cfg" in names
    assert "anybox_ci/samples/fake-odoo/setup.py" in names
    assert "anybox_ci/build_utils/odoo_log.py" in names
    # every package of the source tree (a new subpackage must be listed in pyproject.toml)
    for init in (REPO / "anybox_ci").rglob("__init__.py"):
        assert init.relative_to(REPO).as_posix() in names
    for module in (REPO / "build_utils").glob("*.py"):
        assert f"anybox_ci/build_utils/{module.name}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or ".egg-info/" in n]


def test_installed_wheel_runs_help_init_and_check_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    venv = venv_with_checkout_deps(tmp_path / "venv", wheel)
    env, cli = clean_env(venv), venv / "bin" / "anybox-ci"
    where = run(
        [
            venv / "bin" / "python",
            "-c",
            "import anybox_ci.resources as r; print(r.sample_dir('passing'))",
        ],
        tmp_path,
        env,
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr

    helped = run([cli, "--help"], tmp_path, env)
    assert helped.returncode == 0 and "init" in helped.stdout and "demo" in helped.stdout

    made = run([cli, "init", tmp_path / "master"], tmp_path, env)
    assert made.returncode == 0, made.stderr
    master_cfg = (tmp_path / "master" / "master.cfg").read_text()
    assert master_cfg == (REPO / "anybox_ci" / "data" / "master.cfg.sample").read_text()

    checked = run([cli, "check", tmp_path / "master"], tmp_path, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr.startswith("ok: 1 buildout(s), 1 worker(s)")

    refused = run([cli, "init", tmp_path / "master"], tmp_path, env)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1


@pytest.mark.live
def test_pip_install_of_the_wheel_gives_a_working_demo(wheel: Path, tmp_path: Path) -> None:
    """A real ``pip install`` (dependencies from the index) then the whole demo."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    installed = run(
        [venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel],
        tmp_path,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr
    demo = run([venv / "bin" / "anybox-ci", "demo"], tmp_path, clean_env(venv), timeout=1200)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    rows = table_rows(demo.stdout)
    assert set(rows) == {"passing-pg15", "failing-pg15", "restricted-pg15"}
    assert rows["failing-pg15"][2:4] == ["FAILURE", "(expected)"]
