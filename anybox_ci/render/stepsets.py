"""The standard step-set registry, and what master.cfg needs to extend it.

``db-steps``, ``post-dl-steps`` and ``post-buildout-steps`` name step sets; the names and
what each needs are in :mod:`anybox_ci.core.stepset_catalogue`, the implementations in
``steps_db``, ``steps_odoo`` and ``steps_generic``. master.cfg adds its own with
``register`` (on a copy: ``DEFAULT_STEP_SETS.copy()``) and passes the registry to the
configurator.
"""

from __future__ import annotations

from . import steps_db, steps_generic, steps_odoo, steps_release
from .steps_db import cleanup_steps
from .stepset_registry import (
    TESTING_DB,
    StepContext,
    StepSet,
    StepSets,
    util_argv,
)

DEFAULT_STEP_SETS = StepSets()
for _spec, _func in (
    *steps_db.STEP_SETS,
    *steps_odoo.STEP_SETS,
    *steps_generic.STEP_SETS,
    *steps_release.STEP_SETS,
):
    DEFAULT_STEP_SETS.implement(_spec)(_func)

register = DEFAULT_STEP_SETS.register

__all__ = [
    "DEFAULT_STEP_SETS",
    "TESTING_DB",
    "StepContext",
    "StepSet",
    "StepSets",
    "cleanup_steps",
    "register",
    "util_argv",
]
