"""``db-steps = restore``: the manifest's dump options become the restore script's argv.

Rendered through the configurator from a manifest; build_utils/restore.py itself is tested
on real PostgreSQL in test_build_utils_restore.py, and test_live_releases.py restores a real
Odoo dump in real builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildbot.plugins import util
from buildbot.process.properties import Properties
from twisted.internet import defer

from anybox_ci.core.diagnostics import Diagnostics
from anybox_ci.core.manifest import load_manifests
from anybox_ci.render.steps_db import AUTH_ENV, SecretEnv
from tests.test_release_steps import by_name

GIT = "buildout = git https://example.com/erp.git main buildout.cfg\n"
RESTORE = GIT + "db-steps = restore\n"


def argv(step: Any) -> list[Any]:
    """The restore script's arguments, Interpolate templates shown as their text."""
    command = step.command
    at = next(i for i, a in enumerate(command) if isinstance(a, str) and a == "restore")
    out: list[Any] = []
    for arg in command[at + 1 :]:
        if isinstance(arg, util.Interpolate):
            text = arg.fmtstring
            for key, value in arg.kwargs.items():
                shown = value.fmtstring if isinstance(value, util.Interpolate) else value
                text = text.replace(f"%(kw:{key})s", str(shown))
            out.append(text)
        else:
            out.append(arg)
    return out


def errors(tmp_path: Path, text: str) -> list[str]:
    manifest = tmp_path / "MANIFEST.cfg"
    manifest.write_text("[erp]\n" + text)
    diags = Diagnostics()
    load_manifests([manifest], diags)
    return [str(d) for d in diags.errors]


def test_a_worker_dump_is_restored_cached_and_neutralised_by_odoo(tmp_path: Path) -> None:
    found = by_name(tmp_path, RESTORE + "restore.dump = /srv/dumps/prod.dump\n")
    step = found["restore_db"]
    assert argv(step) == [
        "--name=%(prop:testing_db)s",
        "--dump=/srv/dumps/prod.dump",
        "--",
        "bin/start_openerp",
        "neutralize",
        "-d",
        "{db}",
    ]
    # after the buildout (the start script neutralises), in the buildout folder
    names = list(found)
    assert names.index("buildout") < names.index("restore_db")
    assert step.workdir == "build"
    assert "create_db" not in found  # the restore makes the database


def test_restore_options_reach_the_script(tmp_path: Path) -> None:
    sha = "ab" * 32
    found = by_name(
        tmp_path,
        RESTORE + "restore.url = https://backups.example.com/prod.tar.gz\n"
        f"restore.sha256 = {sha.upper()}\nrestore.spare = true\nrestore.neutralize = sql\n"
        "restore.member = erp.dump\nrestore.map =\n    dms = ./dms.sql.gz\n",
    )
    assert argv(found["restore_db"]) == [
        "--map=%(prop:testing_db)s=erp.dump",
        "--map=%(prop:testing_db)s_dms=dms.sql.gz",
        "--url=https://backups.example.com/prod.tar.gz",
        f"--sha256={sha}",
        "--spare",
    ]
    # the extra database is dropped with the test database
    drop = found["drop_db_1"]
    assert drop.command[-1].fmtstring == "%(prop:testing_db)s_dms"
    assert drop.alwaysRun


def test_no_cache_no_neutralisation_and_a_custom_start_command(tmp_path: Path) -> None:
    found = by_name(
        tmp_path,
        RESTORE + "restore.dump = d.sql\nrestore.cache = false\nrestore.spare = true\n"
        "restore.neutralize = none\n",
    )
    assert argv(found["restore_db"])[2:] == ["--no-cache", "--no-neutralize"]
    found = by_name(
        tmp_path / "2",
        RESTORE + "restore.dump = d.sql\nstart-command = bin/odoo -c etc/odoo.cfg\n",
    )
    # the subcommand first, the start command's options after it
    assert argv(found["restore_db"])[2:] == [
        "--",
        "bin/odoo",
        "neutralize",
        "-c",
        "etc/odoo.cfg",
        "-d",
        "{db}",
    ]


def test_the_url_credentials_come_from_a_secret_never_in_argv_nor_logged(
    tmp_path: Path,
) -> None:
    found = by_name(
        tmp_path,
        RESTORE + "restore.url = https://backups.example.com/prod.dump\n"
        "restore.auth-secret = prod-dumps\n",
    )
    step = found["restore_db"]
    assert f"--auth-env={AUTH_ENV}" in argv(step)
    assert not any("prod-dumps" in str(a) for a in argv(step))
    assert isinstance(step.env, SecretEnv) and step.env.secret == "prod-dumps"
    assert step.logEnviron is False  # the worker would log the environment


def test_the_secret_env_renders_the_secret_into_its_variable_only() -> None:
    rendered: list[Any] = []

    class Props(Properties):
        def render(self, value: Any) -> Any:
            rendered.append(value)
            if isinstance(value, util.Secret):
                return defer.succeed("user:pw")
            return super().render(value)

    env = SecretEnv({"PGPORT": "5433"}, AUTH_ENV, "prod-dumps")
    got: list[Any] = []
    env.getRenderingFor(Props()).addCallback(got.append)  # fires at once: nothing waits
    (result,) = got
    assert result == {"PGPORT": "5433", AUTH_ENV: "user:pw"}
    secrets = [v for v in rendered if isinstance(v, util.Secret)]
    assert [s.secret_name for s in secrets] == ["prod-dumps"]


def test_without_a_dump_the_restore_command_is_kept(tmp_path: Path) -> None:
    found = by_name(tmp_path, RESTORE + "db-restore-command = bin/fill --fast\n")
    command = found["restore_db"].command
    assert command[2:6] == ["pgdb", "restore", "--name", command[5]]
    assert command[6:] == ["--", "bin/fill", "--fast"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            "",
            "needs a value for 'restore.dump', 'restore.master-dump', 'restore.url' or "
            "'db-restore-command'",
        ),
        ("restore.url = https://u:p@example.com/d.dump\n", "credentials do not belong"),
        ("restore.url = ftp://example.com/d.dump\n", "expected an http(s):// or file://"),
        ("restore.dump = d\nrestore.sha256 = 12\n", "64 hexadecimal digits"),
        ("restore.dump = d\nrestore.map = dms\n", "expected NAME = MEMBER"),
        ("restore.dump = d\nrestore.map = DMS = x\n", "lower-case letters"),
        ("restore.dump = d\nrestore.auth-secret = -x\n", "a Buildbot secret name"),
        ("restore.dump = d\nrestore.neutralize = maybe\n", "expected one of odoo, sql, none"),
    ],
)
def test_bad_restore_options_are_reported_by_check(
    tmp_path: Path, options: str, message: str
) -> None:
    found = errors(tmp_path, RESTORE + options)
    assert any(message in m for m in found), found


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("restore.dump = a\nrestore.url = https://x/d\n", "two sources: give one"),
        ("restore.dump = a\nrestore.auth-secret = s\n", "restore.auth-secret goes with"),
        ("restore.dump = a\nrestore.map = dms = x\n", "restore.map needs restore.member"),
    ],
)
def test_inconsistent_restore_options_refuse_to_render(
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


def test_the_guide_s_complete_example_is_a_valid_manifest(tmp_path: Path) -> None:
    guide = Path(__file__).resolve().parent.parent / "docs" / "releases.md"
    text = guide.read_text(encoding="utf-8")
    example = text.split("```ini\n", 1)[1].split("```", 1)[0]
    manifest = tmp_path / "MANIFEST.cfg"
    manifest.write_text(example)
    diags = Diagnostics()
    buildouts = load_manifests([manifest], diags)
    assert not diags.errors, [str(d) for d in diags.errors]
    assert {b.name for b in buildouts} == {"erp", "erp-prod", "erp-upgrade"}
    # and it renders: the restore, the upgrade test and the packaging steps are there
    config = configure_manifest(tmp_path / "master", example)
    for name, step in (
        ("erp-prod", "restore_db"),
        ("erp-prod", "upgrade_test"),
        ("erp-upgrade", "upgrade_install_release"),
        ("erp", "upload_package"),
    ):
        builders = [b for b in config["builders"] if b.name.startswith(name + "-pg")]
        assert builders, name
        names = {str(s.buildStep().name) for s in builders[0].factory.steps}
        assert step in names, (name, step)


def configure_manifest(root: Path, manifest: str) -> dict[str, Any]:
    from anybox_ci.configurator import AnyboxConfigurator

    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "workers.cfg").write_text(
        "[w1]\npassword = secret:w1\ncapability =\n    postgresql 13\n    postgresql 15\n"
    )
    config: dict[str, Any] = {}
    AnyboxConfigurator(root).configure(config)
    return config
