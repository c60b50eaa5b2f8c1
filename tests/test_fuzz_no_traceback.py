"""Property: whatever the manifest and workers text, ``anybox-ci check`` never raises.

It returns 0 or 1 and prints only diagnostic lines that point at a real line of a real
file, plus its one-line verdict on stderr.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anybox_ci import cli
from anybox_ci.core.schema import MANIFEST_OPTIONS, WORKER_OPTIONS

# no lone surrogates: they cannot be written to a file at all
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
SHORT_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)


def _aliases(options: dict) -> list[str]:
    return [a for o in options.values() for a in o.aliases]


SECTION_NAMES = st.sampled_from(
    ["erp", "site", "base", "odoo-17", "w1", "w2", "DEFAULT", "bad name", "_x", "é", ""]
) | SHORT_TEXT.filter(lambda s: "\n" not in s and "\r" not in s)

MANIFEST_KEYS = st.sampled_from(
    sorted(MANIFEST_OPTIONS) + _aliases(MANIFEST_OPTIONS) + ["biuld-for", "watc", "colour"]
) | SHORT_TEXT.filter(lambda s: s.strip() and "\n" not in s and "=" not in s and ":" not in s)

WORKER_KEYS = st.sampled_from(
    sorted(WORKER_OPTIONS) + _aliases(WORKER_OPTIONS) + ["arch", "max-builds", "capabilities"]
)

VERSIONS = st.sampled_from(["13", "15", "15.0", "17-devel", "9.6", "3.11", "18rc1", "x", "1" * 30])
FILTER_TOKENS = st.sampled_from([">=", "<", "==", "!=", ">", "<=", "OR", "or", "AND", "=>", "~="])
CAPABILITIES = st.sampled_from(["postgresql", "python", "wkhtmltopdf", "nodejs", "9pg", "p g"])

FILTER = st.lists(FILTER_TOKENS | VERSIONS, max_size=5).map(" ".join)
REQUIREMENT = st.builds(lambda cap, flt: f"{cap} {flt}".strip(), CAPABILITIES, FILTER)

SOURCES = st.sampled_from(
    [
        "standalone b.cfg",
        "standalone sub/c.cfg",
        "standalone nope.cfg",
        "standalone " + "n" * 300,
        "standalone ../b.cfg",
        "git https://e.com/r.git main buildout.cfg",
        "git https://e.com/r.git main buildout.cfg subdir=deploy",
        "git https://e.com/r.git ma..in buildout.cfg",
        "git https://e.com/r.git buildout.cfg",
        "hg https://e.com/r default buildout.cfg",
        "bzr lp:r buildout.cfg subdir=../x",
        "gittag https://e.com/r.git release.cfg",
        "hgtag https://e.com/r release.cfg",
        "archive https://e.com/%(prop:a)s release.cfg",
        "svn https://e.com/r trunk b.cfg",
        "git https://e.com/r.git main b.cfg depth=1",
        "",
    ]
)
WATCHES = st.sampled_from(
    [
        "git https://e.com/a.git 17.0",
        "hg https://e.com/h default",
        "bzr lp:x",
        "git https://e.com/a.git",
        "cvs x y",
        "git https://e.com/a.git -bad",
    ]
)
STEP_NAMES = st.sampled_from(
    [
        "install-modules-test",
        "standard",
        "test-openerp",
        "static-analysis",
        "simple_create",
        "restore",
        "functional",
        "doc",
        "packaging",
        "pytest",
        "test-command",
        "statc-analysis",
        "nose",
    ]
)
SCALARS = st.sampled_from(["1", "0", "-3", "2.5", "x", "true", "no", "02:30", "25:99", ""])
COMMANDS = st.sampled_from(["bin/test -x", "bin/flake8 'unclosed", "echo {port}", '""'])
OFFER_OPTIONS = st.sampled_from(["port=5432", "host=/run", "bin=/x/bin", "lib=", "port", "=1"])
OFFER = st.builds(
    lambda cap, version, opts: " ".join([cap, *version, *opts]),
    CAPABILITIES,
    st.lists(VERSIONS, max_size=1),
    st.lists(OFFER_OPTIONS, max_size=3),
)


def _lines(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(strategy, min_size=1, max_size=3)


def manifest_value(key: str) -> st.SearchStrategy[list[str]]:
    if key == "buildout":
        return _lines(SOURCES)
    if key in ("build-for", "build-requires"):
        return _lines(REQUIREMENT)
    if key == "watch":
        return _lines(WATCHES)
    if key.endswith("steps"):
        return _lines(STEP_NAMES)
    if key == "inherit":
        return _lines(SECTION_NAMES)
    if "command" in key:
        return _lines(COMMANDS)
    return _lines(SCALARS | TEXT)


def worker_value(key: str) -> st.SearchStrategy[list[str]]:
    if key in ("password", "passwd"):
        return _lines(st.sampled_from(["secret:w", "secret:", "hunter2", "", "secret: x y"]))
    if key == "capability":
        return _lines(OFFER)
    return _lines(SCALARS | TEXT)


Values = Callable[[str], st.SearchStrategy[list[str]]]


@st.composite
def option(draw: st.DrawFn, keys: st.SearchStrategy[str], values: Values) -> str:
    key = draw(keys)
    lines = draw(values(key))
    if len(lines) > 1 and draw(st.booleans()):
        # a multi-line value, as written in manifests: continuation lines indented
        return f"{key} =\n" + "".join(f"    {line}\n" for line in lines)
    separator = draw(st.sampled_from([" = ", "=", ": "]))
    return f"{key}{separator}{lines[0]}\n"


@st.composite
def ini_text(draw: st.DrawFn, keys: st.SearchStrategy[str], values: Values) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=200))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(f"[{draw(SECTION_NAMES)}]\n")
        for _ in range(draw(st.integers(0, 5))):
            if draw(st.integers(0, 7)) == 0:
                parts.append(draw(TEXT) + "\n")  # garbage line
            else:
                parts.append(draw(option(keys, values)))
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(["\n", "# comment\n", "; c\n", "\x0c\n", "\r\n"])))
    return "".join(parts)


# Mostly valid configurations too, so that planning and factories run, not only the parser.
VALID_SECTION = st.builds(
    lambda name, source, extra: f"[{name}]\nbuildout = {source}\n" + "".join(extra) + "\n",
    st.sampled_from(["erp", "site", "odoo-17", "a.b", "x+y"]),
    SOURCES.filter(
        lambda s: s.startswith(("standalone b", "standalone sub", "git", "hg", "gittag"))
    ),
    st.lists(
        st.sampled_from(
            [
                "build-for = postgresql\n",
                "build-for =\n    postgresql >= 15\n    python\n",
                "build-requires = wkhtmltopdf\n",
                "build-category = odoo odoo\n",
                "watch = git https://e.com/a.git 17.0\n",
                "nightly = 02:30\n",
                "post-buildout-steps =\n    static-analysis\n    standard\n",
                "db-steps = restore\n",
                "db-steps =\n",
                "openerp-addons = base\n",
            ]
        ),
        max_size=4,
        unique=True,
    ),
)
VALID_MANIFEST = st.lists(VALID_SECTION, max_size=3).map("".join)
VALID_WORKER = st.builds(
    lambda name, caps, extra: (
        f"[{name}]\npassword = secret:{name}\n"
        + "".join(extra)
        + ("capability =\n" + "".join(f"    {c}\n" for c in caps) if caps else "")
    ),
    st.sampled_from(["ci1", "ci2", "w-3"]),
    st.lists(
        st.sampled_from(
            ["postgresql 15 port=5432", "postgresql 16", "postgresql 17-devel", "python 3.11"]
            + ["wkhtmltopdf"]
        ),
        max_size=4,
        unique=True,
    ),
    st.lists(
        st.sampled_from(["priority = 3\n", "build-only-if-requires = wkhtmltopdf\n", "a = b\n"]),
        max_size=2,
        unique=True,
    ),
)
VALID_WORKERS = st.lists(VALID_WORKER, max_size=3).map("\n".join)

MANIFESTS = VALID_MANIFEST | ini_text(MANIFEST_KEYS, manifest_value)
WORKERS = VALID_WORKERS | ini_text(WORKER_KEYS, worker_value)


def line_count(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 0
    return len(io.StringIO(text, newline=None).readlines())


_WHERE = re.compile(r"^(?::(?P<line>\d+))?: (?:warning: )?(?P<rest>.+)$")


def check_output(root: Path, files: list[Path], rc: int, out: str, err: str) -> None:
    assert rc in (0, 1)
    assert "Traceback" not in out + err
    errors = 0
    for line in out.split("\n")[:-1] if out else []:
        path = next((p for p in files if line.startswith(f"{p}:")), None)
        assert path is not None, f"not a diagnostic of a known file: {line!r}"
        match = _WHERE.match(line[len(str(path)) :])
        assert match is not None, f"not in the diagnostic format: {line!r}"
        if match["line"] is not None:
            assert 1 <= int(match["line"]) <= line_count(path), line
        if ": warning: " not in line[len(str(path)) :][:20]:
            errors += 1
    assert err.count("\n") == 1, err
    if rc == 1:
        assert err == f"{errors} error(s)\n"
    else:
        assert errors == 0
        assert re.fullmatch(r"ok: \d+ buildout\(s\), \d+ worker\(s\), \d+ builder\(s\)\n", err)


def sometimes(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value one time in four, else None."""
    return st.tuples(st.integers(0, 3), strategy).map(lambda t: t[1] if t[0] == 0 else None)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    manifest=MANIFESTS,
    workers=WORKERS,
    fragment=sometimes(WORKERS),
    raw_bytes=sometimes(st.binary(max_size=40)),
)
def test_check_never_raises(
    manifest: str, workers: str, fragment: str | None, raw_bytes: bytes | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        (root / "buildouts" / "sub").mkdir(parents=True)
        (root / "buildouts" / "b.cfg").write_text("[buildout]\n")
        (root / "buildouts" / "sub" / "c.cfg").write_text("[buildout]\n")
        manifest_path = root / "buildouts" / "MANIFEST.cfg"
        manifest_path.write_text(manifest, encoding="utf-8")
        workers_path = root / "workers.cfg"
        workers_path.write_text(workers, encoding="utf-8")
        files = [manifest_path, workers_path]
        if fragment is not None:
            (root / "workers.d").mkdir()
            files.append(root / "workers.d" / "x.cfg")
            files[-1].write_text(fragment, encoding="utf-8")
        if raw_bytes is not None:
            # bytes that may not be UTF-8 at all
            (root / "workers.d").mkdir(exist_ok=True)
            files.append(root / "workers.d" / "y.cfg")
            files[-1].write_bytes(raw_bytes)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["check", str(root)])
        check_output(root, files, rc, out.getvalue(), err.getvalue())
