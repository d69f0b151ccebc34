from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_dockerhub.alerts import AlertKind
from airflow_dockerhub.builds import Build
from airflow_dockerhub.payloads import REPOSITORY_STATUS, webhook_payload


def test_failed_payload_matches_the_original_on_error_webhook_field_for_field(fixture_json):
    item = fixture_json("buildhistory-legacy-item-failed-axibase.json")
    expected = fixture_json("axibase-synthetic-webhook-on-error.json")
    build = Build.from_legacy("axibase", "atsd", item)
    detected = datetime.fromtimestamp(expected["push_data"]["pushed_at"], tz=timezone.utc)

    payload = webhook_payload(build, REPOSITORY_STATUS[AlertKind.FAILED], detected)

    assert payload == expected
    assert isinstance(payload["push_data"]["pushed_at"], int)
    assert "callback_url" not in payload


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (AlertKind.QUEUED_TOO_LONG, "Queued"),
        (AlertKind.BUILDING_TOO_LONG, "Building"),
        (AlertKind.CANCELLED, "Cancelled"),
    ],
)
def test_repository_status_names_the_problem(fixture_json, kind, status):
    item = fixture_json("derived-buildhistory-legacy-queued.json")["results"][0]
    payload = webhook_payload(
        Build.from_legacy("acme", "app", item), REPOSITORY_STATUS[kind], datetime.now(timezone.utc)
    )
    assert payload["repository"]["status"] == status
    assert payload["build_history"] == item
    assert payload["push_data"]["pusher"] == "acme"
    assert payload["repository"]["repo_url"] == "https://hub.docker.com/r/acme/app"
