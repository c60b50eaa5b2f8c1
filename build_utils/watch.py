"""Dump the floating VCS sources a buildout uses, for ``auto-watch`` (stdlib only).

    python3 watch.py --buildout-dir DIR --config buildout.cfg --output watch.json

Why: with ``auto-watch = true`` the master must also rebuild when a repository that the
buildout follows by branch changes, not only when the buildout itself changes. This script
reads the buildout config the way zc.buildout merges it (local ``extends`` first, in order,
``+=``/``-=`` applied, ``<=`` macros, ``${section:option}`` substitution) and reports:

* anybox.recipe.odoo / anybox.recipe.openerp sections: ``version``, ``addons`` and
  ``merges`` lines ``VCS URL TARGET REVISION [options]`` with VCS in git, hg, bzr (``local``
  is ignored). A source is floating unless it is pinned: a full commit hash as REVISION (40
  hex for git, 12 or 40 hex for hg; for bzr anything but ``last:N``), a ``revision=`` option
  on the line, or a ``TARGET REVISION`` line for it in the section's ``revisions`` option (as
  written by the recipe's freeze feature);
* mr.developer sources (section named by ``[buildout] sources``, default ``[sources]``)
  ``NAME = VCS URL [branch=B] [rev=R] ...``, floating unless ``rev``/``revision`` is set; when
  ``[buildout] auto-checkout`` is set, only those names (``*`` means all) are in use.

Output, sorted and deterministic:
``{"sources": [{"vcs", "url", "branch", "pin"}], "errors": [...]}`` (``branch`` is null for
bzr; ``pin`` tells the master how to pin that source to a revision on the buildout command
line: a recipe ``section`` and ``target``, or an mr.developer ``section``, ``name`` and
``line``). Problems with the config (missing file, syntax error, remote
``extends``, unreadable lines) become ``errors`` entries and never fail the step: the exit
status is 0 unless the output file cannot be written.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:  # a package module in tests, a top-level one in the worker's bundle
    from .summary import ArgumentParser, print_summary
except ImportError:
    from summary import ArgumentParser, print_summary  # type: ignore[no-redef]

VCS_TYPES = ("git", "hg", "bzr")
RECIPE_PREFIXES = ("anybox.recipe.odoo", "anybox.recipe.openerp")
DEFAULT_BRANCH = {"git": "master", "hg": "default", "bzr": None}
GIT_HASH_RE = re.compile(r"^[0-9a-fA-F]{40}$")
HG_HASH_RE = re.compile(r"^(?:[0-9a-fA-F]{12}|[0-9a-fA-F]{40})$")
SUBST_RE = re.compile(r"\$\{([^:}\s]*):([^}\s]+)\}")
NO_DEFAULT_SECTION = "\x00anybox-ci-no-default"
MAX_SUBST_DEPTH = 10

Config = dict[str, dict[str, str]]
#: one discovered source: vcs, url, branch (None for bzr) and how to pin it
Source = dict[str, Any]


def is_remote(ref: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", ref))


def parse_file(path: Path) -> Config:
    """One file as raw options; ``opt +=`` is kept as key ``opt +`` (configparser's reading)."""
    parser = configparser.ConfigParser(
        interpolation=None,
        strict=False,
        delimiters=("=",),
        comment_prefixes=("#", ";"),
        default_section=NO_DEFAULT_SECTION,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # case-sensitive like buildout
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle, source=str(path))
    return {name: dict(parser.items(name, raw=True)) for name in parser.sections()}


def merge(base: Config, overlay: Config) -> Config:
    """Overlay one config on another as buildout does, with ``+=`` and ``-=``."""
    result = {name: dict(options) for name, options in base.items()}
    for name, options in overlay.items():
        target = result.setdefault(name, {})
        for key, value in options.items():
            stripped = key.rstrip()
            if stripped.endswith(("+", "-")) and stripped[:-1].strip():
                option = stripped[:-1].strip()
                old = [line for line in target.get(option, "").splitlines() if line.strip()]
                new = [line for line in value.splitlines() if line.strip()]
                if stripped.endswith("+"):
                    target[option] = "\n".join(old + new)
                else:
                    removed = {line.strip() for line in new}
                    target[option] = "\n".join(x for x in old if x.strip() not in removed)
            else:
                target[key] = value
    return result


def load(path: Path, errors: list[str], stack: tuple[Path, ...] = ()) -> Config:
    """Load ``path`` with its local ``extends`` (recursively); problems go to ``errors``."""
    resolved = path.resolve()
    if resolved in stack:
        errors.append(f"{path}: extends cycle, ignored")
        return {}
    try:
        data = parse_file(path)
    except FileNotFoundError:
        errors.append(f"{path}: file not found")
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read: {exc}")
        return {}
    except configparser.Error as exc:
        errors.append(f"{path}: cannot parse: {' '.join(str(exc).split())}")
        return {}
    extends = data.get("buildout", {}).pop("extends", "")
    base: Config = {}
    for ref in extends.split():
        if is_remote(ref):
            errors.append(f"{path}: remote extends not followed: {ref}")
            continue
        base = merge(base, load(path.parent / ref, errors, (*stack, resolved)))
    return merge(base, data)


def resolve_macros(config: Config, errors: list[str]) -> Config:
    """Apply ``<= section`` macros (section inherits the options of another)."""
    result: Config = {}

    def expand(name: str, seen: tuple[str, ...]) -> dict[str, str]:
        if name in result:
            return result[name]
        options = dict(config.get(name, {}))
        macro = options.pop("<", None)
        if macro is not None:
            macro = macro.strip()
            if macro in seen or macro not in config:
                errors.append(f"[{name}]: macro <= {macro} ignored (unknown or cyclic)")
            else:
                options = {**expand(macro, (*seen, name)), **options}
        result[name] = options
        return options

    for section in config:
        expand(section, ())
    return result


def substitute(config: Config, section: str, value: str, depth: int = 0) -> str:
    """``${section:option}`` / ``${:option}`` substitution; unknown references stay as is."""
    if depth > MAX_SUBST_DEPTH or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        ref_section = match.group(1) or section
        found = config.get(ref_section, {}).get(match.group(2))
        if found is None:
            return match.group(0)
        return substitute(config, ref_section, found, depth + 1)

    return SUBST_RE.sub(replace, value)


def option(config: Config, section: str, name: str) -> str | None:
    raw = config.get(section, {}).get(name)
    return None if raw is None else substitute(config, section, raw)


def line_options(tokens: Sequence[str]) -> dict[str, str]:
    """``key=value`` tokens of a source line."""
    pairs = (token.partition("=") for token in tokens if "=" in token)
    return {key: value for key, _, value in pairs}


def is_pinned(vcs: str, revision: str) -> bool:
    if vcs == "git":
        return bool(GIT_HASH_RE.match(revision))
    if vcs == "hg":
        return bool(HG_HASH_RE.match(revision))
    return not revision.startswith("last:")  # bzr: revno, revid:, tag: are fixed


def recipe_sources(config: Config, section: str, errors: list[str]) -> list[Source]:
    """Floating sources of an anybox.recipe.odoo/openerp section (version, addons, merges)."""
    pinned_targets: dict[str, str] = {}
    for line in (option(config, section, "revisions") or "").splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            pinned_targets[parts[0].rstrip("/")] = parts[1]
    lines = []
    version = option(config, section, "version")
    if version and version.split() and version.split()[0] in VCS_TYPES:
        lines.append(("version", version.strip()))
    for opt_name in ("addons", "merges"):
        for line in (option(config, section, opt_name) or "").splitlines():
            lines.append((opt_name, line))
    found: list[Source] = []
    for opt_name, line in lines:
        tokens = []
        for token in line.split():
            if token.startswith("#"):
                break
            tokens.append(token)
        if not tokens or tokens[0] not in VCS_TYPES:
            continue  # local paths, comments, other kinds of version
        if len(tokens) < 4:
            errors.append(
                f"[{section}] {opt_name}: expected 'VCS URL TARGET REVISION': {line.strip()}"
            )
            continue
        vcs, url, target, revision = tokens[:4]
        opts = line_options(tokens[4:])
        if "revision" in opts or target.rstrip("/") in pinned_targets or is_pinned(vcs, revision):
            continue
        branch = None if vcs == "bzr" else revision
        pin = {"kind": "recipe", "section": section, "target": target.rstrip("/")}
        found.append({"vcs": vcs, "url": url, "branch": branch, "pin": pin})
    return found


def developer_sources(config: Config, errors: list[str]) -> list[Source]:
    """Floating mr.developer sources that the buildout checks out."""
    section = (option(config, "buildout", "sources") or "sources").strip()
    auto = option(config, "buildout", "auto-checkout")
    wanted = None if auto is None or "*" in auto.split() else set(auto.split())
    found: list[Source] = []
    for name in sorted(config.get(section, {})):
        if wanted is not None and name not in wanted:
            continue
        tokens = (option(config, section, name) or "").split()
        if not tokens:
            continue
        vcs = tokens[0]
        if vcs == "fs":
            continue
        if vcs not in VCS_TYPES:
            errors.append(f"[{section}] {name}: vcs {vcs!r} cannot be watched")
            continue
        if len(tokens) < 2:
            errors.append(f"[{section}] {name}: no URL")
            continue
        opts = line_options(tokens[2:])
        if "rev" in opts or "revision" in opts:
            continue
        branch = None if vcs == "bzr" else opts.get("branch", DEFAULT_BRANCH[vcs])
        pin = {"kind": "developer", "section": section, "name": name, "line": " ".join(tokens)}
        found.append({"vcs": vcs, "url": tokens[1], "branch": branch, "pin": pin})
    return found


def discover(buildout_dir: str | os.PathLike[str], config_name: str) -> dict[str, list]:
    """The whole analysis, as the JSON-ready ``{"sources": [...], "errors": [...]}``."""
    errors: list[str] = []
    directory = Path(buildout_dir)
    raw = load(directory / config_name, errors)
    config = resolve_macros(raw, errors)
    config.setdefault("buildout", {}).setdefault("directory", str(directory.resolve()))
    sources: list[Source] = []
    for section in sorted(config):
        recipe = (option(config, section, "recipe") or "").strip()
        if recipe.startswith(RECIPE_PREFIXES):
            sources.extend(recipe_sources(config, section, errors))
    sources.extend(developer_sources(config, errors))
    unique: dict[tuple, dict] = {}
    for source in sources:
        unique.setdefault((source["vcs"], source["url"], source["branch"]), source)
    ordered = [
        unique[key] for key in sorted(unique, key=lambda k: (k[0] or "", k[1] or "", k[2] or ""))
    ]
    return {"sources": ordered, "errors": sorted(set(errors))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(description="Dump the floating VCS sources of a buildout.")
    parser.add_argument("--buildout-dir", required=True)
    parser.add_argument("--config", default="buildout.cfg")
    parser.add_argument("--output", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    result = discover(args.buildout_dir, args.config)
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print_summary(f"cannot write {args.output}: {exc.strerror}")
        return 1
    for source in result["sources"]:
        branch = f" {source['branch']}" if source["branch"] else ""
        print(f"watch {source['vcs']} {source['url']}{branch}")
    for error in result["errors"]:
        print(f"warning: {error}")
    n, n_err = len(result["sources"]), len(result["errors"])
    text = f"{n} floating source" + ("" if n == 1 else "s")
    if n_err:
        text += (
            f", {n_err} problem" + ("" if n_err == 1 else "s") + f" (first: {result['errors'][0]})"
        )
    print_summary(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
