"""D5: build output never chooses where an upload writes on the master.

A step printing ``got_revision=/../../X`` used to override the property, and the packaging
upload put it in its destination path: the tarball landed outside ``packaging.upload-dir``.
Now only the steps that fetch (``got_revision``) or bootstrap (``buildout_bin``) export
properties from their output, and only plain tokens; the tarball's name is the buildout's
name and a version that must be a plain token (else ``build<N>``); and every upload step
checks, once its destination is rendered, that the resolved path is inside its folder.

These run the real steps (Buildbot's ``TestBuildStepMixin``): the real packaging upload
step of a generated factory writes through Buildbot's real ``FileWriter`` into a real
folder, and nothing is written outside it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from buildbot.process import remotetransfer
from buildbot.process.results import FAILURE, SUCCESS
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectRemoteRef, ExpectShell, ExpectUploadFile, TestBuildStepMixin
from twisted.trial import unittest

from anybox_ci.configurator import AnyboxConfigurator
from anybox_ci.render.buildsteps import UtilStep
from anybox_ci.render.steps_generic import ArchiveName, ConfinedFileUpload, outside

HOSTILE = ["/../../X", "../../../etc/cron.d/x", "a/../../b", "..", "x y", ""]


def _configured(root: Path, upload_dir: Path) -> dict[str, Any]:
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "buildouts" / "MANIFEST.cfg").write_text(
        "[erp]\nbuildout = git https://e.com/erp.git main b.cfg\nbuild-for = postgresql 15\n"
        f"post-buildout-steps =\n    test-command\n    packaging\ntest-command = bin/test\n"
        f"packaging.upload-dir = {upload_dir}\n"
    )
    (root / "workers.cfg").write_text(
        "[w]\npassword = secret:worker-w\ncapability = postgresql 15\n"
    )
    config: dict[str, Any] = {}
    AnyboxConfigurator(root).configure(config)
    return config


def _step(config: dict[str, Any], name: str) -> Any:
    (builder,) = config["builders"]
    return next(s for s in builder.factory.steps if s.kwargs.get("name") == name).buildStep()


class OutputNeverSetsProperties(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    def setUp(self) -> Any:
        self.setup_test_reactor()
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        return self.setup_test_build_step()

    def test_a_manifest_command_printing_got_revision_sets_nothing(self) -> Any:
        step = _step(_configured(self.tmp / "m", self.tmp / "up"), "test")
        self.setup_step(step)
        self.build.setProperty("got_revision", "a" * 40, "fetch_buildout")
        self.expect_commands(
            ExpectShell(workdir="build", command=["bin/test"], env=self._env_of(step), timeout=3600)
            .stdout("got_revision=/../../X\nbuildout=/tmp/evil\n")
            .exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        self.expect_property("got_revision", "a" * 40, "fetch_buildout")
        self.expect_no_property("buildout_bin")
        return self.run_step()

    def _env_of(self, step: Any) -> Any:
        # the step's env renders to None-valued secrets only here (no worker offers)
        return {"ANYBOX_CI_HOOK_SECRET": None, "ANYBOX_CI_DB": "", "PGDATABASE": ""}

    def test_a_fetch_step_exports_only_a_plain_revision(self) -> Any:
        self.setup_step(
            UtilStep(name="fetch_buildout", command=["fetch"], exports=("got_revision",))
        )
        self.expect_commands(
            ExpectShell(workdir="wkdir", command=["fetch"])
            .stdout("got_revision=/../../X\n")
            .exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        self.expect_no_property("got_revision")
        return self.run_step()


class UploadStaysInItsFolder(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    def setUp(self) -> Any:
        self.setup_test_reactor()
        self.tmp = Path(tempfile.mkdtemp()).resolve()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.upload_dir = self.tmp / "srv" / "releases"
        self.upload_dir.mkdir(parents=True)
        return self.setup_test_build_step()

    def _upload(self, got_revision: Any) -> Any:
        step = _step(_configured(self.tmp / "m", self.upload_dir), "upload_package")
        self.setup_step(step)
        self.build.setProperty("got_revision", got_revision, "output")
        self.build.setProperty("buildnumber", 7, "Build")
        self.expect_commands(
            ExpectUploadFile(
                workersrc="anybox-ci-package.tar.gz",
                workdir=".",
                blocksize=262144,
                maxsize=None,
                keepstamp=False,
                writer=ExpectRemoteRef(remotetransfer.FileWriter),
            )
            .upload_string("tarball")
            .exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def _written(self) -> list[Path]:
        return sorted(p for p in self.tmp.rglob("*") if p.is_file() and p.suffix == ".gz")

    def test_hostile_got_revision_uploads_inside_the_folder(self) -> Any:
        d = self._upload("/../../X")
        d.addCallback(
            lambda _: self.assertEqual(self._written(), [self.upload_dir / "erp-build7.tar.gz"])
        )
        return d

    def test_a_plain_revision_names_the_tarball(self) -> Any:
        d = self._upload("0123abc")
        d.addCallback(
            lambda _: self.assertEqual(self._written(), [self.upload_dir / "erp-0123abc.tar.gz"])
        )
        return d

    def test_a_destination_outside_the_folder_is_refused_before_any_transfer(self) -> Any:
        outside_dir = self.tmp / "elsewhere"
        outside_dir.mkdir()
        # a link in the upload folder pointing out of it: the resolved path is outside
        (self.upload_dir / "erp-build7.tar.gz").symlink_to(outside_dir / "x.tar.gz")
        self.setup_step(
            ConfinedFileUpload(
                root=str(self.upload_dir),
                workersrc="../erp.tar.gz",
                masterdest=str(self.upload_dir / "erp-build7.tar.gz"),
            )
        )
        self.expect_commands()  # no transfer at all
        self.expect_outcome(result=FAILURE)
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(list(outside_dir.iterdir()), []))
        return d


def test_archive_names_never_hold_a_path() -> None:
    from buildbot.process.properties import Properties

    name = ArchiveName("erp", "erp-1234abcd")
    for value in [*HOSTILE, {"erp-1234abcd": "../x"}, {"other": "abc"}, None, 12]:
        props = Properties(got_revision=value, buildnumber=3)
        assert name.getRenderingFor(props) == "erp-build3.tar.gz", value
    props = Properties(got_revision={"erp-1234abcd": "f" * 40}, buildnumber=3)
    assert name.getRenderingFor(props) == f"erp-{'f' * 40}.tar.gz"


def test_outside_resolves_dots_and_links(tmp_path: Path) -> None:
    root = tmp_path / "up"
    root.mkdir()
    assert outside(str(root), str(root / "a.tar.gz")) is None
    assert outside(str(root), str(root / ".." / "a.tar.gz"))
    assert outside(str(root), str(root))  # a file upload never replaces the folder itself
    assert outside(str(root), str(root), allow_root=True) is None
    assert outside(str(root), str(tmp_path / "upx" / "a"))  # a sibling with the same prefix
