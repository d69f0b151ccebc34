from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.alerts import Alert, AlertKind, Thresholds, alert_kind, due_alerts, latest_per_tag
from airflow_dockerhub.builds import Build

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def build(status, *, tag="latest", repo="app", created_ago=30, updated_ago=None, code=None):
    created = NOW - timedelta(minutes=created_ago)
    updated = NOW - timedelta(minutes=created_ago if updated_ago is None else updated_ago)
    item = {
        "id": abs(hash((repo, tag, created_ago, status))) % 10**8,
        "status": status,
        "created_date": created.isoformat().replace("+00:00", "Z"),
        "last_updated": updated.isoformat().replace("+00:00", "Z"),
        "build_code": code or f"b{repo}{tag}{created_ago}",
        "dockertag_name": tag,
        "cause": None,
    }
    return Build.from_legacy("acme", repo, item)


@pytest.mark.parametrize(
    ("status", "created_ago", "expected"),
    [
        (-1, 30, AlertKind.FAILED),
        (-2, 30, AlertKind.FAILED),
        (-4, 30, AlertKind.CANCELLED),
        (10, 30, None),
        (0, 59, None),
        (0, 61, AlertKind.QUEUED_TOO_LONG),
        (1, 61, AlertKind.QUEUED_TOO_LONG),
        (11, 61, AlertKind.QUEUED_TOO_LONG),
        (3, 119, None),
        (3, 121, AlertKind.BUILDING_TOO_LONG),
        # A code Docker Hub has not been seen to send, or none: a malformed answer, never an alert.
        (42, 121, None),
        (None, 500, None),
    ],
)
def test_alert_kind_follows_state_and_default_thresholds(status, created_ago, expected):
    assert alert_kind(build(status, created_ago=created_ago, updated_ago=1), NOW, Thresholds()) is expected


def test_builds_not_updated_within_the_window_are_ignored():
    old = build(-1, created_ago=25 * 60)
    assert alert_kind(old, NOW, Thresholds()) is None
    assert alert_kind(old, NOW, Thresholds(max_age_hours=26)) is AlertKind.FAILED


def test_thresholds_are_configurable():
    queued = build(0, created_ago=20, updated_ago=20)
    assert alert_kind(queued, NOW, Thresholds(queued_minutes=15)) is AlertKind.QUEUED_TOO_LONG
    running = build(4, created_ago=20, updated_ago=2)
    assert alert_kind(running, NOW, Thresholds(building_minutes=15)) is AlertKind.BUILDING_TOO_LONG


@pytest.mark.parametrize("bad", [0, -5, "60", None, True])
def test_thresholds_reject_non_positive_numbers(bad):
    with pytest.raises(ValueError, match="queued_minutes"):
        Thresholds(queued_minutes=bad)


def test_a_failure_of_one_tag_does_not_hide_behind_a_success_of_another():
    builds = [build(10, tag="v1", created_ago=5), build(-1, tag="latest", created_ago=30)]
    alerts = due_alerts(builds, NOW, Thresholds())
    assert [(a.build.tag, a.kind) for a in alerts] == [("latest", AlertKind.FAILED)]


def test_a_later_success_of_the_same_tag_clears_the_failure():
    builds = [build(10, created_ago=5), build(-1, created_ago=30)]
    assert due_alerts(builds, NOW, Thresholds()) == []


def test_latest_per_tag_picks_the_newest_whatever_the_order():
    older, newer = build(-1, created_ago=30), build(10, created_ago=5)
    assert latest_per_tag([older, newer]) == [newer]
    assert latest_per_tag([newer, older]) == [newer]


def test_event_id_is_stable_and_differs_per_build_and_kind():
    failed = build(-1, code="code-1")
    same = Alert(AlertKind.FAILED, build(-1, code="code-1"))
    assert Alert(AlertKind.FAILED, failed).event_id == same.event_id
    assert (
        Alert(AlertKind.FAILED, failed).event_id != Alert(AlertKind.FAILED, build(-1, code="code-2")).event_id
    )
    assert Alert(AlertKind.FAILED, failed).event_id != Alert(AlertKind.CANCELLED, failed).event_id
