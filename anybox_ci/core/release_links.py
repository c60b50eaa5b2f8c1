"""``archive.from`` names the section whose releases an ``archive`` buildout tests.

Checked here, with the manifests, so that ``anybox-ci check`` reports a wrong link at its
section before anything is rendered, and so that a starting master leaves out only the
sections concerned (a link to a broken section is left out with it, as inherit is).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

from . import schema
from .diagnostics import Diagnostic, Diagnostics
from .model import Buildout
from .stepset_catalogue import BUILTIN, PACKAGING


def makes_releases(buildout: Buildout) -> bool:
    """Whether the buildout's ``packaging`` step set uploads archives to the master."""
    names = BUILTIN.names(schema.POST_BUILDOUT_STEPS)
    packs = any(
        names[n].name == PACKAGING.name
        for n in buildout.get(schema.POST_BUILDOUT_STEPS)
        if n in names
    )
    return packs and bool(buildout.get(schema.PACKAGING_UPLOAD_DIR))


def check_release_links(
    buildouts: Iterable[Buildout],
    section_names: Iterable[str],
    diags: Diagnostics,
    silent: MutableMapping[str, str],
) -> None:
    """Report each ``archive.from`` that cannot work, at its section."""
    by_name = {b.name: b for b in buildouts}
    sections = set(section_names)
    for buildout in by_name.values():
        source_name = buildout.get(schema.ARCHIVE_FROM)
        if not source_name:
            continue
        where = (buildout.manifest, buildout.line, buildout.name, schema.ARCHIVE_FROM.name)
        source = by_name.get(source_name)
        if buildout.source.type != "archive":
            diags.error(
                *where,
                f"only an 'archive' buildout tests release archives, not {buildout.source.type!r}",
            )
        elif source is None and source_name in sections:
            # the section has an error of its own, which says why: leave this one out with it
            silent.setdefault(
                buildout.name,
                str(Diagnostic(*where, f"[{source_name}] is broken or has no buildout")),
            )
        elif source is None:
            diags.error(*where, f"no buildout section {source_name!r}")
        elif not makes_releases(source):
            diags.error(
                *where,
                f"{source_name!r} makes no release archive: it needs '{PACKAGING.name}' in "
                f"{schema.POST_BUILDOUT_STEPS.name} and {schema.PACKAGING_UPLOAD_DIR.name}",
            )
