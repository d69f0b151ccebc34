"""Decide which builds deserve an alert: failed, cancelled, queued too long or building too long."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_dockerhub.builds import Build, BuildState


class AlertKind(str, enum.Enum):
    """Why a build is worth telling someone about."""

    FAILED = "failed"
    CANCELLED = "cancelled"
    QUEUED_TOO_LONG = "queued_too_long"
    BUILDING_TOO_LONG = "building_too_long"


@dataclass(frozen=True)
class Thresholds:
    """
    The limits a build is judged against.

    :param queued_minutes: a queued build alerts once this many minutes passed since ``created_date``.
    :param building_minutes: a running build alerts once this many minutes passed since ``created_date``.
    :param max_age_hours: builds Docker Hub last updated longer ago than this are ignored, so a first
        run does not replay old history.
    """

    queued_minutes: float = 60
    building_minutes: float = 120
    max_age_hours: float = 24

    def __post_init__(self) -> None:
        """Reject a threshold that is not a positive number."""
        for name in ("queued_minutes", "building_minutes", "max_age_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Threshold {name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class Alert:
    """
    One alert about one build.

    :param kind: why the build alerts.
    :param build: the build in question.
    """

    kind: AlertKind
    build: Build

    @property
    def key(self) -> str:
        """Name the alert readably: the same build in the same condition always has the same key."""
        return f"{self.build.repo_name}:{self.build.tag}:{self.build.build_key}:{self.kind.value}"

    @property
    def event_id(self) -> str:
        """Identify the alert for receivers; stable across runs, retries and re-deliveries."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dockerhub-build-alert:{self.key}"))


def latest_per_tag(builds: Iterable[Build]) -> list[Build]:
    """
    Keep the newest build of every repository and tag.

    A repository's newest build may be of another tag than the one that failed; looking at each tag
    separately keeps a failure of one tag from hiding behind a success of another. Builds come newest
    first from Docker Hub, so among builds with the same creation time the first one wins.

    :param builds: builds of any number of repositories, in the order Docker Hub listed them.
    """
    latest: dict[tuple[str, str], Build] = {}
    for build in builds:
        key = (build.repo_name, build.tag)
        current = latest.get(key)
        if current is None or _is_newer(build, current):
            latest[key] = build
    return list(latest.values())


def _is_newer(candidate: Build, current: Build) -> bool:
    if candidate.created is None or current.created is None:
        return False
    return candidate.created > current.created


def alert_kind(build: Build, now: datetime, thresholds: Thresholds) -> AlertKind | None:
    """
    Tell which alert, if any, a build raises at a given moment.

    :param build: the newest build of its tag.
    :param now: the moment of evaluation (aware).
    :param thresholds: the limits to judge against.
    """
    updated = build.last_updated or build.created
    if updated is None or now - updated > timedelta(hours=thresholds.max_age_hours):
        return None

    if build.state is BuildState.FAILED:
        return AlertKind.FAILED
    if build.state is BuildState.CANCELLED:
        return AlertKind.CANCELLED
    if build.created is None:
        return None
    waited = now - build.created
    if build.state is BuildState.QUEUED and waited > timedelta(minutes=thresholds.queued_minutes):
        return AlertKind.QUEUED_TOO_LONG
    if build.state is BuildState.BUILDING and waited > timedelta(minutes=thresholds.building_minutes):
        return AlertKind.BUILDING_TOO_LONG
    return None


def due_alerts(builds: Iterable[Build], now: datetime, thresholds: Thresholds) -> list[Alert]:
    """
    List the alerts the newest build of every tag raises now, whether or not they were sent before.

    :param builds: builds as read from Docker Hub, any number per tag.
    :param now: the moment of evaluation (aware).
    :param thresholds: the limits to judge against.
    """
    alerts = []
    for build in latest_per_tag(builds):
        kind = alert_kind(build, now, thresholds)
        if kind is not None:
            alerts.append(Alert(kind=kind, build=build))
    return sorted(alerts, key=lambda alert: alert.key)
