from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.ledger import AlertRecord

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def summary(event_id, updated):
    return {
        "event_id": event_id,
        "repository": "acme/app",
        "tag": "latest",
        "build": f"code-{event_id}",
        "kind": "failed",
        "build_updated": updated.isoformat(),
    }


def test_delivered_alerts_are_remembered_and_counted_once():
    record = AlertRecord()
    assert record.mark_delivered([summary("a", NOW), summary("b", NOW)], NOW) == 2
    assert record.mark_delivered([summary("a", NOW)], NOW) == 0
    assert record.was_delivered("a") and record.was_delivered("b") and not record.was_delivered("c")


def test_record_survives_a_round_trip_through_storage():
    record = AlertRecord()
    record.mark_delivered([summary("a", NOW)], NOW)
    again = AlertRecord.from_stored(record.to_stored(), "the test variable")
    assert again.entries == record.entries
    assert again.entries["a"]["repository"] == "acme/app"


def test_entries_of_builds_too_old_to_alert_are_pruned():
    record = AlertRecord()
    record.mark_delivered(
        [summary("old", NOW - timedelta(days=3)), summary("new", NOW - timedelta(hours=1))], NOW
    )
    assert record.prune(NOW, timedelta(hours=24)) == 1
    assert list(record.entries) == ["new"]


@pytest.mark.parametrize("stored", [None, ""])
def test_nothing_stored_is_an_empty_record(stored):
    assert AlertRecord.from_stored(stored, "x").entries == {}


@pytest.mark.parametrize("stored", [[1, 2], {"a": 1}, "text"])
def test_unreadable_record_names_its_setting(stored):
    with pytest.raises(ValueError, match="dockerhub_alert_record"):
        AlertRecord.from_stored(stored, "the dockerhub_alert_record variable")
