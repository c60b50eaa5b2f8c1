"""``restore.master-dump``: a dump on the master, checked, hashed and sent to each cell.

The manifest's path is refused by ``check`` when it is absolute or climbs out with ``..``;
on the master, the step resolves links and refuses what leads out of ``restore.master-dir``
(Buildbot's ``TestBuildStepMixin`` runs the real step, with its real ``FileReader``).
test_live_restore_master_dump.py restores such a dump in real builds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from buildbot.process import remotetransfer
from buildbot.process.results import FAILURE, SUCCESS
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectDownloadFile, ExpectRemoteRef, TestBuildStepMixin
from twisted.trial import unittest

from anybox_ci.render.master_dump import (
    MASTER_DUMP_FILE,
    SHA256_PROPERTY,
    MasterDumpDownload,
    MasterDumpError,
    locate,
)
from tests.test_release_steps import by_name
from tests.test_restore_step import RESTORE, argv, errors


def test_a_master_dump_is_downloaded_then_restored_with_the_master_s_checksum(
    tmp_path: Path,
) -> None:
    found = by_name(tmp_path, RESTORE + "restore.master-dump = ./erp//prod.sql.gz\n")
    names = list(found)
    assert names.index("buildout") < names.index("download_master_dump")
    assert names.index("download_master_dump") + 1 == names.index("restore_db")
    download = found["download_master_dump"]
    assert isinstance(download, MasterDumpDownload)
    assert (download.root, download.relpath) == ("dumps", "erp/prod.sql.gz")
    assert download.workerdest == MASTER_DUMP_FILE and download.workdir == "."
    assert download.haltOnFailure
    assert argv(found["restore_db"])[:5] == [
        "--name=%(prop:testing_db)s",
        f"--dump=%(prop:builddir)s/{MASTER_DUMP_FILE}",
        "--delete-dump",
        # one template per server for every cell of the dump, whatever the builder
        "--cache-key=master:dumps/erp/prod.sql.gz",
        f"--sha256=%(prop:{SHA256_PROPERTY})s",
    ]


def test_the_master_folder_and_an_expected_checksum_are_the_manifest_s(tmp_path: Path) -> None:
    sha = "cd" * 32
    found = by_name(
        tmp_path,
        RESTORE + "restore.master-dump = prod.dump\nrestore.master-dir = /srv/backups/\n"
        f"restore.sha256 = {sha}\n",
    )
    download = found["download_master_dump"]
    assert (download.root, download.expected) == ("/srv/backups/", sha)
    assert "--cache-key=master:/srv/backups/prod.dump" in argv(found["restore_db"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/etc/passwd", "not an absolute one"),
        ("~/prod.dump", "not an absolute one"),
        ("../secrets/w1", "'..' may not leave restore.master-dir"),
        ("erp/../../x", "'..' may not leave restore.master-dir"),
        ("./", "expected a file name inside restore.master-dir"),
        ("a\\..\\b", "backslashes"),
    ],
)
def test_a_path_leaving_the_master_folder_is_refused_by_check(
    tmp_path: Path, value: str, message: str
) -> None:
    found = errors(tmp_path, RESTORE + f"restore.master-dump = {value}\n")
    assert len(found) == 1, found
    assert "MANIFEST.cfg:4: [erp] restore.master-dump: " in found[0] and message in found[0], found


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            "restore.dump = a\nrestore.master-dump = b\n",
            "restore.dump and restore.master-dump are two sources: give one",
        ),
        (
            "restore.master-dump = a\nrestore.url = https://x/d\n",
            "restore.master-dump and restore.url are two sources: give one",
        ),
        ("restore.master-dump = a\nrestore.auth-secret = s\n", "restore.auth-secret goes with"),
    ],
)
def test_inconsistent_master_dump_options_refuse_to_render(
    tmp_path: Path, options: str, message: str
) -> None:
    from buildbot.config.errors import ConfigErrors
    from buildbot.config.master import MasterConfig

    from anybox_ci.configurator import AnyboxConfigurator
    from tests.test_render import base_config, make_master

    root = make_master(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\ndb-steps = restore\n" + options
    )
    with pytest.raises(ConfigErrors) as info:
        MasterConfig.loadFromDict(base_config(AnyboxConfigurator(root)), "master.cfg")
    assert message in str(info.value.errors)


def test_locate_follows_links_and_refuses_what_leads_out(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    (root / "erp").mkdir(parents=True)
    (root / "erp" / "prod.sql").write_text("select 1;\n")
    (tmp_path / "secret").write_text("x")
    (root / "inside").symlink_to(root / "erp" / "prod.sql")
    (root / "escape").symlink_to(tmp_path / "secret")
    (root / "erp" / "up").symlink_to(tmp_path)
    real = str(root / "erp" / "prod.sql")
    assert locate(str(root), "erp/prod.sql") == real
    assert locate(str(root), "inside") == real
    for hostile in ("escape", "erp/up/secret", "../secret", str(tmp_path / "secret")):
        with pytest.raises(MasterDumpError, match="is outside restore.master-dir"):
            locate(str(root), hostile)
    with pytest.raises(MasterDumpError, match=f"master dump not found: {root}/erp/nope"):
        locate(str(root), "erp/nope")
    with pytest.raises(MasterDumpError, match="not a regular file"):
        locate(str(root), "erp")


class MasterDumpStep(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    """The real step: Buildbot's FileDownload reads the checked file on the master."""

    def setUp(self) -> Any:
        self.setup_test_reactor()
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.root = self.tmp / "dumps"
        self.root.mkdir()
        self.data = b"create table t (x int);\n"
        (self.root / "prod.sql").write_bytes(self.data)
        os.symlink(self.tmp / "outside.sql", self.root / "link.sql")
        (self.tmp / "outside.sql").write_bytes(b"secret")
        return self.setup_test_build_step()

    def test_the_dump_is_hashed_on_the_master_and_sent(self) -> Any:
        sent: list[bytes] = []
        self.setup_step(MasterDumpDownload(str(self.root), "prod.sql"))
        self.expect_commands(
            ExpectDownloadFile(
                blocksize=256 * 1024,
                maxsize=None,
                workerdest=MASTER_DUMP_FILE,
                workdir=".",
                reader=ExpectRemoteRef(remotetransfer.FileReader),
                mode=None,
            )
            .download_string(sent.append, size=len(self.data))
            .exit(0)
        )
        sha = hashlib.sha256(self.data).hexdigest()
        self.expect_outcome(result=SUCCESS, state_string=f"prod.sql sha256 {sha[:12]}")
        self.expect_property(SHA256_PROPERTY, sha, "download_master_dump")
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(sent, [self.data]))
        return d

    def test_a_missing_dump_fails_with_one_line(self) -> Any:
        self.setup_step(MasterDumpDownload(str(self.root), "gone.sql"))
        self.expect_outcome(
            result=FAILURE, state_string=f"master dump not found: {self.root}/gone.sql (failure)"
        )
        self.expect_no_property(SHA256_PROPERTY)
        return self.run_step()

    def test_a_link_out_of_the_folder_sends_nothing(self) -> Any:
        self.setup_step(MasterDumpDownload(str(self.root), "link.sql"))
        self.expect_outcome(result=FAILURE)
        self.expect_log_file(
            "refused", f"master dump '{self.root}/link.sql' is outside restore.master-dir\n"
        )
        return self.run_step()

    def test_a_dump_that_is_not_the_expected_one_is_not_sent(self) -> Any:
        self.setup_step(MasterDumpDownload(str(self.root), "prod.sql", "00" * 32))
        self.expect_outcome(result=FAILURE)
        self.expect_no_property(SHA256_PROPERTY)
        return self.run_step()
