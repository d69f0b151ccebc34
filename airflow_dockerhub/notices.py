"""Notices: what the monitor tells people about a build, before any target's format shapes it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_dockerhub.alerts import Alert, AlertKind
from airflow_dockerhub.builds import Build, BuildState
from airflow_dockerhub.payloads import EVENT_NAMES, REPOSITORY_STATUS

RESOLVED_EVENT = "build.resolved"
REMINDER_EVENT = "build.reminder"
TEST_EVENT = "build.test"
RETRY_EVENTS = {"not_honored": "build.retry_not_honored", "refused": "build.retry_refused"}
RESOLVED_STATUS = "Resolved"


@dataclass(frozen=True)
class Notice:
    """
    One thing to tell the targets about one build.

    :param event: the event name receivers route on (``build.failed``, ``build.resolved``, ...).
    :param status: the word for ``repository.status``: what is wrong, or ``Resolved``.
    :param build: the build the notice is about; for a resolved notice, the build that succeeded.
    :param notice_id: identifies this notice; the same on every attempt to deliver it.
    :param alert_id: the event id of the alert the notice belongs to.
    :param test: a synthetic notice sent to check the delivery path.
    :param related: every alert the notice is about, when there are several (a resolved notice
        covers all alerts of its tag); empty means just ``alert_id``.
    :param number: for a reminder, which one it is (1 for the first).
    """

    event: str
    status: str
    build: Build
    notice_id: str
    alert_id: str
    test: bool = False
    related: tuple[str, ...] = ()
    number: int = 0

    @property
    def alert_ids(self) -> tuple[str, ...]:
        """Every alert the notice is about: ``related``, else just ``alert_id``."""
        return self.related or (self.alert_id,)

    @classmethod
    def for_alert(cls, alert: Alert) -> Notice:
        """Announce an alert."""
        return cls(
            event=EVENT_NAMES[alert.kind],
            status=REPOSITORY_STATUS[alert.kind],
            build=alert.build,
            notice_id=alert.event_id,
            alert_id=alert.event_id,
        )

    @classmethod
    def resolved(cls, alert_ids: Sequence[str], success: Build) -> Notice:
        """Say that a later build of an alerted tag succeeded, once for all the tag's alerts."""
        key = f"{success.repo_name}:{success.tag}:{success.build_key}"
        return cls(
            event=RESOLVED_EVENT,
            status=RESOLVED_STATUS,
            build=success,
            notice_id=_derived_id(key, "resolved"),
            alert_id=alert_ids[0],
            related=tuple(alert_ids),
        )

    @classmethod
    def reminder(cls, alert: Alert, number: int) -> Notice:
        """Remind that an alerted build is still the newest build of its tag."""
        return cls(
            event=REMINDER_EVENT,
            status=REPOSITORY_STATUS[alert.kind],
            build=alert.build,
            notice_id=_derived_id(alert.event_id, f"reminder-{number}"),
            alert_id=alert.event_id,
            number=number,
        )

    @classmethod
    def retry_problem(cls, alert_id: str, failed: Build, outcome: str) -> Notice:
        """Say that a rebuild of a failed build was refused, or asked for and never started."""
        return cls(
            event=RETRY_EVENTS[outcome],
            status=REPOSITORY_STATUS[AlertKind.FAILED],
            build=failed,
            notice_id=_derived_id(alert_id, f"retry-{outcome}"),
            alert_id=alert_id,
        )

    @classmethod
    def test_failure(cls, namespace: str, repository: str, tag: str, now: datetime, run_id: str) -> Notice:
        """Make up a failed build to check that notices reach every target."""
        started = now - timedelta(minutes=2)
        raw = {
            "id": 0,
            "status": -1,
            "created_date": _iso(started),
            "last_updated": _iso(now),
            "build_code": "test",
            "dockertag_name": tag,
            "cause": "TEST_ALERT",
        }
        build = Build(
            namespace=namespace,
            repository=repository,
            tag=tag,
            state=BuildState.FAILED,
            build_key="test",
            created=started,
            last_updated=now,
            source="legacy",
            raw=raw,
        )
        notice_id = _derived_id(f"{namespace}/{repository}:{tag}", f"test-{run_id}")
        return cls(
            event=TEST_EVENT,
            status=REPOSITORY_STATUS[AlertKind.FAILED],
            build=build,
            notice_id=notice_id,
            alert_id=notice_id,
            test=True,
        )


def _derived_id(base: str, suffix: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dockerhub-build-notice:{base}:{suffix}"))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
