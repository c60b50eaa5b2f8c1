"""The model layer: manifests and workers files read into typed, frozen objects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from anybox_ci.core import schema
from anybox_ci.core.diagnostics import Diagnostics
from anybox_ci.core.lines import parse_offer, parse_source, parse_watch
from anybox_ci.core.manifest import load_manifests
from anybox_ci.core.model import Buildout, BuildoutSource, Offer, Password, Watch, WorkerDef
from anybox_ci.core.vcs import branch_error, check_branch
from anybox_ci.core.versions import Version, VersionFilter
from anybox_ci.core.workers import load_workers


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def manifests(tmp_path: Path, *texts: str) -> tuple[dict[str, Buildout], Diagnostics]:
    """Load manifests ``m0.cfg``, ``m1.cfg``... beside a ``b.cfg`` buildout file."""
    write(tmp_path / "b.cfg", "[buildout]\n")
    paths = [write(tmp_path / f"m{i}.cfg", text) for i, text in enumerate(texts)]
    diags = Diagnostics()
    loaded = load_manifests(paths, diags)
    return {b.name: b for b in loaded}, diags


def workers(tmp_path: Path, text: str) -> tuple[dict[str, WorkerDef], Diagnostics]:
    diags = Diagnostics()
    loaded = load_workers([write(tmp_path / "workers.cfg", text)], diags)
    return {w.name: w for w in loaded}, diags


# ---------------------------------------------------------------- DEFAULT and inherit


def test_default_section_applies_and_is_overridden(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        """\
[DEFAULT]
buildout = standalone b.cfg
build-category = nightly
tree-stable-timer = 30

[a]

[b]
tree-stable-timer = 5
build-category = odoo
""",
    )
    assert not diags.items
    assert sorted(found) == ["a", "b"]
    assert found["a"].get(schema.TREE_STABLE_TIMER) == 30
    assert found["a"].get(schema.BUILD_CATEGORY) == ("nightly",)
    assert found["b"].get(schema.TREE_STABLE_TIMER) == 5
    assert found["b"].get(schema.BUILD_CATEGORY) == ("odoo",)
    # options nobody set take the schema's default
    assert found["a"].get(schema.DB_STEPS) == ("simple_create",)
    assert found["a"].get(schema.BUILDOUT_PART) == "openerp"


def test_inherit_chain_overrides_in_order(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        """\
[grandparent]
buildout = standalone b.cfg
odoo-addons = base
tree-stable-timer = 1
description = gp

[parent]
inherit = grandparent
odoo-addons = base, sale
tree-stable-timer = 2

[child]
inherit = parent
tree-stable-timer = 3
""",
    )
    assert not diags.items
    assert found["grandparent"].get(schema.ODOO_ADDONS) == ("base",)
    assert found["parent"].get(schema.ODOO_ADDONS) == ("base", "sale")
    assert found["child"].get(schema.ODOO_ADDONS) == ("base", "sale")
    assert [found[n].get(schema.TREE_STABLE_TIMER) for n in ("grandparent", "parent", "child")] == [
        1,
        2,
        3,
    ]
    assert found["child"].get(schema.DESCRIPTION) == "gp"
    # inherit is not an option of the result, and the child is its own section
    assert found["child"].name == "child"
    assert found["child"].line == 12


def test_default_does_not_override_parent_explicit_values(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        """\
[DEFAULT]
tree-stable-timer = 99
build-category = default

[parent]
buildout = standalone b.cfg
tree-stable-timer = 7

[child]
inherit = parent
""",
    )
    assert not diags.items
    assert found["parent"].get(schema.TREE_STABLE_TIMER) == 7
    assert found["child"].get(schema.TREE_STABLE_TIMER) == 7
    # what the parent did not set still comes from DEFAULT
    assert found["child"].get(schema.BUILD_CATEGORY) == ("default",)


def test_inherit_across_manifests_keeps_paths_of_the_writing_manifest(tmp_path: Path) -> None:
    write(tmp_path / "odoo" / "buildout.cfg", "[buildout]\n")
    write(tmp_path / "customers" / "acme.cfg", "[buildout]\n")
    first = write(tmp_path / "MANIFEST.cfg", "[odoo]\nbuildout = standalone odoo/buildout.cfg\n")
    second = write(
        tmp_path / "customers" / "MANIFEST.cfg",
        "[acme]\nbuildout = standalone acme.cfg\n\n[acme-odoo]\ninherit = odoo\n",
    )
    diags = Diagnostics()
    found = {b.name: b for b in load_manifests([first, second], diags)}
    assert not diags.items
    assert found["odoo"].source.path == (tmp_path / "odoo" / "buildout.cfg").resolve()
    assert found["acme"].source.path == (tmp_path / "customers" / "acme.cfg").resolve()
    assert found["acme-odoo"].source.path == found["odoo"].source.path
    assert found["acme"].manifest == str(second)
    assert found["acme-odoo"].manifest == str(second)
    assert found["odoo"].source.file == "buildout.cfg"


def test_each_manifest_has_its_own_default(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        "[DEFAULT]\nbuild-category = one\n\n[a]\nbuildout = standalone b.cfg\n",
        "[DEFAULT]\nbuild-category = two\n\n[b]\nbuildout = standalone b.cfg\n",
    )
    assert not diags.items
    assert found["a"].get(schema.BUILD_CATEGORY) == ("one",)
    assert found["b"].get(schema.BUILD_CATEGORY) == ("two",)


def test_section_without_buildout_is_ignored_with_a_warning(tmp_path: Path) -> None:
    found, diags = manifests(tmp_path, "[base]\nodoo-addons = sale\n")
    assert found == {}
    assert [str(d) for d in diags.items] == [
        f"{tmp_path / 'm0.cfg'}:1: warning: [base] no 'buildout' option: section ignored"
    ]


def test_broken_section_does_not_hide_the_others(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        "[bad]\nbuildout = standalone b.cfg\ncolor = blue\n\n[good]\nbuildout = standalone b.cfg\n",
    )
    assert sorted(found) == ["good"]
    assert [(d.line, d.section, d.option) for d in diags.errors] == [(3, "bad", "color")]


def test_objects_are_frozen(tmp_path: Path) -> None:
    found, _ = manifests(tmp_path, "[a]\nbuildout = standalone b.cfg\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        found["a"].name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        found["a"].options["tree-stable-timer"] = 3  # type: ignore[index]


# ---------------------------------------------------------------- build-for, watch


def test_requirements_are_parsed(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        """\
[a]
buildout = standalone b.cfg
build-for =
    postgresql >= 13 < 16 OR == 9.6
    python 3.11
build-requires =
    wkhtmltopdf
    postgresql != 14
""",
    )
    assert not diags.items
    a = found["a"]
    assert [(r.capability, r.filter) for r in a.build_for] == [
        ("postgresql", VersionFilter.parse(">= 13 < 16 OR == 9.6")),
        ("python", VersionFilter.parse("== 3.11")),
    ]
    assert [str(r) for r in a.build_requires] == ["wkhtmltopdf", "postgresql != 14"]


def test_same_capability_twice_in_build_for_is_an_error(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        "[a]\nbuildout = standalone b.cfg\nbuild-for =\n    postgresql 13\n    postgresql 15\n",
    )
    assert found == {}
    assert [str(d) for d in diags.errors] == [
        f"{tmp_path / 'm0.cfg'}:3: [a] build-for: capability 'postgresql' appears on two lines"
    ]


def test_watch_lines_and_own_repository(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path,
        """\
[a]
buildout = git https://e.com/erp.git main buildout.cfg
watch =
    git https://e.com/addons.git 17.0
    hg https://e.com/hgaddons default
    bzr lp:old-addons
    git https://e.com/erp.git main
""",
    )
    assert not diags.items
    a = found["a"]
    assert a.watches == (
        Watch("git", "https://e.com/addons.git", "17.0"),
        Watch("hg", "https://e.com/hgaddons", "default"),
        Watch("bzr", "lp:old-addons", ""),
        Watch("git", "https://e.com/erp.git", "main"),
    )
    # the buildout's own repository is watched once, whether written or not
    assert a.all_watches == a.watches
    b, _ = manifests(tmp_path, "[b]\nbuildout = hg https://e.com/b main b.cfg\n")
    assert b["b"].all_watches == (Watch("hg", "https://e.com/b", "main"),)
    c, _ = manifests(tmp_path, "[c]\nbuildout = standalone b.cfg\n")
    assert c["c"].all_watches == ()


@pytest.mark.parametrize(
    "line, message",
    [
        ("svn https://e.com/x trunk", "expected 'git URL BRANCH', 'hg URL BRANCH' or 'bzr URL'"),
        ("git https://e.com/x", "expected 2 words after 'git'"),
        ("bzr lp:x trunk", "expected 1 words after 'bzr'"),
        ("git https://e.com/x main~1", "invalid branch name 'main~1'"),
    ],
)
def test_bad_watch_lines(line: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_watch(line)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- buildout source types


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "git https://e.com/erp.git 17.0 buildout.cfg",
            BuildoutSource("git", "buildout.cfg", "https://e.com/erp.git", "17.0"),
        ),
        (
            "git https://e.com/erp.git main prod.cfg subdir=deploy/erp",
            BuildoutSource("git", "prod.cfg", "https://e.com/erp.git", "main", "deploy/erp"),
        ),
        (
            "hg https://e.com/erp default buildout.cfg",
            BuildoutSource("hg", "buildout.cfg", "https://e.com/erp", "default"),
        ),
        (
            "bzr lp:erp buildout.cfg subdir=b",
            BuildoutSource("bzr", "buildout.cfg", "lp:erp", "", "b"),
        ),
        (
            "gittag https://e.com/erp.git rel.cfg",
            BuildoutSource("gittag", "rel.cfg", "https://e.com/erp.git"),
        ),
        (
            "hgtag https://e.com/erp rel.cfg",
            BuildoutSource("hgtag", "rel.cfg", "https://e.com/erp"),
        ),
        (
            "archive https://e.com/%(prop:tarball)s release.cfg",
            BuildoutSource("archive", "release.cfg", "https://e.com/%(prop:tarball)s"),
        ),
    ],
)
def test_source_types(tmp_path: Path, text: str, expected: BuildoutSource) -> None:
    source = parse_source(text, tmp_path)
    assert source == expected
    assert str(source) == text
    if source.type in ("git", "hg", "bzr"):
        assert source.watch == Watch(source.type, source.url, source.branch)
    else:
        assert source.watch is None


def test_standalone_source_is_relative_to_the_manifest(tmp_path: Path) -> None:
    write(tmp_path / "odoo" / "buildout.cfg", "[buildout]\n")
    source = parse_source("standalone odoo/buildout.cfg", tmp_path)
    assert source.type == "standalone"
    assert source.file == "buildout.cfg"
    assert source.path == (tmp_path / "odoo" / "buildout.cfg").resolve()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty value"),
        ("svn https://e.com/x buildout.cfg", "unknown buildout type 'svn'"),
        ("gti https://e.com/x main b.cfg", "(did you mean git?)"),
        ("git https://e.com/x b.cfg", "expected 'git URL BRANCH FILE'"),
        ("bzr lp:x main b.cfg", "expected 'bzr URL FILE'"),
        ("git https://e.com/x main b.cfg depth=1", "unknown keyword 'depth'"),
        ("git https://e.com/x main b.cfg subdir=../up", "subdir must be a relative path"),
        ("git https://e.com/x main b.cfg subdir=/abs", "subdir must be a relative path"),
        ("git https://e.com/x -main b.cfg", "invalid branch name '-main'"),
        ("hg https://e.com/x a..b b.cfg", "invalid branch name 'a..b'"),
        ("standalone missing.cfg", "buildout file 'missing.cfg' not found"),
        ("standalone .", "buildout file '.' not found"),
    ],
)
def test_bad_sources(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_source(text, tmp_path)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "branch", ["main", "17.0", "feature/x-1", "release-2024.1", "v1.2.3", "user_name/topic"]
)
def test_good_branch_names(branch: str) -> None:
    assert check_branch(branch) is None


@pytest.mark.parametrize(
    "branch",
    [
        "",
        "a..b",
        "a b",
        "x~1",
        "x^",
        "a:b",
        "what?",
        "st*r",
        "[x]",
        "back\\slash",
        "a//b",
        "/abs",
        "trail/",
        "-opt",
        "dot.",
        "x.lock",
        "a@{1}",
        "tab\there",
        "nul\x00",
    ],
)
def test_bad_branch_names(branch: str) -> None:
    why = branch_error(branch)
    assert why is not None
    assert "branch name" in why


# ---------------------------------------------------------------- workers


def test_capabilities_with_options(tmp_path: Path) -> None:
    found, diags = workers(
        tmp_path,
        """\
[ci1]
password = secret:worker-ci1
capability =
    postgresql 15 port=5433 host=/var/run/postgresql bin=/usr/lib/postgresql/15/bin
    postgresql 17-devel port=5434
    python 3.11 cmd=python3.11
    wkhtmltopdf
max_builds = 2
priority = 10.5
notify_on_missing = ops@e.com, dev@e.com
build-only-if-requires = wkhtmltopdf
db_prefix = ci1
""",
    )
    assert not diags.items
    w = found["ci1"]
    assert w.offers == (
        Offer(
            "postgresql",
            Version("15"),
            {"port": "5433", "host": "/var/run/postgresql", "bin": "/usr/lib/postgresql/15/bin"},
        ),
        Offer("postgresql", Version("17-devel"), {"port": "5434"}),
        Offer("python", Version("3.11"), {"cmd": "python3.11"}),
        Offer("wkhtmltopdf", None, {}),
    )
    assert [str(o.version) for o in w.offered("postgresql")] == ["15", "17-devel"]
    assert w.max_builds == 2
    assert w.priority == 10.5
    assert w.notify_on_missing == ("ops@e.com", "dev@e.com")
    assert w.build_only_if_requires == ("wkhtmltopdf",)
    assert w.db_prefix == "ci1"
    assert w.password == Password(secret="worker-ci1")
    assert w.properties == {}
    assert (w.path, w.line) == (str(tmp_path / "workers.cfg"), 1)


def test_worker_defaults(tmp_path: Path) -> None:
    found, diags = workers(tmp_path, "[w]\npassword = secret:w\n")
    assert not diags.items
    w = found["w"]
    assert (w.offers, w.max_builds, w.priority, w.db_prefix) == ((), None, 0.0, "anybox")
    assert (w.notify_on_missing, w.build_only_if_requires) == ((), ())


@pytest.mark.parametrize(
    "line, expected",
    [
        ("postgresql", Offer("postgresql", None, {})),
        ("postgresql 9.6", Offer("postgresql", Version("9.6"), {})),
        ("pg-tools port=1", Offer("pg-tools", None, {"port": "1"})),
        ("postgresql 16 lib=/a=b", Offer("postgresql", Version("16"), {"lib": "/a=b"})),
    ],
)
def test_parse_offer(line: str, expected: Offer) -> None:
    assert parse_offer(line) == expected


@pytest.mark.parametrize(
    "line, message",
    [
        ("postgresql fifteen", "invalid version 'fifteen'"),
        ("postgresql 15 port", "expected key=value after the version, got 'port'"),
        ("postgresql 15 =5432", "expected key=value after the version, got '=5432'"),
        ("postgresql 15 port=1 port=2", "key 'port' given twice"),
        ("!pg 15", "invalid capability name '!pg'"),
    ],
)
def test_bad_offers(line: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_offer(line)
    assert message in str(info.value)


def test_unknown_worker_keys_become_properties(tmp_path: Path) -> None:
    found, diags = workers(
        tmp_path,
        "[w]\npassword = secret:w\narch = x86_64\nos_family = debian\nmax-builds = 3\n",
    )
    w = found["w"]
    assert w.properties == {"arch": "x86_64", "os_family": "debian", "max-builds": "3"}
    assert w.max_builds is None
    # a near miss of a real option is kept, but flagged
    assert [str(d) for d in diags.items] == [
        f"{tmp_path / 'workers.cfg'}:5: warning: [w] max-builds: unknown option, kept as a "
        "worker property (did you mean max_builds?)"
    ]


def test_passwords(tmp_path: Path) -> None:
    found, diags = workers(
        tmp_path,
        "[s]\npassword = secret:worker-s\n\n[lit]\npassword = hunter2\n\n[old]\npasswd = pw\n",
    )
    assert found["s"].password == Password(secret="worker-s")
    assert found["lit"].password == Password(literal="hunter2")
    assert found["old"].password == Password(literal="pw")
    assert "hunter2" not in repr(found["lit"])
    path = tmp_path / "workers.cfg"
    assert [str(d) for d in diags.items] == [
        f"{path}:5: warning: [lit] password: password written in clear; prefer 'secret:NAME'",
        f"{path}:8: warning: [old] passwd: deprecated option name, use 'password'",
        f"{path}:8: warning: [old] password: password written in clear; prefer 'secret:NAME'",
    ]


def test_worker_default_section(tmp_path: Path) -> None:
    found, diags = workers(
        tmp_path,
        "[DEFAULT]\npassword = secret:shared\nmax_builds = 1\n\n[a]\n\n[b]\nmax_builds = 4\n",
    )
    assert not diags.items
    assert found["a"].password == found["b"].password == Password(secret="shared")
    assert (found["a"].max_builds, found["b"].max_builds) == (1, 4)


def test_workers_from_several_files_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "workers.cfg", "[a]\npassword = secret:a\n")
    second = write(tmp_path / "workers.d" / "b.cfg", "[b]\npassword = secret:worker-b\n")
    diags = Diagnostics()
    loaded = load_workers([first, second], diags)
    assert [(w.name, w.path) for w in loaded] == [("a", str(first)), ("b", str(second))]
    assert not diags.items


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "bad name",
            "invalid worker name: use letters, digits, '_' and '-', not starting with a digit",
        ),
        (
            "ci.example.com",
            "invalid worker name: use letters, digits, '_' and '-', not starting with a digit",
        ),
        ("1ci", "invalid worker name: use letters, digits, '_' and '-', not starting with a digit"),
        ("change", "worker name reserved by Buildbot"),
        ("w" * 51, "worker name longer than 50 characters"),
    ],
)
def test_worker_names_buildbot_refuses(tmp_path: Path, name: str, message: str) -> None:
    found, diags = workers(tmp_path, f"[{name}]\npassword = secret:x\n")
    assert found == {}
    assert [str(d) for d in diags.errors] == [f"{tmp_path / 'workers.cfg'}:1: [{name}] {message}"]


@pytest.mark.parametrize("name", ["ci1", "-x", "_y", "Ci-2_b", "w" * 50, "é-worker"])
def test_worker_names_buildbot_accepts(tmp_path: Path, name: str) -> None:
    from buildbot.util.identifiers import isIdentifier

    found, diags = workers(tmp_path, f"[{name}]\npassword = secret:x\n")
    assert list(found) == [name]
    assert not diags.items
    assert isIdentifier(50, name)


def test_build_category_repeats_are_dropped(tmp_path: Path) -> None:
    found, diags = manifests(
        tmp_path, "[a]\nbuildout = standalone b.cfg\nbuild-category = odoo, v17 odoo\n"
    )
    assert not diags.items
    assert found["a"].get(schema.BUILD_CATEGORY) == ("odoo", "v17")


def test_read_manifests_knows_every_section(tmp_path: Path) -> None:
    """What the starting master needs to leave one broken section out: the files, every
    section name, and why a section is left out when only its parent is broken."""
    from anybox_ci.core.manifest import read_manifests

    write(tmp_path / "b.cfg", "[buildout]\n")
    path = write(
        tmp_path / "m.cfg",
        "[a]\nbuildout = standalone b.cfg\n\n[loop1]\ninherit = loop2\n\n[loop2]\n"
        "inherit = loop1\n\n[child]\ninherit = loop1\n\n[watched]\n"
        "watch = git https://e.com/x.git main\npoll = true\n",
    )
    diags = Diagnostics()
    found = read_manifests([path], diags)
    assert [b.name for b in found.buildouts] == ["a"]
    assert found.paths == (str(path),)
    assert found.sections == {"a", "loop1", "loop2", "child", "watched"}
    (watched,) = found.watch_sections
    assert (watched.name, watched.line, watched.poll) == ("watched", 13, True)
    assert watched.watches == (Watch("git", "https://e.com/x.git", "main"),)
    # one error, at the loop; the others are left out because of it
    assert [str(d) for d in diags.errors] == [
        f"{path}:8: [loop2] inherit: inheritance loop: loop1 -> loop2 -> loop1"
    ]
    assert dict(found.silently_broken) == {
        "loop1": f"{path}:5: [loop1] inherit: inherits from [loop2], which is broken",
        "child": f"{path}:11: [child] inherit: inherits from [loop1], which is broken",
    }
