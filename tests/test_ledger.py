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


def test_delivered_alerts_are_remembered_per_target_and_counted_once():
    record = AlertRecord()
    assert record.mark_delivered(summary("a", NOW), "hook", NOW)
    assert record.mark_delivered(summary("b", NOW), "hook", NOW)
    assert not record.mark_delivered(summary("a", NOW), "hook", NOW)
    assert record.was_delivered("a", "hook") and record.was_delivered("b", "hook")
    assert not record.was_delivered("c", "hook") and not record.was_delivered("a", "slack")
    assert record.mark_delivered(summary("a", NOW), "slack", NOW)


def test_reminders_and_resolution_are_kept_per_target():
    record = AlertRecord()
    record.mark_delivered(summary("a", NOW), "hook", NOW)
    assert record.last_contact("a", "hook") == (0, NOW)
    later = NOW + timedelta(hours=4)
    record.mark_reminded("a", "hook", later)
    assert record.last_contact("a", "hook") == (1, later)
    assert "a" in record.unresolved()
    record.mark_resolved("a", later)
    record.mark_resolved_delivered("a", "hook", later)
    assert record.unresolved() == {}
    assert record.entries["a"]["resolved"] == {"hook": later.isoformat()}


def test_a_record_from_before_targets_counts_as_delivered_to_the_first_target():
    old = {
        "a": {
            "repository": "acme/app",
            "tag": "latest",
            "build": "b",
            "kind": "failed",
            "build_updated": NOW.isoformat(),
            "delivered_at": NOW.isoformat(),
        }
    }
    record = AlertRecord.from_stored(old, "v")
    assert record.was_delivered("a", "dockerhub_notify")


def test_record_survives_a_round_trip_through_storage():
    record = AlertRecord()
    record.mark_delivered(summary("a", NOW), "hook", NOW)
    again = AlertRecord.from_stored(record.to_stored(), "the test variable")
    assert again.entries == record.entries
    assert again.entries["a"]["repository"] == "acme/app"


def test_entries_of_builds_too_old_to_alert_are_pruned():
    record = AlertRecord()
    record.mark_delivered(summary("old", NOW - timedelta(days=3)), "hook", NOW)
    record.mark_delivered(summary("new", NOW - timedelta(hours=1)), "hook", NOW)
    assert record.prune(NOW, timedelta(hours=24)) == 1
    assert list(record.entries) == ["new"]


@pytest.mark.parametrize("stored", [None, ""])
def test_nothing_stored_is_an_empty_record(stored):
    assert AlertRecord.from_stored(stored, "x").entries == {}


@pytest.mark.parametrize("stored", [[1, 2], {"a": 1}, "text"])
def test_unreadable_record_names_its_setting(stored):
    with pytest.raises(ValueError, match="dockerhub_alert_record"):
        AlertRecord.from_stored(stored, "the dockerhub_alert_record variable")


def test_an_entry_without_its_repository_names_the_variable():
    with pytest.raises(ValueError, match="the v variable.*'a'.*repository"):
        AlertRecord.from_stored({"a": {"tag": "latest", "build": "b", "kind": "failed"}}, "the v variable")
