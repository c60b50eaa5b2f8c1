"""``anybox-ci migrate DIR [--write]``: the ancestor's manifests and workers files in
today's names.

Prints each file that would change, rewritten: renamed options and step sets get their
new names, options that are ignored or removed are commented out with the reason, and the
ancestor's ``$(name)s`` build properties become ``%(prop:name)s``. Everything else (order,
comments, ``[DEFAULT]`` variables, ``%(name)s`` references) stays as written. Afterwards,
``anybox-ci check`` gives no deprecation warning for these files.

Nothing is written unless ``--write`` is given; then each changed file is first copied to
``FILE.bak``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import schema
from ..core.diagnostics import Diagnostics
from ..core.inifile import IniFile, Section, parse_ini
from ..core.kinds import BUILDBOT_TEXT, buildbot_text
from ..core.layout import master_paths
from ..core.options import canonical_names
from ..core.stepset_catalogue import BUILTIN, KINDS, Catalogue
from .common import Parser, add_dir_args

HEADER = "# ==> {path} <=="
NOTE = "# anybox-ci migrate: "
BACKUP_SUFFIX = ".bak"

_KEY_RE = re.compile(r"^(?P<key>[^=:\s][^=:]*?)(?P<rest>\s*[=:].*)$", re.DOTALL)
_DOLLAR = re.compile(r"\$\([^()]*\)s")
_DELIMITER = re.compile(r"^(?P<head>[^=:]*[=:])(?P<tail>.*)$", re.DOTALL)


@dataclass
class _Edit:
    """What happens to the lines of one file (1-based line numbers)."""

    lines: list[str]

    def set(self, number: int, text: str) -> None:
        self.lines[number - 1] = text

    def get(self, number: int) -> str:
        return self.lines[number - 1]

    def comment_out(self, numbers: Sequence[int], why: str) -> None:
        first = min(numbers)
        for number in numbers:
            if not self.get(number).startswith("#"):
                self.set(number, "# " + self.get(number))
        self.set(first, NOTE + why + "\n" + self.get(first))

    def rename_key(self, number: int, new: str) -> None:
        line = self.get(number)
        match = _KEY_RE.match(line)
        if match:
            self.set(number, new + match["rest"])


def _value_lines(section: Section, key: str) -> list[int]:
    value = section.options[key]
    return sorted({value.line, *value.lines})


def _rename_step_sets(edit: _Edit, section: Section, key: str, catalogue: Catalogue) -> None:
    """Old step-set names on every line of a step-set option; ignored ones dropped."""
    known = catalogue.names(next(k for k in KINDS if k.name == key))
    value = section.options[key]
    written = value.text.split()
    kept = [w for w in written if not (w in known and known[w].ignored)]
    if written and not kept:
        edit.comment_out(
            _value_lines(section, key),
            f"{key}: step set {written[0]!r} " + _why(known[written[0]].ignored),
        )
        return
    for number in _value_lines(section, key):
        line = edit.get(number)
        head, tail = ("", line)
        if number == value.line and (split := _DELIMITER.match(line)):
            head, tail = split["head"], split["tail"]
        for word in tail.split():
            found = known.get(word)
            if found is None:
                continue
            replacement = "" if found.ignored else found.name
            if replacement != word:
                tail = re.sub(rf"(?<!\S){re.escape(word)}(?!\S)", replacement, tail, count=1)
        edit.set(number, head + tail)


def _dollar_properties(edit: _Edit, section: Section, key: str) -> None:
    for number in _value_lines(section, key):
        line = edit.get(number)
        edit.set(number, _DOLLAR.sub(lambda m: buildbot_text(m[0]), line))


def _migrate_section(
    edit: _Edit,
    section: Section,
    options: Mapping[str, schema.Option[Any]],
    removed: Sequence[schema.Removed],
    catalogue: Catalogue | None,
) -> None:
    names = canonical_names(options)
    step_kinds = {k.name for k in KINDS} if catalogue is not None else set()
    for key in list(section.options):
        canonical = names.get(key)
        gone = next((r for r in removed if r.matches(key)), None) if canonical is None else None
        if gone is not None:
            edit.comment_out(_value_lines(section, key), f"{key}: " + _why(gone.why))
            continue
        if canonical is None:
            continue
        opt = options[canonical]
        if opt.ignored:
            edit.comment_out(_value_lines(section, key), f"{key}: " + _why(opt.ignored))
            continue
        if canonical != key:
            if canonical in section.options:
                edit.comment_out(
                    _value_lines(section, key), f"{key}: old name of {canonical}, set below"
                )
                continue
            edit.rename_key(section.options[key].line, canonical)
        if catalogue is not None and canonical in step_kinds:
            _rename_step_sets(edit, section, key, catalogue)
        if opt.kind is BUILDBOT_TEXT:
            _dollar_properties(edit, section, key)


def _why(reason: str) -> str:
    return schema.ignored_reason(reason)


def migrate_text(
    text: str,
    path: str,
    options: Mapping[str, schema.Option[Any]] = schema.MANIFEST_OPTIONS,
    removed: Sequence[schema.Removed] = schema.REMOVED_MANIFEST_OPTIONS,
    catalogue: Catalogue | None = BUILTIN,
) -> tuple[str, Diagnostics]:
    """``text`` in today's names, and the syntax problems of the file (then unchanged)."""
    diags = Diagnostics()
    ini: IniFile = parse_ini(text, path, diags)
    if diags.errors:
        return text, diags
    edit = _Edit(text.splitlines(keepends=True))
    if edit.lines and not edit.lines[-1].endswith("\n"):
        edit.lines[-1] += "\n"
    for section in (ini.defaults, *ini.sections.values()):
        _migrate_section(edit, section, options, removed, catalogue)
    return "".join(edit.lines), diags


def migrate_manifest(text: str, path: str) -> tuple[str, Diagnostics]:
    return migrate_text(text, path)


def migrate_workers(text: str, path: str) -> tuple[str, Diagnostics]:
    return migrate_text(text, path, schema.WORKER_OPTIONS, (), None)


def _files(args: argparse.Namespace) -> list[tuple[Path, Callable[[str, str], Any]]]:
    manifests, workers = master_paths(args.dir, args.manifest or None, args.workers or None)
    found: list[tuple[Path, Callable[[str, str], Any]]] = []
    found += [(p, migrate_manifest) for p in manifests if p.is_file()]
    found += [(p, migrate_workers) for p in workers if p.is_file()]
    return found


def migrate(args: argparse.Namespace) -> int:
    status = 0
    changed: list[tuple[Path, str]] = []
    files = _files(args)
    if not files:
        print(f"anybox-ci migrate: no manifest or workers file in {args.dir}", file=sys.stderr)
        return 1
    for path, function in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            status = 1
            continue
        new, diags = function(text, str(path))
        for diag in diags.errors:
            print(f"{diag} (file left as is)", file=sys.stderr)
            status = 1
        if new != text:
            changed.append((path, new))
    if not changed:
        print("anybox-ci migrate: nothing to change", file=sys.stderr)
        return status
    for path, new in changed:
        if args.write:
            backup = path.with_name(path.name + BACKUP_SUFFIX)
            shutil.copy2(path, backup)
            path.write_text(new, encoding="utf-8")
            print(f"wrote {path} (was saved as {backup})", file=sys.stderr)
        else:
            print(HEADER.format(path=path))
            sys.stdout.write(new)
    if not args.write:
        print("anybox-ci migrate: nothing written; --write saves these files", file=sys.stderr)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="anybox-ci migrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dir_args(parser)
    parser.add_argument(
        "--write",
        action="store_true",
        help="rewrite the files in place, each saved first as FILE.bak",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return migrate(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
