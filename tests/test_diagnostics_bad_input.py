"""Every bad input gives its own one-line ``FILE:LINE: [section] option: message``.

Driven through the real command line (``anybox_ci.cli.main`` and the installed
``anybox-ci`` script) on a master directory laid out as the contract says.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anybox_ci import cli
from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.core import schema

ANYBOX_CI = Path(sys.executable).parent / "anybox-ci"

WORKERS = """\
[w1]
password = secret:w1
capability =
    postgresql 15 port=5432
"""

BUILDOUT = "[buildout]\nparts =\n"


def make_master(
    root: Path,
    manifest: str,
    workers: str = WORKERS,
    files: dict[str, str] | None = None,
) -> Path:
    """A master directory: buildouts/MANIFEST.cfg, buildouts/b.cfg, workers.cfg, extras."""
    root = root.resolve()
    (root / "buildouts").mkdir(parents=True, exist_ok=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text(BUILDOUT)
    (root / "workers.cfg").write_text(workers)
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run_check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    rc = cli.main(["check", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out.splitlines(), err


def errors_of(lines: list[str]) -> list[str]:
    return [line for line in lines if ": warning: " not in line]


def warnings_of(lines: list[str]) -> list[str]:
    return [line for line in lines if ": warning: " in line]


# (id, manifest, workers, extra files, expected error line with {m} = MANIFEST.cfg, {d} = dir)
BAD_INPUTS = [
    (
        "unknown-option",
        "[erp]\nbuildout = standalone b.cfg\n\nbiuld-for = postgresql >= 13\n",
        WORKERS,
        {},
        "{m}:4: [erp] biuld-for: unknown option (did you mean build-for?)",
    ),
    (
        "malformed-filter",
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql >== 13\n",
        WORKERS,
        {},
        "{m}:3: [erp] build-for: unknown operator '>==' in 'postgresql >== 13'",
    ),
    (
        "malformed-filter-second-line",
        "[erp]\nbuildout = standalone b.cfg\nbuild-requires =\n    wkhtmltopdf\n"
        "    postgresql >= 13 OR\n",
        WORKERS,
        {},
        "{m}:5: [erp] build-requires: dangling 'OR' at the end of 'postgresql >= 13 OR'",
    ),
    (
        "malformed-capability",
        "[erp]\nbuildout = standalone b.cfg\n",
        "[w1]\npassword = secret:w1\ncapability =\n    postgresql 15 port=5432\n"
        "    postgresql 16 port\n",
        {},
        "{d}/workers.cfg:5: [w1] capability: expected key=value after the version, "
        "got 'port' in 'postgresql 16 port'",
    ),
    (
        "inherit-loop",
        "[a]\nbuildout = standalone b.cfg\ninherit = b\n\n[b]\ninherit = a\n",
        WORKERS,
        {},
        "{m}:6: [b] inherit: inheritance loop: a -> b -> a",
    ),
    (
        "inherit-missing",
        "[base]\nbuildout = standalone b.cfg\n\n[erp]\ninherit = bsae\n",
        WORKERS,
        {},
        "{m}:5: [erp] inherit: no section 'bsae' to inherit from (did you mean base?)",
    ),
    (
        "missing-standalone-file",
        "[erp]\nbuildout = standalone nope.cfg\n",
        WORKERS,
        {},
        "{m}:2: [erp] buildout: buildout file 'nope.cfg' not found in {d}/buildouts",
    ),
    (
        "worker-without-password",
        "[erp]\nbuildout = standalone b.cfg\n",
        "[w1]\ncapability = postgresql 15\n",
        {},
        "{d}/workers.cfg:1: [w1] password: missing required option",
    ),
    (
        "worker-empty-secret",
        "[erp]\nbuildout = standalone b.cfg\n",
        "[w1]\ncapability = postgresql 15\npassword = secret:\n",
        {},
        "{d}/workers.cfg:3: [w1] password: missing secret name after 'secret:'",
    ),
    (
        "non-integer-max-builds",
        "[erp]\nbuildout = standalone b.cfg\n",
        WORKERS + "max_builds = two\n",
        {},
        "{d}/workers.cfg:5: [w1] max_builds: expected an integer, got 'two'",
    ),
    (
        "unknown-step-set",
        "[erp]\nbuildout = standalone b.cfg\npost-buildout-steps =\n    install-modules\n"
        "    statc-analysis\n",
        WORKERS,
        {},
        "{m}:5: [erp] post-buildout-steps: unknown step set 'statc-analysis' "
        "(did you mean static-analysis?)",
    ),
    (
        "duplicate-worker",
        "[erp]\nbuildout = standalone b.cfg\n",
        WORKERS,
        {"workers.d/x.cfg": "# another owner\n[w1]\npassword = secret:other\n"},
        "{d}/workers.d/x.cfg:2: [w1] worker already defined in {d}/workers.cfg:1",
    ),
    (
        "worker-name-buildbot-refuses",
        "[erp]\nbuildout = standalone b.cfg\n",
        WORKERS + "\n[ci.example.com]\npassword = secret:ci\n",
        {},
        "{d}/workers.cfg:6: [ci.example.com] invalid worker name: use letters, digits, '_' "
        "and '-', not starting with a digit",
    ),
    (
        "worker-name-reserved",
        "[erp]\nbuildout = standalone b.cfg\n",
        WORKERS + "\n[status]\npassword = secret:st\n",
        {},
        "{d}/workers.cfg:6: [status] worker name reserved by Buildbot",
    ),
    (
        "step-set-without-its-option",
        "[erp]\nbuildout = standalone b.cfg\ndb-steps = restore\n",
        WORKERS,
        {},
        "{m}:3: [erp] db-steps: step set 'restore' needs a value for 'restore.dump', "
        "'restore.master-dump', 'restore.url' or 'db-restore-command'",
    ),
    (
        "nightly-time-twice",
        "[erp]\nbuildout = standalone b.cfg\nnightly = 02:30 14:00 2:30\n",
        WORKERS,
        {},
        "{m}:3: [erp] nightly: time '2:30' given twice",
    ),
    (
        "interpolation-to-nothing",
        "[DEFAULT]\nroots = /srv\n\n[erp]\nbuildout = standalone b.cfg\n"
        "doc.upload-dir = %(root)s/doc\n",
        WORKERS,
        {},
        "{m}:6: [erp] doc.upload-dir: %(root)s refers to no option of [erp] or [DEFAULT] "
        "(did you mean roots?)",
    ),
    (
        "not-used-in-build-requires",
        "[erp]\nbuildout = standalone b.cfg\nbuild-requires = postgresql not-used\n",
        WORKERS,
        {},
        "{m}:3: [erp] build-requires: postgresql not-used: 'not-used' only has a meaning in "
        "build-for (one builder, whatever the postgresql version); here, remove the line",
    ),
    (
        "ancestor-archive-without-base-url",
        "[erp]\nbuildout = archive subdir_prop archive_prop release.cfg\n",
        WORKERS,
        {},
        "{m}:2: [erp] buildout: the ancestor's 'archive SUBDIR_PROPERTY ARCHIVE_PROPERTY FILE' "
        "is fetched from 'packaging.base-url' (the URL serving 'packaging.root-dir'): set it, "
        "or write 'archive URL FILE'",
    ),
    (
        "bad-pip-exists-action",
        "[erp]\nbuildout = standalone b.cfg\nbuildout.pip-exists-action = wipe  ; all\n",
        WORKERS,
        {},
        "{m}:3: [erp] buildout.pip-exists-action: expected one of s, i, w, b, a, got 'wipe'",
    ),
    (
        "bad-watch-branch",
        "[erp]\nbuildout = standalone b.cfg\nwatch =\n    git https://e.com/a.git main\n"
        "    git https://e.com/b.git ma..in\n",
        WORKERS,
        {},
        "{m}:5: [erp] watch: invalid branch name 'ma..in': it contains '..'",
    ),
]


@pytest.mark.parametrize(
    "manifest, workers, files, expected",
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gives_one_exact_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: str,
    workers: str,
    files: dict[str, str],
    expected: str,
) -> None:
    root = make_master(tmp_path, manifest, workers, files)
    rc, lines, err = run_check(capsys, str(root))
    want = expected.format(m=root / "buildouts" / "MANIFEST.cfg", d=root)
    assert errors_of(lines) == [want]
    assert rc == 1
    assert err.strip() == "1 error(s)"


def test_duplicate_section_across_manifests_names_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\n",
        files={"buildouts/more/OTHER.cfg": "# more\n\n[erp]\nbuildout = standalone ../b.cfg\n"},
    )
    rc, lines, _ = run_check(
        capsys,
        str(root),
        "--manifest",
        "buildouts/MANIFEST.cfg",
        "--manifest",
        "buildouts/more/OTHER.cfg",
    )
    assert errors_of(lines) == [
        f"{root}/buildouts/more/OTHER.cfg:3: [erp] section already defined in "
        f"{root}/buildouts/MANIFEST.cfg:1"
    ]
    assert rc == 1


def test_every_problem_is_reported_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One broken section does not hide the others: every line, sorted by file and line."""
    manifest = """\
[good]
buildout = standalone b.cfg
build-for = postgresql

[typo]
buildout = standalone b.cfg
tree-stable-timr = 5

[filter]
buildout = standalone b.cfg
build-for = postgresql >= 13 <

[nofile]
buildout = standalone missing.cfg
"""
    workers = (
        WORKERS + "\n[w2]\ncapability = python 3.11\n\n[w3]\npassword = secret:w3\nmax_builds = 0\n"
    )
    root = make_master(tmp_path, manifest, workers)
    rc, lines, err = run_check(capsys, str(root))
    m = root / "buildouts" / "MANIFEST.cfg"
    assert errors_of(lines) == [
        f"{m}:7: [typo] tree-stable-timr: unknown option (did you mean tree-stable-timer?)",
        f"{m}:11: [filter] build-for: missing version after '<' in 'postgresql >= 13 <'",
        f"{m}:14: [nofile] buildout: buildout file 'missing.cfg' not found in {root}/buildouts",
        f"{root}/workers.cfg:6: [w2] password: missing required option",
        f"{root}/workers.cfg:11: [w3] max_builds: must be at least 1, got 0",
    ]
    assert rc == 1
    assert err.strip() == "5 error(s)"


def test_unservable_build_for_is_a_reported_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_master(
        tmp_path,
        "[ok]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n\n"
        "[future]\nbuildout = standalone b.cfg\nbuild-for = postgresql >= 18\n",
    )
    rc, lines, err = run_check(capsys, str(root))
    assert rc == 0
    assert lines == [
        f"{root}/buildouts/MANIFEST.cfg:5: warning: [future] no eligible worker offers "
        "postgresql >= 18 (offered: 15)"
    ]
    assert err.strip() == "ok: 2 buildout(s), 1 worker(s), 1 builder(s)"


def test_deprecated_names_work_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nopenerp-addons = base, sale\n"
        "post-buildout-steps =\n    static-analysis\n    standard\n",
        WORKERS + "slave_priority = 7\n",
    )
    rc, lines, err = run_check(capsys, str(root))
    m = root / "buildouts" / "MANIFEST.cfg"
    assert lines == [
        f"{m}:3: warning: [erp] openerp-addons: deprecated option name, use 'odoo-addons'",
        f"{m}:6: warning: [erp] post-buildout-steps: deprecated step set name 'standard', "
        "use 'install-modules-test'",
        f"{root}/workers.cfg:5: warning: [w1] slave_priority: deprecated option name, "
        "use 'priority'",
    ]
    assert rc == 0
    assert err.startswith("ok: 1 buildout(s), 1 worker(s), 1 builder(s)")
    # and the old names mean what the new ones do
    loaded = AnyboxConfigurator(root).load()
    (buildout,) = loaded.config.buildouts
    (worker,) = loaded.config.workers
    assert buildout.get(schema.ODOO_ADDONS) == ("base", "sale")
    assert buildout.get(schema.POST_BUILDOUT_STEPS) == ("static-analysis", "standard")
    assert worker.priority == 7.0


def test_new_name_wins_over_the_old_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_master(
        tmp_path,
        "[erp]\nbuildout = standalone b.cfg\nodoo-addons = web\nopenerp-addons = base\n",
    )
    rc, lines, _ = run_check(capsys, str(root))
    assert rc == 0
    assert lines == [
        f"{root}/buildouts/MANIFEST.cfg:4: warning: [erp] openerp-addons: deprecated option "
        "name, use 'odoo-addons'"
    ]
    (buildout,) = AnyboxConfigurator(root).load().config.buildouts
    assert buildout.get(schema.ODOO_ADDONS) == ("web",)


def test_missing_manifest_and_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path.resolve()
    (root / "workers.cfg").write_bytes(b"[w1]\npassword = \xff\xfe\n")
    rc, lines, _ = run_check(capsys, str(root))
    assert rc == 1
    assert lines[0] == f"{root}/buildouts/MANIFEST.cfg: file not found"
    assert lines[1].startswith(f"{root}/workers.cfg: cannot read: ")
    assert len(lines) == 2


def test_file_name_too_long_is_a_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "x" * 300 + ".cfg"
    root = make_master(tmp_path, f"[erp]\nbuildout = standalone {name}\n")
    rc, lines, _ = run_check(capsys, str(root))
    assert rc == 1
    assert errors_of(lines) == [
        f"{root}/buildouts/MANIFEST.cfg:2: [erp] buildout: cannot use buildout file "
        f"{name!r}: File name too long"
    ]


def test_line_numbers_count_newlines_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A form feed or a CRLF must not shift the line numbers of what follows."""
    manifest = "# page one\x0c page two\r\n[erp]\r\nbuildout = standalone b.cfg\r\ncolour = red\r\n"
    root = make_master(tmp_path, manifest)
    rc, lines, _ = run_check(capsys, str(root))
    assert rc == 1
    assert errors_of(lines) == [
        f"{root}/buildouts/MANIFEST.cfg:4: [erp] colour: unknown option",
    ]


# ---------------------------------------------------------------- the installed script


def _script(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANYBOX_CI), *map(str, argv)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "case_id", ["unknown-option", "inherit-loop", "malformed-capability", "duplicate-worker"]
)
def test_installed_script_exit_code_and_no_traceback(tmp_path: Path, case_id: str) -> None:
    (_, manifest, workers, files, expected) = next(c for c in BAD_INPUTS if c[0] == case_id)
    root = make_master(tmp_path, manifest, workers, files)
    proc = _script("check", root)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    want = expected.format(m=root / "buildouts" / "MANIFEST.cfg", d=root)
    assert want in proc.stdout.splitlines()
    assert proc.stderr.strip() == "1 error(s)"


def test_installed_script_clean_directory_exits_zero(tmp_path: Path) -> None:
    root = make_master(tmp_path, "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n")
    proc = _script("check", root)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr.strip() == "ok: 1 buildout(s), 1 worker(s), 1 builder(s)"


def test_installed_script_missing_directory(tmp_path: Path) -> None:
    proc = _script("check", tmp_path / "nowhere")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{tmp_path.resolve()}/nowhere/buildouts/MANIFEST.cfg: file not found" in (
        proc.stdout.splitlines()
    )
