"""Shape the webhook Docker Hub does not send: its push webhook, told that a build went wrong."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_dockerhub.alerts import AlertKind

if TYPE_CHECKING:
    from airflow_dockerhub.builds import Build

#: ``repository.status`` for each alert kind. Docker Hub's own push webhook says "Active"; the
#: synthetic one says what went wrong instead.
REPOSITORY_STATUS = {
    AlertKind.FAILED: "Failed",
    AlertKind.CANCELLED: "Cancelled",
    AlertKind.QUEUED_TOO_LONG: "Queued",
    AlertKind.BUILDING_TOO_LONG: "Building",
}

#: The value of the event header, so a receiver can route without parsing the body.
EVENT_NAMES = {
    AlertKind.FAILED: "build.failed",
    AlertKind.CANCELLED: "build.cancelled",
    AlertKind.QUEUED_TOO_LONG: "build.queued_too_long",
    AlertKind.BUILDING_TOO_LONG: "build.building_too_long",
}

HUB_WEB_URL = "https://hub.docker.com"


def repository_url(repo_name: str) -> str:
    """Link to a repository's page on Docker Hub."""
    return f"{HUB_WEB_URL}/r/{repo_name}"


def build_url(repo_name: str, build_code: str) -> str:
    """Link to one build's page on Docker Hub."""
    return f"{repository_url(repo_name)}/builds/{build_code}"


def webhook_payload(build: Build, status: str, detected_at: datetime) -> dict[str, Any]:
    """
    Build the JSON body of the webhook for one build.

    It has the fields of Docker Hub's push webhook that describe the repository, with
    ``repository.status`` naming the problem, and a ``build_history`` object holding the build's own
    fields exactly as Docker Hub returned them. ``callback_url`` is left out on purpose: nothing
    should call Docker Hub back about a synthetic event.

    :param build: the build to describe.
    :param status: the word for ``repository.status``, such as ``Failed`` (see :data:`REPOSITORY_STATUS`).
    :param detected_at: when the monitor noticed the problem; becomes ``push_data.pushed_at``.
    """
    return {
        "push_data": {
            "pushed_at": int(detected_at.timestamp()),
            "images": [],
            "tag": build.tag,
            "pusher": build.namespace,
        },
        "repository": {
            "status": status,
            "repo_url": repository_url(build.repo_name),
            "owner": build.namespace,
            "name": build.repository,
            "namespace": build.namespace,
            "repo_name": build.repo_name,
        },
        "build_history": dict(build.raw),
    }
