"""``[domain:NAME]`` sections: read from the manifest, every mistake one diagnostic line."""

from __future__ import annotations

from pathlib import Path

from anybox_ci.core import schema
from anybox_ci.core.domains import install_target_workers
from anybox_ci.core.loader import check

WORKERS = """
[w1]
password = secret:w1
capability = postgresql 15
    debian 12
[w2]
password = secret:w2
capability = postgresql 15
    ubuntu 24.04
"""

BUILDOUTS = """
[DEFAULT]
build-for = postgresql >= 13

[core]
buildout = git file:///repos/core main buildout.cfg

[web]
buildout = git file:///repos/web main buildout.cfg
"""


def _check(tmp_path: Path, domains: str) -> tuple[list[str], object]:
    (tmp_path / "buildouts").mkdir(exist_ok=True)
    (tmp_path / "buildouts" / "MANIFEST.cfg").write_text(BUILDOUTS + domains)
    (tmp_path / "workers.cfg").write_text(WORKERS)
    loaded = check(tmp_path)
    lines = [str(d) for d in loaded.diagnostics.items if "secret" not in str(d)]
    return lines, loaded


def test_a_domain_is_read(tmp_path: Path) -> None:
    lines, loaded = _check(
        tmp_path,
        "[domain:erp]\nmembers = core web\nacceptance-steps = members\n    install-test\n"
        "install-test.targets = debian >= 12\ninstall-test.command = ./check\n",
    )
    assert lines == []
    (domain,) = loaded.config.domains  # type: ignore[attr-defined]
    assert domain.name == "erp" and domain.get(schema.MEMBERS) == ("core", "web")
    assert install_target_workers(domain, loaded.config.workers) == ("w1",)  # type: ignore[attr-defined]


def test_unknown_member_names_the_line_and_suggests(tmp_path: Path) -> None:
    lines, loaded = _check(tmp_path, "[domain:erp]\nmembers = core\n    wbe\n")
    assert lines == [
        f"{tmp_path}/buildouts/MANIFEST.cfg:12: [domain:erp] members: no buildout section 'wbe' "
        "(did you mean web?)"
    ]
    assert loaded.config.domains == ()  # type: ignore[attr-defined]


def test_domain_mistakes(tmp_path: Path) -> None:
    lines, _ = _check(
        tmp_path,
        "[domain:erp]\nmembers = core core\nacceptance-steps = install-tset\nmembres = x\n\n"
        "[domain:ops]\nmembers = core\nacceptance-steps = install-test\n\n"
        "[domain:-bad]\nmembers = core\n",
    )
    text = "\n".join(lines)
    assert "[domain:erp] membres: unknown option (did you mean members?)" in text
    assert "[domain:erp] members: member 'core' listed twice" in text
    assert "unknown acceptance step set 'install-tset' (did you mean install-test?)" in text
    assert ":17: [domain:ops] acceptance-steps: step set 'install-test' needs a value for " in text
    assert "[domain:-bad] a domain name must start with a letter or digit" in text


def test_a_domain_without_members_and_options_in_the_wrong_section(tmp_path: Path) -> None:
    (tmp_path / "buildouts").mkdir()
    (tmp_path / "buildouts" / "b.cfg").write_text("[buildout]\n")
    lines, _ = _check(tmp_path, "[domain:erp]\nacceptance-steps = members\n")
    assert any("[domain:erp] members: a domain needs its member buildouts" in x for x in lines)
    lines, _ = _check(
        tmp_path,
        "[domain:erp]\nmembers = core\n[other]\nbuildout = "
        "standalone b.cfg\ninstall-test.command = x\n",
    )
    assert any(
        "warning: [other] install-test.command: has no effect: only a [domain:NAME]" in x
        for x in lines
    ), lines
