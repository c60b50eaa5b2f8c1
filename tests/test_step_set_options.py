"""Options of the step sets change the rendered steps (argv lists, uploads, links).

Each test renders one buildout's factory through the configurator and reads the steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from buildbot.plugins import steps, util

from anybox_ci.configurator import AnyboxConfigurator

WORKERS = "[w1]\npassword = secret:w1\ncapability = postgresql 15\n"


def rendered(tmp_path: Path, options: str) -> dict[str, Any]:
    """The steps of a standalone buildout with ``options``, by step name."""
    root = tmp_path.resolve()
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\nbuild-for = postgresql\n" + options
    )
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text(WORKERS)
    config: dict[str, Any] = {}
    AnyboxConfigurator(root).configure(config)
    (builder,) = config["builders"]
    built = [s.buildStep() for s in builder.factory.steps]
    return {s.name: s for s in built if isinstance(s.name, str)}


def wrapped(step: Any) -> list[Any]:
    """The command a step runs, after the ``odoo_log run --log FILE --`` wrapper."""
    command = step.command
    # renderables compare lazily (Property("x") == "--" is a renderable): find by type
    dashes = next(i for i, arg in enumerate(command) if isinstance(arg, str) and arg == "--")
    return command[dashes + 1 :]


def fmt(value: Any) -> Any:
    return value.fmtstring if isinstance(value, util.Interpolate) else value


# ---------------------------------------------------------------- update-modules


def test_upgrade_script_gets_its_log_file_option(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = update-modules\nupgrade.script = bin/upgrade_openerp\n",
    )
    step = found["update_modules"]
    assert wrapped(step) == ["bin/upgrade_openerp", "--log-file", "upgrade.log"]
    assert step.logfiles["upgrade_log"] == "upgrade.log"


def test_log_file_option_can_be_renamed_or_dropped(tmp_path: Path) -> None:
    base = "post-buildout-steps = update-modules\nupgrade.script = bin/up\n"
    renamed = rendered(tmp_path / "a", base + "update.log_file_option = --logfile\n")
    assert wrapped(renamed["update_modules"]) == ["bin/up", "--logfile", "upgrade.log"]
    dropped = rendered(tmp_path / "b", base + "update.log_file_option =\n")
    assert wrapped(dropped["update_modules"]) == ["bin/up"]
    assert "upgrade_log" not in dropped["update_modules"].logfiles


def test_without_upgrade_script_the_start_script_updates(tmp_path: Path) -> None:
    found = rendered(tmp_path, "post-buildout-steps = update-modules\nodoo-addons = sale\n")
    command = wrapped(found["update_modules"])
    assert command[:3] == ["bin/start_openerp", "-u", "sale"]
    assert not any(isinstance(arg, str) and arg == "--log-file" for arg in command)


# ---------------------------------------------------------------- nose


def test_nose_profilers(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = nose\nnose.tests = tests\nnose.profile = true\n"
        "nose.cprofile = true\nnose.profile-restrict = mymodule\n",
    )
    assert found["nose"].command == [
        "bin/nosetests",
        "-v",
        "tests",
        "--with-profile",
        "--with-cprofile",
        "--profile-restrict=mymodule",
    ]
    assert "upload_nose_coverage" not in found


def test_nose_coverage_report_is_uploaded_and_linked(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = nose\nnose.upload-path = /srv/cover/%(prop:buildername)s\n"
        "nose.upload-url = https://ci.example.com/cover\n",
    )
    assert found["nose"].command == [
        "bin/nosetests",
        "-v",
        "--with-coverage",
        "--cover-erase",
        "--cover-branches",
        "--cover-html",
        "--cover-html-dir=nose-cover",
    ]
    upload = found["upload_nose_coverage"]
    assert isinstance(upload, steps.DirectoryUpload)
    assert upload.workersrc == "nose-cover"
    assert fmt(upload.masterdest) == "/srv/cover/%(prop:buildername)s"
    assert upload.url == "https://ci.example.com/cover"


# ---------------------------------------------------------------- doc


def test_sphinx_mode_and_build_folder(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = doc\ndoc.sphinx-mode = full\ndoc.sphinx-builddir = _build/html\n"
        "doc.upload-dir = docs\n",
    )
    assert found["doc"].command == [
        "bin/sphinx-build",
        "-E",
        "-a",
        "-b",
        "html",
        "doc",
        "_build/html",
    ]
    assert found["upload_doc"].workersrc == "_build/html"


def test_incremental_sphinx_by_default(tmp_path: Path) -> None:
    found = rendered(tmp_path, "post-buildout-steps = doc\n")
    assert found["doc"].command == ["bin/sphinx-build", "-b", "html", "doc", "doc-html"]
    assert "upload_doc" not in found


def test_doc_upload_root_version_and_link(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = doc\ndoc.upload-root = /srv/www\ndoc.upload-dir = erp\n"
        "doc.version = 17.0\ndoc.base-url = https://docs.example.com/erp\n",
    )
    upload = found["upload_doc"]
    assert fmt(upload.masterdest) == "/srv/www/erp/17.0"
    assert fmt(upload.url) == "https://docs.example.com/erp/17.0"


def test_absolute_doc_upload_dir_ignores_the_root(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = doc\ndoc.upload-root = /srv/www\ndoc.upload-dir = /elsewhere\n",
    )
    assert fmt(found["upload_doc"].masterdest) == "/elsewhere"
    assert found["upload_doc"].url is None


def test_sphinx_mode_is_validated(tmp_path: Path) -> None:
    from anybox_ci.core.loader import check

    root = tmp_path.resolve()
    (root / "buildouts").mkdir()
    (root / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = standalone b.cfg\ndoc.sphinx-mode = fast\n"
    )
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.cfg").write_text(WORKERS)
    assert [str(d) for d in check(root).diagnostics.errors] == [
        f"{root}/buildouts/MANIFEST.cfg:3: [erp] doc.sphinx-mode: expected one of "
        "incremental, full, got 'fast'"
    ]


# ---------------------------------------------------------------- static analysis, packaging


def test_static_analysis_part_is_installed_first(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = static-analysis\nstatic-analysis.part = tools\n"
        "static-analysis.flake-directories = src\n",
    )
    names = list(found)
    assert names.index("install_static_analysis") < names.index("static_analysis")
    install = found["install_static_analysis"].command
    assert install[-2:] == ["install", "tools"]
    assert install[:3] == found["buildout"].command[:3]  # the pipeline's own bin/buildout
    assert found["static_analysis"].command == ["bin/flake8", "--max-line-length=79", "src"]


def test_static_analysis_without_part_installs_nothing(tmp_path: Path) -> None:
    found = rendered(tmp_path, "post-buildout-steps = static-analysis\n")
    assert "install_static_analysis" not in found
    assert found["static_analysis"].command == ["bin/flake8"]


def test_packaging_upload_is_linked(tmp_path: Path) -> None:
    found = rendered(
        tmp_path,
        "post-buildout-steps = packaging\npackaging.upload-dir = /srv/releases\n"
        "packaging.base-url = https://dl.example.com/releases/\n",
    )
    upload = found["upload_package"]
    assert fmt(upload.masterdest) == "/srv/releases/%(kw:a)s"
    assert fmt(upload.url) == "https://dl.example.com/releases/%(kw:a)s"


# ---------------------------------------------------------------- install-modules-test


def test_odoo_test_tags_select_the_tests(tmp_path: Path) -> None:
    found = rendered(tmp_path, "odoo.test-tags = /anybox_ci_sample:TestSample\n")
    command = wrapped(found["install_modules_test"])
    assert command[-1] == "--test-tags=/anybox_ci_sample:TestSample"
    plain = rendered(tmp_path / "plain", "")
    assert not [a for a in wrapped(plain["install_modules_test"]) if "--test-tags" in str(a)]
