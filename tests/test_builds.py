from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_dockerhub.builds import (
    AUDIT_HISTORY,
    LEGACY_HISTORY,
    Build,
    BuildState,
    classify_audit_state,
    classify_status,
    is_build_action,
    parse_timestamp,
)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (10, BuildState.SUCCESS),
        (-1, BuildState.FAILED),
        (-2, BuildState.FAILED),
        (-3, BuildState.FAILED),
        (-4, BuildState.CANCELLED),
        (0, BuildState.QUEUED),
        (1, BuildState.QUEUED),
        (11, BuildState.QUEUED),
        *((code, BuildState.BUILDING) for code in range(2, 10)),
    ],
)
def test_known_status_codes_are_classified(status, state):
    assert classify_status(status) is state


@pytest.mark.parametrize("status", [12, 99, None, "10", 10.5, True])
def test_an_unknown_status_is_unknown_and_not_final(status):
    assert classify_status(status) is BuildState.UNKNOWN
    assert not classify_status(status).is_final


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Pending", BuildState.QUEUED),
        ("In progress", BuildState.BUILDING),
        ("In Progress", BuildState.BUILDING),
        ("Success", BuildState.SUCCESS),
        ("Failed", BuildState.FAILED),
        ("Canceled", BuildState.CANCELLED),
        ("Something new", BuildState.UNKNOWN),
        (None, BuildState.UNKNOWN),
    ],
)
def test_audit_states_are_classified(state, expected):
    assert classify_audit_state(state) is expected


@pytest.mark.parametrize(
    "value",
    [
        "2018-04-24T13:34:33.654759Z",
        "2018-04-24T13:34:33.654759+00:00",
        "Tue, 24 Apr 2018 13:34:33 +0000",
        1524576873.654759,
    ],
)
def test_timestamps_in_every_form_docker_hub_used(value):
    parsed = parse_timestamp(value)
    assert parsed.tzinfo is not None
    assert parsed.replace(microsecond=0) == datetime(2018, 4, 24, 13, 34, 33, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", [None, "", "yesterday", [], True])
def test_unreadable_timestamps_give_none(value):
    assert parse_timestamp(value) is None


def test_legacy_item_keeps_its_raw_fields(fixture_json):
    item = fixture_json("buildhistory-legacy-item-failed-axibase.json")
    build = Build.from_legacy("axibase", "atsd", item)
    assert build.state is BuildState.FAILED
    assert build.tag == "latest"
    assert build.build_key == "beedjaiuvjxk5m37uxjorja"
    assert build.source == LEGACY_HISTORY
    assert build.raw == item
    assert build.repo_name == "axibase/atsd"
    assert build.last_updated == datetime(2018, 4, 24, 13, 36, 39, 537606, tzinfo=timezone.utc)


def test_audit_object_is_read_with_its_own_field_names():
    item = {
        "action": "Build",
        "build_tag": "v2",
        "build_code": "bcode",
        "state": "Failed",
        "created": "Wed, 17 Sep 2014 08:26:22 +0000",
        "end_date": "Wed, 17 Sep 2014 08:30:00 +0000",
        "uuid": "u-1",
    }
    build = Build.from_source(AUDIT_HISTORY, "acme", "app", item)
    assert (build.tag, build.state, build.build_key, build.source) == (
        "v2",
        BuildState.FAILED,
        "bcode",
        "audit",
    )
    assert build.last_updated == datetime(2014, 9, 17, 8, 30, tzinfo=timezone.utc)


def test_pushes_in_the_audit_history_are_not_builds():
    assert not is_build_action({"action": "Repository Push", "build_tag": "latest"})
    assert is_build_action({"action": "Build", "build_tag": "latest"})
    assert not is_build_action({"action": "Build"})
