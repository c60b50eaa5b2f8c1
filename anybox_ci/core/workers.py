"""Read workers files into :class:`~.model.WorkerDef` objects.

Worker names follow Buildbot's own rules, checked here so that ``anybox-ci check``
refuses what the master would. A password is a ``secret:NAME`` or, with a warning, a
literal. Any key the schema does not know becomes a worker property.

Secrets belong to whoever wrote the file that names them. ``workers.cfg`` is the admin's
and may name any secret. A fragment in ``workers.d/`` is a worker owner's: it may name only
its worker's own secrets, ``worker-NAME`` and ``worker-NAME.SUFFIX`` (worker names hold no
dot, so no worker can claim another's), both as its ``password = secret:...`` and as a
capability's secret option (``postgresql ... password=worker-NAME.pg15``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path
from types import MappingProxyType

from . import schema
from .capabilities import DEFAULT_CAPABILITIES
from .diagnostics import Diagnostics, did_you_mean
from .inifile import IniFile, Section, read_ini
from .layout import WORKERS_FRAGMENTS
from .lines import parse_offer
from .model import Offer, Password, WorkerDef
from .options import RawValue, canonical_names, raw_options, resolve

SECRET_PREFIX = "secret:"

#: Buildbot's own rule for worker names (``buildbot.util.identifiers.ident_re``)
_WORKER_NAME_RE = re.compile("^[a-zA-Z\u00a0-\U0010ffff_-][a-zA-Z0-9\u00a0-\U0010ffff_-]*$")
_RESERVED_WORKER_NAMES = ("debug", "change", "status")
_MAX_WORKER_NAME = 50
_WORKER_NAMES = canonical_names(schema.WORKER_OPTIONS)

#: the prefix of every secret a worker owner's fragment may name
WORKER_SECRET_PREFIX = "worker-"
_SECRET_SUFFIX_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\Z")
#: capability options whose value names a secret (those of the default registry)
SECRET_OPTIONS: frozenset[str] = frozenset(
    key for spec in DEFAULT_CAPABILITIES.values() for key in spec.secret_env.values()
)


def is_fragment(path: str | Path) -> bool:
    """A worker owner's file (``workers.d/*.cfg``), as opposed to the admin's own."""
    return Path(path).parent.name == WORKERS_FRAGMENTS


def fragment_secret_error(worker: str, secret: str) -> str:
    """Why a fragment defining ``worker`` may not name ``secret``, or an empty string."""
    own = WORKER_SECRET_PREFIX + worker
    if secret == own:
        return ""
    suffix = secret[len(own) + 1 :] if secret.startswith(own + ".") else ""
    if suffix and _SECRET_SUFFIX_RE.match(suffix) and ".." not in suffix:
        return ""
    return (
        f"secret {secret[:100]!r} is not worker {worker!r}'s own: a workers.d fragment may "
        f"only name {own!r} or '{own}.SUFFIX' (SUFFIX: letters, digits, '_', '-', '.')"
    )


def worker_name_error(name: str) -> str:
    """Why Buildbot would refuse this worker name, or an empty string."""
    if not _WORKER_NAME_RE.match(name):
        return "invalid worker name: use letters, digits, '_' and '-', not starting with a digit"
    if name in _RESERVED_WORKER_NAMES:
        return "worker name reserved by Buildbot"
    if len(name) > _MAX_WORKER_NAME:
        return f"worker name longer than {_MAX_WORKER_NAME} characters"
    return ""


def load_workers(
    paths: Sequence[Path], diags: Diagnostics, secret_options: Collection[str] = SECRET_OPTIONS
) -> tuple[WorkerDef, ...]:
    """Read workers files in order; a worker defined twice is an error at the second.

    ``secret_options``: the capability options whose value names a secret (a registry
    extended in master.cfg may add some), checked in fragments like the password."""
    seen: dict[str, tuple[str, int]] = {}
    workers: list[WorkerDef] = []
    for path in paths:
        ini = read_ini(path, diags)
        if ini is None:
            continue
        for name, section in ini.sections.items():
            if name in seen:
                first_path, first_line = seen[name]
                diags.error(
                    ini.path,
                    section.line,
                    name,
                    "",
                    f"worker already defined in {first_path}:{first_line}",
                )
                continue
            seen[name] = (ini.path, section.line)
            worker = _make_worker(section, ini, diags, frozenset(secret_options))
            if worker is not None:
                workers.append(worker)
    return tuple(workers)


def _password(
    text: str | None, raw: dict[str, RawValue], section: Section, diags: Diagnostics
) -> Password | None:
    """The password policy: required; a secret's name, or a literal with a warning."""
    option = schema.PASSWORD.name
    written = next((raw[k] for k in (option, *schema.PASSWORD.aliases) if k in raw), None)
    if not text or written is None:
        diags.error(section.path, section.line, section.name, option, "missing required option")
        return None
    if text.startswith(SECRET_PREFIX):
        secret = text[len(SECRET_PREFIX) :].strip()
        if not secret:
            diags.error(
                written.path,
                written.line,
                section.name,
                option,
                "missing secret name after 'secret:'",
            )
            return None
        if is_fragment(section.path) and (why := fragment_secret_error(section.name, secret)):
            diags.error(written.path, written.line, section.name, option, why)
            return None
        return Password(secret=secret)
    diags.warning(
        written.path,
        written.line,
        section.name,
        option,
        "password written in clear; prefer 'secret:NAME'",
    )
    return Password(literal=text)


def _make_worker(
    section: Section, ini: IniFile, diags: Diagnostics, secret_options: frozenset[str]
) -> WorkerDef | None:
    name, path = section.name, ini.path
    why = worker_name_error(name)
    if why:
        diags.error(path, section.line, name, "", why)
        return None
    raw = raw_options(section, ini.defaults)
    values = resolve(raw, schema.WORKER_OPTIONS, name, diags, names=_WORKER_NAMES, unknown_ok=True)
    ok = values.ok
    for key, value in values.unknown.items():
        hint = did_you_mean(key, list(_WORKER_NAMES))
        if hint:
            diags.warning(
                value.path,
                value.line,
                name,
                key,
                "unknown option, kept as a worker property" + hint,
            )
    password = _password(values.get(schema.PASSWORD), raw, section, diags)
    ok = ok and password is not None
    offers: list[Offer] = []
    cap_raw = raw.get(schema.CAPABILITY.name)
    for line in values.get(schema.CAPABILITY):
        try:
            offer = parse_offer(line)
            if is_fragment(section.path):
                for key in sorted(secret_options & offer.options.keys()):
                    if why := fragment_secret_error(name, offer.options[key]):
                        raise ValueError(f"{key}=: {why}")
            offers.append(offer)
        except ValueError as exc:
            assert cap_raw is not None
            diags.error(
                cap_raw.path,
                cap_raw.line_of(line),
                name,
                schema.CAPABILITY.name,
                f"{exc} in {line!r}",
            )
            ok = False
    if not ok or password is None:
        return None
    return WorkerDef(
        name=name,
        path=path,
        line=section.line,
        password=password,
        offers=tuple(offers),
        max_builds=values.get(schema.MAX_BUILDS),
        notify_on_missing=values.get(schema.NOTIFY_ON_MISSING),
        priority=values.get(schema.PRIORITY),
        build_only_if_requires=values.get(schema.BUILD_ONLY_IF_REQUIRES),
        db_prefix=values.get(schema.DB_PREFIX),
        properties=MappingProxyType({k: v.text for k, v in values.unknown.items()}),
    )


def missing_secrets(
    workers: Sequence[WorkerDef],
    secrets_dir: Path,
    diags: Diagnostics,
    secret_options: Collection[str] = SECRET_OPTIONS,
) -> None:
    """Warn about each secret a worker names that has no file in ``secrets_dir``.

    Only when that folder exists (a master.cfg may use another secrets provider). Such a
    worker cannot log in, or its builds cannot reach their database, until the file exists
    and the master reconfigures."""
    if not secrets_dir.is_dir():
        return
    for worker in workers:
        named = [(schema.PASSWORD.name, worker.password.secret)]
        named += [
            (schema.CAPABILITY.name, offer.options[key])
            for offer in worker.offers
            for key in sorted(secret_options)
            if offer.options.get(key)
        ]
        for option, secret in named:
            if secret and not (secrets_dir / secret).is_file():
                diags.warning(
                    worker.path,
                    worker.line,
                    worker.name,
                    option,
                    f"secret {secret[:100]!r} has no file in {secrets_dir}",
                )
