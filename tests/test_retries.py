from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.alerts import Alert, AlertKind
from airflow_dockerhub.build_triggers import BuildTrigger, find_trigger, parse_trigger_table
from airflow_dockerhub.builds import Build
from airflow_dockerhub.retries import RetryPolicy, rebuilds_due, retry_outcomes

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
URL = "https://registry.hub.docker.com/u/acme/app/trigger/0000-secret-token/"
TABLE = {"acme/app": BuildTrigger(URL)}


def failed(tag="latest", code="f1", repo="app", created=NOW - timedelta(minutes=10), status=-1):
    item = {
        "id": 1,
        "status": status,
        "created_date": created.isoformat(),
        "last_updated": created.isoformat(),
        "build_code": code,
        "dockertag_name": tag,
        "cause": None,
    }
    return Build.from_legacy("acme", repo, item)


def entry(build, requested_at=None, outcome=None):
    value = {"repository": build.repo_name, "tag": build.tag, "build": build.build_key, "kind": "failed"}
    if requested_at:
        value["retry"] = {"requested_at": requested_at.isoformat(), "outcome": outcome, "notified": {}}
    return value


def test_a_failed_build_with_a_trigger_is_rebuilt_by_its_tag_only():
    alert = Alert(AlertKind.FAILED, failed(tag="1.2"))
    [rebuild] = rebuilds_due([alert], {}, TABLE, RetryPolicy(), NOW, paused=False)
    assert rebuild == {"retry_id": alert.event_id, "repository": "acme/app", "tag": "1.2", "build": "f1"}
    assert TABLE["acme/app"].request_body("1.2") == {"docker_tag": "1.2"}


def test_no_rebuild_without_a_trigger_for_cancellations_or_during_an_incident():
    assert (
        rebuilds_due([Alert(AlertKind.FAILED, failed(repo="other"))], {}, TABLE, RetryPolicy(), NOW, False)
        == []
    )
    assert (
        rebuilds_due([Alert(AlertKind.CANCELLED, failed(status=-4))], {}, TABLE, RetryPolicy(), NOW, False)
        == []
    )
    assert rebuilds_due([Alert(AlertKind.FAILED, failed())], {}, TABLE, RetryPolicy(), NOW, paused=True) == []
    assert (
        rebuilds_due([Alert(AlertKind.FAILED, failed())], {}, TABLE, RetryPolicy(limit=0), NOW, False) == []
    )


def test_the_limit_counts_requests_per_tag_within_the_window():
    first = failed(code="f1", created=NOW - timedelta(hours=2))
    second = Alert(AlertKind.FAILED, failed(code="f2"))
    entries = {"a1": entry(first, requested_at=NOW - timedelta(hours=1), outcome="honored")}

    assert rebuilds_due([second], entries, TABLE, RetryPolicy(limit=1), NOW, False) == []
    assert len(rebuilds_due([second], entries, TABLE, RetryPolicy(limit=2), NOW, False)) == 1
    assert (
        len(rebuilds_due([second], entries, TABLE, RetryPolicy(limit=1, window_hours=0.5), NOW, False)) == 1
    )


def test_one_request_per_repository_every_five_minutes():
    other_tag = failed(tag="edge", code="e1")
    entries = {"a1": entry(other_tag, requested_at=NOW - timedelta(minutes=3))}
    alert = Alert(AlertKind.FAILED, failed())
    assert rebuilds_due([alert], entries, TABLE, RetryPolicy(), NOW, False) == []
    assert len(rebuilds_due([alert], entries, TABLE, RetryPolicy(), NOW + timedelta(minutes=3), False)) == 1

    two_tags = [
        Alert(AlertKind.FAILED, failed(tag="a", code="a1")),
        Alert(AlertKind.FAILED, failed(tag="b", code="b1")),
    ]
    assert len(rebuilds_due(two_tags, {}, TABLE, RetryPolicy(), NOW, False)) == 1


def test_a_build_already_retried_is_not_retried_again():
    build = failed()
    alert = Alert(AlertKind.FAILED, build)
    entries = {alert.event_id: entry(build, requested_at=NOW - timedelta(hours=30), outcome="not_honored")}
    assert rebuilds_due([alert], entries, TABLE, RetryPolicy(limit=5), NOW, False) == []


def test_a_rebuild_counts_once_a_newer_build_of_the_tag_appears():
    build = failed()
    requested = NOW - timedelta(minutes=10)
    entries = {"a1": entry(build, requested_at=requested)}

    still_failed = {("acme/app", "latest"): build}
    assert retry_outcomes(entries, still_failed, RetryPolicy(), NOW) == {}

    rebuilt = {("acme/app", "latest"): failed(code="new", created=NOW - timedelta(minutes=5), status=0)}
    assert retry_outcomes(entries, rebuilt, RetryPolicy(), NOW) == {"a1": "honored"}


def test_without_a_new_build_the_request_is_not_honored_after_the_confirmation_time():
    build = failed()
    entries = {"a1": entry(build, requested_at=NOW - timedelta(minutes=31))}
    assert retry_outcomes(entries, {("acme/app", "latest"): build}, RetryPolicy(), NOW) == {
        "a1": "not_honored"
    }
    assert retry_outcomes(entries, {}, RetryPolicy(), NOW) == {}, "an unread tag stays pending"


def test_trigger_table_accepts_both_url_forms_and_tag_entries():
    table = parse_trigger_table(
        {
            "acme/app": URL,
            "acme/app:v2": {
                "url": "https://hub.docker.com/api/build/v1/source/s-1/trigger/t-2/call/",
                "source_type": "Tag",
                "source_name": "v2.0",
            },
        },
        "v",
    )
    assert find_trigger(table, "acme/app", "latest").url == URL
    assert find_trigger(table, "acme/app", "v2").request_body("v2") == {
        "source_type": "Tag",
        "source_name": "v2.0",
    }
    assert "0000-secret-token" not in table["acme/app"].redacted
    assert "t-2" not in table["acme/app:v2"].redacted


@pytest.mark.parametrize(
    "raw",
    [
        '{"acme": "https://registry.hub.docker.com/u/acme/app/trigger/x/"}',
        '{"acme/app": "https://example.com/not-a-trigger"}',
        '{"acme/app": "http://registry.hub.docker.com/u/acme/app/trigger/x/"}',
        "not json",
        "[1]",
    ],
)
def test_a_bad_trigger_table_names_the_variable_and_never_the_url(raw):
    with pytest.raises(ValueError, match="dockerhub_build_trigger_secrets") as error:
        parse_trigger_table(raw, "The dockerhub_build_trigger_secrets variable")
    assert "trigger/x" not in str(error.value)
