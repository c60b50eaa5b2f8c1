"""``anybox_ci.core.loader.check`` gives every diagnostic of ``anybox-ci check`` without
importing Buildbot or Twisted: step sets missing their options, URL rewrite rules,
unmatched cells included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anybox_ci import cli

MANIFEST = """\
[erp]
buildout = standalone b.cfg
build-for = postgresql
post-buildout-steps =
    install-modules-test
    functional
functional.timeout = 30

[future]
buildout = standalone b.cfg
build-for = postgresql >= 18
db-steps = restore
db-restore-command = pg_restore dump

[typo]
buildout = standalone b.cfg
odoo-adons = sale
"""

WORKERS = "[w1]\npassword = secret:w1\ncapability = postgresql 15\n"
REWRITES = "# mirrors\nhttps://e.com/ -> file:///srv/mirrors/\nno arrow\n"

PROBE = """\
import json, sys
from pathlib import Path
from anybox_ci.core.loader import check
loaded = check(Path(sys.argv[1]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("buildbot", "twisted"))
print(json.dumps({"lines": [str(d) for d in loaded.diagnostics.items], "heavy": heavy}))
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path.resolve()
    (root / "buildouts").mkdir()
    (root / "buildouts" / "MANIFEST.cfg").write_text(MANIFEST)
    (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
    (root / "workers.cfg").write_text(WORKERS)
    (root / "url-rewrites.cfg").write_text(REWRITES)
    return root


def _probe(root: Path) -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


def test_every_diagnostic_without_buildbot(root: Path) -> None:
    found = _probe(root)
    m = root / "buildouts" / "MANIFEST.cfg"
    assert found["heavy"] == []
    assert found["lines"] == [
        f"{m}:6: [erp] post-buildout-steps: step set 'functional' needs a value for "
        "'functional.commands'",
        f"{m}:9: warning: [future] no eligible worker offers postgresql >= 18 (offered: 15)",
        f"{m}:17: [typo] odoo-adons: unknown option (did you mean odoo-addons?)",
        f"{root}/url-rewrites.cfg:3: expected 'PREFIX -> REPLACEMENT', got 'no arrow'",
    ]


def test_the_command_prints_the_same_lines(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(root)]) == 1
    assert capsys.readouterr().out.splitlines() == _probe(root)["lines"]
