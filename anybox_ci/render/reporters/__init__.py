"""Commit statuses per buildout on GitHub, GitLab or Gitea.

:func:`status_reporters` gives, for one buildout, the ``c['services']`` entries that post:

1. one status per cell (context: the builder name), with the forge's reporter of
   :mod:`.forges`;
2. one aggregate status per buildout and revision under the stable context
   ``anybox-ci/<buildout>``, meant for branch protection: pending while a cell of the buildout
   is pending or running for that revision, failure (GitLab: ``failed``; GitHub and Gitea:
   ``error`` for exceptions and cancellations) when all are done and one did not pass,
   success when all passed. :mod:`.aggregate` computes it, :mod:`.service` feeds it events and
   data API reads.

The token must be a Buildbot secret (``util.Secret('name')`` or
``util.Interpolate('%(secret:name)s')``): it is rendered only for the HTTP header, never stored
in build properties or written to logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from buildbot.interfaces import IRenderable
from buildbot.process.properties import Interpolate

from .aggregate import AGGREGATE_CONTEXT_PREFIX, BuildoutCells, CellState, aggregate_context
from .forges import (
    AGGREGATE_CLASSES,
    CELL_CLASSES,
    FORGES,
    GiteaBuildoutStatusPush,
    GiteaStatusPush,
    GitHubBuildoutStatusPush,
    GitLabBuildoutStatusPush,
)
from .service import status_generators

__all__ = [
    "AGGREGATE_CONTEXT_PREFIX",
    "FORGES",
    "BuildoutCells",
    "CellState",
    "GitHubBuildoutStatusPush",
    "GitLabBuildoutStatusPush",
    "GiteaBuildoutStatusPush",
    "GiteaStatusPush",
    "aggregate_context",
    "status_reporters",
]


def status_reporters(
    forge: str,
    base_url: str,
    token: IRenderable,
    builders: Sequence[str],
    buildout: str,
    *,
    verbose: bool = False,
) -> list[Any]:
    """The ``c['services']`` reporters posting one buildout's commit statuses.

    - ``forge``: ``github``, ``gitlab`` or ``gitea``.
    - ``base_url``: the API root: ``https://api.github.com`` (GitHub Enterprise:
      ``https://HOST/api/v3``), ``https://gitlab.com``, or the Gitea root URL.
    - ``token``: a Buildbot secret, ``util.Secret('name')`` or
      ``util.Interpolate('%(secret:name)s')``; a plain string is refused, so that tokens never
      sit in master.cfg.
    - ``builders``: the buildout's cells. ``buildout``: its name (the aggregate context suffix).

    The target repository comes from each build's sourcestamps, as in Buildbot: ``project``
    written ``owner/name``, or else the repository URL.
    """
    if forge not in FORGES:
        raise ValueError(f"unknown forge {forge!r}: expected one of {', '.join(FORGES)}")
    if not IRenderable.providedBy(token):
        raise ValueError(
            "the forge token must be a Buildbot secret: util.Secret('NAME') or "
            "util.Interpolate('%(secret:NAME)s'), not a string"
        )
    if not builders:
        raise ValueError(f"buildout {buildout!r}: no builders to report on")
    names = sorted(set(builders))
    cell = CELL_CLASSES[forge](
        token,
        context=Interpolate("%(prop:buildername)s"),
        baseURL=base_url,
        verbose=verbose,
        generators=status_generators(names),
        name=f"anybox-ci-status-{forge}-{buildout}-cells",
    )
    aggregate = AGGREGATE_CLASSES[forge](
        token,
        buildout=buildout,
        builders=names,
        baseURL=base_url,
        verbose=verbose,
        name=f"anybox-ci-status-{forge}-{buildout}",
    )
    return [cell, aggregate]
