"""D1 and D15: repository URLs never become options, and never show their password.

D1 (critical): a URL such as ``--upload-pack=CMD`` reached the master's GitPoller from a
buildout's own ``buildout.cfg`` (through auto-watch and the reconfig it triggers) or from a
manifest line, and ``git ls-remote`` ran CMD on the master. Every URL now passes
``core.vcs.check_url`` where it is read (manifest lines, the discovery file), pollers are
never made for a URL failing it, and worker fetches refuse it too. The live test runs the
real chain: a real master polling with real GitPollers, a real auto-watch build of a
buildout naming a hostile mr.developer source, the discovery file as a build writes it, a
real reconfig. The payload is a script that creates a marker file: it must never exist.

D15 (low): ``watch = git https://user:pw@host/repo main`` showed the password in
``/api/v2/forceschedulers``; labels, fixed fields and poller names now show
``core.vcs.redact_url``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from buildbot.plugins import changes

from anybox_ci import cli
from anybox_ci.core.model import Watch
from anybox_ci.core.vcs import check_url, codebase_name, redact_url, url_error
from anybox_ci.devtools.localmaster import Master, WorkerProcess, git, make_sample_repo, offer_line
from anybox_ci.render.changes import force_scheduler, pollers

# ---------------------------------------------------------------- the one URL rule

OPTION_LIKE = ["--upload-pack=touch /tmp/x", "-u/tmp/evil.sh", "--config=core.sshCommand=x", "-"]


@pytest.mark.parametrize("url", OPTION_LIKE)
def test_option_like_urls_fail_the_one_rule(url: str) -> None:
    assert check_url(url)
    assert url_error(url) is not None and url_error(url).startswith("invalid URL")  # type: ignore[union-attr]


def test_redact_url_masks_only_the_password() -> None:
    assert redact_url("https://user:pw@host/repo.git") == "https://user:***@host/repo.git"
    assert redact_url("https://host/repo.git") == "https://host/repo.git"
    assert redact_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git"
    # the message about a bad URL never shows its password either
    assert "s3cret" not in (url_error("https://u:s3cret@h/r x") or "")


def test_has_password_tells_urls_that_would_store_one() -> None:
    from anybox_ci.core.vcs import has_password

    assert has_password("https://user:pw@host/repo.git")
    assert not has_password("https://host/repo.git")
    assert not has_password("ssh://git@host/repo.git")


def test_codebase_names_never_carry_credentials() -> None:
    name = codebase_name("https://user:s3cret@forge.example.com", "main")
    assert "s3cret" not in name and "user" not in name


# ---------------------------------------------------------------- anybox-ci check: the corpus


def _master(root: Path, manifest: str) -> Path:
    (root / "buildouts").mkdir(parents=True)
    (root / "buildouts" / "MANIFEST.cfg").write_text(manifest)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\nparts =\n")
    (root / "workers.cfg").write_text("[w1]\npassword = secret:worker-w1\ncapability = pg 1\n")
    return root


# (manifest line, line number of the error, option) for every VCS and line type
HOSTILE_LINES = [
    ("buildout = git --upload-pack=/tmp/evil.sh main buildout.cfg", 2, "buildout"),
    ("buildout = git -u/tmp/evil.sh main buildout.cfg", 2, "buildout"),
    ("buildout = hg --config=hooks.pre-pull=/tmp/evil.sh default buildout.cfg", 2, "buildout"),
    ("buildout = hg -R/tmp/x default buildout.cfg", 2, "buildout"),
    ("buildout = bzr -Oevil=1 buildout.cfg", 2, "buildout"),
    ("buildout = bzr --directory/tmp buildout.cfg", 2, "buildout"),
    ("buildout = gittag --upload-pack=/tmp/evil.sh release.cfg", 2, "buildout"),
    ("buildout = gittag -u/tmp/evil.sh release.cfg", 2, "buildout"),
    ("buildout = hgtag --config=x=y release.cfg", 2, "buildout"),
    ("buildout = hgtag -R/tmp/x release.cfg", 2, "buildout"),
    ("buildout = archive --output=/etc/passwd release.cfg", 2, "buildout"),
    ("buildout = archive -o/etc/passwd release.cfg", 2, "buildout"),
    ("buildout = standalone b.cfg\nwatch = git --upload-pack=/tmp/evil.sh main", 3, "watch"),
    ("buildout = standalone b.cfg\nwatch = hg --config=hooks.x=y default", 3, "watch"),
    ("buildout = standalone b.cfg\nwatch = bzr -Oevil=1", 3, "watch"),
    (
        "buildout = standalone b.cfg\nwatch =\n    git https://e.com/ok.git main\n"
        "    git --upload-pack=/tmp/evil.sh main",
        5,
        "watch",
    ),
]


@pytest.mark.parametrize("line, number, option", HOSTILE_LINES)
def test_check_refuses_option_like_urls_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, number: int, option: str
) -> None:
    root = _master(tmp_path, f"[erp]\n{line}\npoll = true\n")
    assert cli.main(["check", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    manifest = root / "buildouts" / "MANIFEST.cfg"
    # a word with '=' is a keyword of the line, refused as such; any other is the URL
    why = "" if option == "buildout" and "=" in line.split()[3] else "invalid URL "
    wanted = f"{manifest}:{number}: [erp] {option}: {why}"
    assert [x for x in out if x.startswith(wanted)], out


def test_check_masks_the_password_of_a_bad_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _master(
        tmp_path, "[erp]\nbuildout = standalone b.cfg\nwatch = git https://u:s3cret@h/r\n"
    )
    cli.main(["check", str(root)])
    assert "s3cret" not in capsys.readouterr().out


# ---------------------------------------------------------------- pollers: defence in depth


def test_no_poller_is_ever_made_for_an_option_like_url() -> None:
    hostile = [
        Watch("git", "--upload-pack=/tmp/evil.sh", "main"),
        Watch("hg", "--config=hooks.pre-pull=/tmp/evil.sh", "default"),
        Watch("git", "https://e.com/ok.git", "--upload-pack=/tmp/evil.sh"),
    ]
    made = pollers([*hostile, Watch("git", "https://e.com/ok.git", "main")], 60)
    assert [(type(p), p.name) for p in made] == [(changes.GitPoller, "https://e.com/ok.git")]
    assert made[0]._config_kwargs["branches"] == ["main"]


def test_poller_names_mask_passwords() -> None:
    made = pollers(
        [
            Watch("git", "https://u:s3cret@e.com/a.git", "main"),
            Watch("hg", "https://u:s3cret@e.com/b", "default"),
        ],
        60,
    )
    assert [p.name for p in made] == ["https://u:***@e.com/a.git", "https://u:***@e.com/b_default"]


# ---------------------------------------------------------------- D15: the force form


def _spec_text(scheduler: Any) -> str:
    """What ``/api/v2/forceschedulers`` shows of our fields: the parameters' specs."""
    kwargs = scheduler._config_kwargs
    fields = [*kwargs["codebases"], *kwargs["properties"]]
    return json.dumps([field.getSpec() for field in fields], default=str)


def test_force_form_never_shows_a_url_password() -> None:
    watch = Watch("git", "https://user:s3cret@forge.example.com/erp.git", "main")
    scheduler = force_scheduler(["erp-pg15"], [watch])
    text = _spec_text(scheduler)
    assert "s3cret" not in text
    assert "https://user:***@forge.example.com/erp.git" in text
    # and the build still gets the real repository
    (codebase,) = scheduler._config_kwargs["codebases"]
    repository = next(f for f in codebase.fields if f.name == "repository")
    assert repository.parse_from_args([]) == watch.url


# ---------------------------------------------------------------- D1 live: the whole chain


def _evil_script(root: Path) -> tuple[Path, Path]:
    """A payload that leaves a marker: if it ever runs, the test sees it."""
    marker = root / "PWNED"
    script = root / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    return script, marker


def _log_count(master: Master, text: str) -> int:
    return master.log().count(text)


@pytest.mark.live
def test_hostile_url_from_a_repository_never_runs_on_the_master(
    tmp_path: Path, pg_clusters: dict[int, Any]
) -> None:
    cluster = pg_clusters[max(pg_clusters)]
    script, marker = _evil_script(tmp_path)
    hostile = f"--upload-pack={script}"
    repos = tmp_path / "repos"
    lib = repos / "lib"
    lib.mkdir(parents=True)
    git(lib, "init", "-q", "-b", "main")
    (lib / "lib.py").write_text("VERSION = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib")
    auto = make_sample_repo("passing", repos / "auto-src")
    with (auto / "buildout.cfg").open("a") as cfg:
        # repository content: a floating mr.developer source whose "URL" is an option
        cfg.write(
            f"\n[sources]\nlib = git file://{lib} branch=main\nevil = git {hostile} branch=main\n"
        )
    git(auto, "commit", "-q", "-am", "a hostile source")
    manifest = f"""
[auto]
buildout = git file://{auto} main buildout.cfg
auto-watch = true
build-for = postgresql == {cluster.major}
post-buildout-steps = install-modules-test
odoo-addons = sample
"""
    workers = f"[w1]\npassword = secret:worker-w1\ncapability = {offer_line(cluster)}\n"
    # no change-hook users: the master polls every watched repository (GitPollers)
    master = Master(tmp_path / "master")
    master.create(manifest, workers, secrets={"worker-w1": "w1-pw-1234"})
    worker = WorkerProcess(tmp_path / "w1", "w1", "w1-pw-1234", master.pb_port)
    pollers_dir = master.basedir / "pollers"
    own_poller = pollers_dir / f"git-{codebase_name(f'file://{auto}', '')}"
    try:
        master.start()
        worker.start()
        master.wait(lambda: master.connected_workers() == {"w1"}, 60, "worker")
        master.wait(own_poller.exists, 60, "the first poll of the buildout's repository")
        builder = f"auto-pg{cluster.major}"

        # 1. a real auto-watch build of the hostile buildout
        master.wait_buildsets([master.force(builder)], 300)
        build = master.builds(builder)[-1]
        assert build["results"] in (0, 1), build["state_string"]
        watches_log = master.step_log(build["buildid"], "update_watches", "watches")
        assert "upload-pack" in watches_log  # the hostile source is reported, not adopted
        assert not marker.exists()

        # 2. the discovery file exactly as a build writes it, then a real reconfig
        dump = {
            "sources": [
                {"vcs": "git", "url": f"file://{lib}", "branch": "main", "pin": None},
                {"vcs": "git", "url": hostile, "branch": "main", "pin": None},
            ],
            "errors": [],
        }
        (master.basedir / "anybox-ci" / "watch" / "auto.json").write_text(json.dumps(dump))
        done = _log_count(master, "configuration update complete")
        master.reconfig()
        master.wait(
            lambda: _log_count(master, "configuration update complete") > done, 60, "reconfig"
        )
        # every poller made by the reconfig polls at once (plus a jitter of at most 6 s)
        time.sleep(10)
        names = [s["name"] for s in master.get("changesources")["changesources"]]
        assert names and not [n for n in names if "upload-pack" in n], names
        assert not [p for p in pollers_dir.iterdir() if "upload" in p.name]
        warned = [
            line
            for line in master.log().splitlines()
            if "anybox-ci" in line and "upload-pack" in line
        ]
        assert warned, "the hostile discovered source must be warned about"

        # 3. the same URL in a manifest watch line with poll = true: refused with FILE:LINE
        manifest_path = master.basedir / "buildouts" / "MANIFEST.cfg"
        manifest_path.write_text(manifest + f"watch = git {hostile} main\npoll = true\n")
        refused = _log_count(master, "invalid URL")
        master.reconfig(check=False)
        master.wait(lambda: _log_count(master, "invalid URL") > refused, 60, "refused reconfig")
        line_no = manifest.count("\n") + 1
        assert f"{manifest_path}:{line_no}: [auto] watch: invalid URL" in master.log()
        time.sleep(8)
        assert not marker.exists()
        assert master.connected_workers() == {"w1"}  # the running configuration stays
    finally:
        worker.stop()
        master.stop()
    assert not marker.exists()


def test_discovered_pins_never_become_buildout_options() -> None:
    """A pin's names come from the discovery file (repository content): a section or name
    that ``bin/buildout`` would read as an option is dropped, never put on its command line."""
    from anybox_ci.core.discovered import Pin
    from anybox_ci.render.autowatch import BuildoutCommand, safe_pin

    good = Pin("developer", "sources", name="lib", line="git https://e.com/lib.git branch=main")
    assert safe_pin(good)
    assert safe_pin(Pin("recipe", "openerp", target="addons-oca"))
    for hostile in (
        Pin("developer", "-cevil.cfg", name="lib", line="git x"),
        Pin("developer", "sources", name="--option", line="git x"),
        Pin("developer", "sources", name="lib", line="git x\nother"),
        Pin("recipe", "openerp", target="-x"),
        Pin("recipe", "open erp", target="x"),
    ):
        assert not safe_pin(hostile), hostile
    command = BuildoutCommand(["bin/buildout"], {"a": good, "b": Pin("developer", "-c", "x")})
    assert list(command.pins) == ["a"]
