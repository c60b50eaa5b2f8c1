"""Read ``[domain:NAME]`` sections: the buildouts whose candidates are frozen into stacks.

A domain section reads only :data:`~.schema.DOMAIN_OPTIONS` (``[DEFAULT]`` values meant for
buildouts are not its own); its members must be buildout sections of the same manifests.
Every problem is one diagnostic at the line that causes it; a domain with an error is left
out, its members still build.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from . import schema
from .diagnostics import Diagnostic, Diagnostics, did_you_mean
from .inifile import Section
from .lines import NAME_RE
from .model import Buildout, Domain, Requirement, WorkerDef
from .options import RawValue, canonical_names, raw_options
from .options import resolve as resolve_options

_NAMES = canonical_names(schema.DOMAIN_OPTIONS)
#: what ``acceptance-steps`` may name
ACCEPTANCE_PARTS = (schema.ACCEPTANCE_MEMBERS, schema.ACCEPTANCE_INSTALL_TEST)


def is_domain_section(name: str) -> bool:
    return name.startswith(schema.DOMAIN_SECTION_PREFIX)


def read_domain(
    name: str, section: Section, defaults: Section, diags: Diagnostics
) -> tuple[Domain, RawValue | None] | None:
    """One domain section, or None after reporting why not; with where ``members`` is."""
    short = name[len(schema.DOMAIN_SECTION_PREFIX) :]
    path, line = section.path, section.line
    if not NAME_RE.match(short):
        diags.error(
            path,
            line,
            name,
            "",
            "a domain name must start with a letter or digit and hold only letters, "
            "digits and . _ + -",
        )
        return None
    raw = {
        key: value
        for key, value in raw_options(section, defaults).items()
        if not value.from_default or key in _NAMES
    }
    values = resolve_options(raw, schema.DOMAIN_OPTIONS, name, diags, names=_NAMES)
    ok = values.ok
    members_raw = raw.get(schema.MEMBERS.name)
    members = values.get(schema.MEMBERS)
    if not members and schema.MEMBERS.name not in values.failed:
        diags.error(path, line, name, schema.MEMBERS.name, "a domain needs its member buildouts")
        ok = False
    seen: set[str] = set()
    for member in members:
        if member in seen:
            where = members_raw or RawValue("", path, line)
            diags.error(
                where.path,
                where.line_of(member),
                name,
                schema.MEMBERS.name,
                f"member {member!r} listed twice",
            )
            ok = False
        seen.add(member)
    steps_raw = raw.get(schema.ACCEPTANCE_STEPS.name) or RawValue("", path, line)
    steps = values.get(schema.ACCEPTANCE_STEPS)
    for step in steps:
        if step not in ACCEPTANCE_PARTS:
            diags.error(
                steps_raw.path,
                steps_raw.line_of(step),
                name,
                schema.ACCEPTANCE_STEPS.name,
                f"unknown acceptance step set {step!r}" + did_you_mean(step, ACCEPTANCE_PARTS),
            )
            ok = False
    if schema.ACCEPTANCE_INSTALL_TEST in steps:
        for needed in (schema.INSTALL_TEST_TARGETS, schema.INSTALL_TEST_COMMAND):
            if not values.get(needed) and needed.name not in values.failed:
                diags.error(
                    steps_raw.path,
                    steps_raw.line_of(schema.ACCEPTANCE_INSTALL_TEST),
                    name,
                    schema.ACCEPTANCE_STEPS.name,
                    f"step set {schema.ACCEPTANCE_INSTALL_TEST!r} needs a value for "
                    f"{needed.name!r}",
                )
                ok = False
    if not ok:
        return None
    targets = tuple(Requirement(c, f) for c, f in values.get(schema.INSTALL_TEST_TARGETS))
    domain = Domain(short, path, line, MappingProxyType(values.values), targets)
    return domain, members_raw


def check_members(
    found: Iterable[tuple[Domain, RawValue | None]],
    buildouts: Iterable[Buildout],
    section_names: Iterable[str],
    diags: Diagnostics,
    silent: dict[str, str],
) -> tuple[Domain, ...]:
    """The domains whose members are all buildouts; the others reported and left out.

    A member that is a section with an error of its own leaves the domain out without a
    second error (the member's says why), recorded in ``silent`` as the inherit chain is."""
    known = {b.name for b in buildouts}
    sections = set(section_names)
    kept: list[Domain] = []
    for domain, where in found:
        ok = True
        for member in domain.get(schema.MEMBERS):
            at = (
                (where.path, where.line_of(member))
                if where is not None
                else (domain.manifest, domain.line)
            )
            if member in known:
                continue
            if member in sections and not is_domain_section(member):
                why = Diagnostic(
                    *at,
                    domain.section,
                    schema.MEMBERS.name,
                    f"member [{member}] is broken or has no buildout",
                )
                silent.setdefault(domain.section, str(why))
            else:
                diags.error(
                    *at,
                    domain.section,
                    schema.MEMBERS.name,
                    f"no buildout section {member!r}" + did_you_mean(member, sorted(known)),
                )
            ok = False
        if ok:
            kept.append(domain)
    return tuple(kept)


def warn_domain_options(name: str, section: Section, diags: Diagnostics) -> None:
    """A buildout section setting a domain option: it has no effect there."""
    for key, value in section.options.items():
        if key in _NAMES:
            diags.warning(
                section.path,
                value.line,
                name,
                key,
                f"has no effect: only a [{schema.DOMAIN_SECTION_PREFIX}NAME] section reads it",
            )


def install_target_workers(domain: Domain, workers: Iterable[WorkerDef]) -> tuple[str, ...]:
    """The workers offering every ``install-test.targets`` filter, sorted by name."""

    def offers(worker: WorkerDef, req: Requirement) -> bool:
        for offer in worker.offered(req.capability):
            if offer.version is None:
                if req.filter.is_any:
                    return True
            elif req.filter.match(offer.version):
                return True
        return False

    return tuple(
        sorted(w.name for w in workers if all(offers(w, req) for req in domain.install_targets))
    )
