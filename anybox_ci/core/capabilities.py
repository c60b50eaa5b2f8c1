"""The capability registry: what a worker's capability line means for a build.

A capability gives the cell a version property (``pg_version``), an abbreviation for
builder names (``pg``) and environment variables made from the options the worker
declared (``port=5433`` becomes ``PGPORT``). master.cfg can add or replace entries by
passing ``capabilities=`` to the configurator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class CapabilitySpec:
    name: str
    abbrev: str
    version_prop: str
    #: environment variable -> capability option whose value it takes
    env: Mapping[str, str] = field(default_factory=dict)
    #: environment variable -> capability option prepended to it (PATH-like)
    prepend_env: Mapping[str, str] = field(default_factory=dict)
    #: environment variable -> capability option naming a Buildbot secret
    secret_env: Mapping[str, str] = field(default_factory=dict)


def _env_name(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "_", text).upper()


def generic_spec(name: str) -> CapabilitySpec:
    """Spec of a capability that nobody registered: options become ``NAME_OPTION``."""
    return CapabilitySpec(name=name, abbrev=name, version_prop=f"{_env_name(name).lower()}_version")


DEFAULT_CAPABILITIES: Mapping[str, CapabilitySpec] = MappingProxyType(
    {
        "postgresql": CapabilitySpec(
            name="postgresql",
            abbrev="pg",
            version_prop="pg_version",
            env={"PGPORT": "port", "PGHOST": "host", "PGUSER": "user"},
            prepend_env={"PATH": "bin", "LD_LIBRARY_PATH": "lib"},
            secret_env={"PGPASSWORD": "password"},
        ),
        "python": CapabilitySpec(
            name="python",
            abbrev="py",
            version_prop="py_version",
            prepend_env={"PATH": "bin"},
        ),
        "wkhtmltopdf": CapabilitySpec(
            name="wkhtmltopdf",
            abbrev="wkhtmltopdf",
            version_prop="wkhtml2pdf_version",
            env={"DISPLAY": "display"},
        ),
    }
)


@dataclass(frozen=True)
class CapabilityRegistry:
    specs: Mapping[str, CapabilitySpec] = field(default_factory=lambda: DEFAULT_CAPABILITIES)

    def get(self, name: str) -> CapabilitySpec:
        return self.specs.get(name) or generic_spec(name)

    def env_for(self, name: str, options: Mapping[str, str]) -> dict[str, str]:
        """Plain variables for a capability's options (prepend and secrets excluded)."""
        spec = self.get(name)
        if spec.env:
            return {var: options[key] for var, key in spec.env.items() if key in options}
        handled = set(spec.prepend_env.values()) | set(spec.secret_env.values())
        prefix = _env_name(name)
        return {f"{prefix}_{_env_name(k)}": v for k, v in options.items() if k not in handled}

    def extended(self, extra: Mapping[str, CapabilitySpec]) -> CapabilityRegistry:
        return CapabilityRegistry(MappingProxyType({**self.specs, **extra}))
