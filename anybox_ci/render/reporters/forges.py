"""The commit status reporter classes, per forge: one for the cells, one for the aggregate.

GitHub and GitLab use Buildbot's own reporters. Buildbot has no Gitea reporter in core, but
Gitea's status API is GitHub's under ``/api/v1``: :class:`GiteaStatusPush` adapts the GitHub one.
Each aggregate class is the forge's cell reporter under :class:`.service.BuildoutAggregateMixin`.
"""

from __future__ import annotations

from typing import Any

from buildbot import config
from buildbot.reporters.github import GitHubStatusPush
from buildbot.reporters.gitlab import GitLabStatusPush
from twisted.internet import defer

from .service import BuildoutAggregateMixin

__all__ = [
    "AGGREGATE_CLASSES",
    "CELL_CLASSES",
    "FORGES",
    "GitHubBuildoutStatusPush",
    "GitLabBuildoutStatusPush",
    "GiteaBuildoutStatusPush",
    "GiteaStatusPush",
]

FORGES = ("github", "gitlab", "gitea")


class GiteaStatusPush(GitHubStatusPush):
    """Commit statuses on Gitea (and Forgejo).

    Gitea serves GitHub's commit status API (``POST /repos/{owner}/{repo}/statuses/{sha}``,
    states ``pending``, ``success``, ``error``, ``failure``, ``Authorization: token ...``) under
    ``/api/v1``, so this is Buildbot's GitHub reporter pointed there. ``baseURL`` is the Gitea
    root URL (``https://gitea.example.com``) and is required.
    """

    name: str | None = "GiteaStatusPush"

    def checkConfig(
        self, token: Any, context: Any = None, baseURL: str | None = None, *args: Any, **kwargs: Any
    ) -> None:
        if not baseURL:
            config.error(f"{type(self).__name__}: baseURL (the Gitea root URL) is required")
        super().checkConfig(token, context, baseURL, *args, **kwargs)

    def reconfigService(
        self, token: Any, context: Any = None, baseURL: str | None = None, *args: Any, **kwargs: Any
    ) -> defer.Deferred[None]:
        return super().reconfigService(
            token, context, _gitea_api_url(baseURL or ""), *args, **kwargs
        )


def _gitea_api_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


class GitHubBuildoutStatusPush(BuildoutAggregateMixin, GitHubStatusPush):
    """The aggregate status of a buildout on GitHub."""

    name: str | None = "GitHubBuildoutStatusPush"


class GiteaBuildoutStatusPush(BuildoutAggregateMixin, GiteaStatusPush):
    """The aggregate status of a buildout on Gitea."""

    name: str | None = "GiteaBuildoutStatusPush"


class GitLabRevisionStatusPush(GitLabStatusPush):
    """Buildbot's GitLab reporter, skipping sourcestamps without a revision.

    A build of several codebases has sourcestamps for the repositories that did not change,
    without a revision; Buildbot's reporter would post their status to ``statuses/None``
    (GitHub's skips them). No project id means "nothing to report" to it."""

    name: str | None = "GitLabRevisionStatusPush"

    def getProjectId(self, sourcestamp: dict[str, Any]) -> Any:
        if not sourcestamp.get("revision"):
            return defer.succeed(None)
        return super().getProjectId(sourcestamp)


class GitLabBuildoutStatusPush(BuildoutAggregateMixin, GitLabRevisionStatusPush):
    """The aggregate status of a buildout on GitLab (which shows ``running`` too)."""

    name: str | None = "GitLabBuildoutStatusPush"
    reports_running = True


#: Per forge, the reporter of one status per cell.
CELL_CLASSES: dict[str, type[Any]] = {
    "github": GitHubStatusPush,
    "gitlab": GitLabRevisionStatusPush,
    "gitea": GiteaStatusPush,
}
#: Per forge, the reporter of the buildout's aggregate status.
AGGREGATE_CLASSES: dict[str, type[Any]] = {
    "github": GitHubBuildoutStatusPush,
    "gitlab": GitLabBuildoutStatusPush,
    "gitea": GiteaBuildoutStatusPush,
}
