from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.formats import MessageFormat, render_health
from airflow_dockerhub.health import (
    CREDENTIALS_REJECTED_EVENT,
    READABLE_EVENT,
    UNREADABLE_EVENT,
    MonitorHealth,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
CYCLE = timedelta(minutes=5)


def test_a_namespace_is_told_once_after_the_configured_cycles_in_a_row():
    health = MonitorHealth()
    told = []
    for cycle in range(5):
        health.observe(T0 + cycle * CYCLE, unreadable={"acme": "404 Not Found"}, readable=["other"])
        for notice in health.notices("hook", unreadable_cycles=3, send_resolved=False):
            told.append((cycle, notice.event, notice.subject, notice.cycles))
            health.mark_told(notice.problem, "hook", notice.recovered, T0)
    assert told == [(2, UNREADABLE_EVENT, "acme", 3)]


def test_a_readable_cycle_starts_the_count_again():
    health = MonitorHealth()
    health.observe(T0, unreadable={"acme": "timeout"})
    health.observe(T0 + CYCLE, unreadable={"acme": "timeout"})
    health.observe(T0 + 2 * CYCLE, readable=["acme"])
    health.observe(T0 + 3 * CYCLE, unreadable={"acme": "timeout"})
    assert health.notices("hook", unreadable_cycles=3, send_resolved=True) == []
    assert health.problems["namespace:acme"]["cycles"] == 1


def test_recovery_is_told_only_to_targets_that_got_the_alert_and_want_it():
    health = MonitorHealth()
    health.observe(T0, unreadable={"acme": "503"})
    [alert] = health.notices("chat", unreadable_cycles=1, send_resolved=True)
    health.mark_told(alert.problem, "chat", False, T0)
    health.observe(T0 + CYCLE, readable=["acme"])

    assert health.notices("hook", unreadable_cycles=1, send_resolved=True) == []
    assert health.notices("chat", unreadable_cycles=1, send_resolved=False) == []
    [recovered] = health.notices("chat", unreadable_cycles=1, send_resolved=True)
    assert recovered.event == READABLE_EVENT and recovered.recovered
    health.mark_told(recovered.problem, "chat", True, T0 + CYCLE)
    assert health.notices("chat", unreadable_cycles=1, send_resolved=True) == []

    health.observe(T0 + CYCLE + timedelta(days=2))
    assert health.problems == {}, "a recovered problem is forgotten after a day"


def test_rejected_credentials_are_told_at_once_and_once():
    health = MonitorHealth()
    health.observe(T0, rejected=("alice", "401 Unauthorized"))
    [notice] = health.notices("hook", unreadable_cycles=3, send_resolved=False)
    assert notice.event == CREDENTIALS_REJECTED_EVENT and notice.subject == "alice"
    health.mark_told(notice.problem, "hook", False, T0)
    health.observe(T0 + CYCLE, rejected=("alice", "401 Unauthorized"))
    assert health.notices("hook", unreadable_cycles=3, send_resolved=False) == []
    # A cycle that read nothing (no login tried) does not count as accepted credentials.
    health.observe(T0 + 2 * CYCLE)
    assert "credentials" in health.problems and not health.problems["credentials"]["recovered_at"]
    health.observe(T0 + 3 * CYCLE, login_worked=True)
    assert health.problems["credentials"]["recovered_at"]


def test_a_problem_nobody_heard_of_is_dropped_when_it_ends():
    health = MonitorHealth()
    health.observe(T0, unreadable={"acme": "503"})
    health.observe(T0 + CYCLE, readable=["acme"])
    assert health.problems == {}


def test_the_same_problem_keeps_its_notice_id_and_a_new_one_gets_another():
    health = MonitorHealth()
    health.observe(T0, unreadable={"acme": "503"})
    first = health.notices("hook", unreadable_cycles=1, send_resolved=False)[0].notice_id
    health.observe(T0 + CYCLE, unreadable={"acme": "503"})
    assert health.notices("hook", unreadable_cycles=1, send_resolved=False)[0].notice_id == first
    health.mark_told("namespace:acme", "hook", False, T0)
    health.observe(T0 + 2 * CYCLE, readable=["acme"])
    health.observe(T0 + 3 * CYCLE, unreadable={"acme": "503"})
    [again] = health.notices("hook", unreadable_cycles=1, send_resolved=False)
    assert again.notice_id != first


def test_stored_form_round_trips_and_bad_values_name_the_setting():
    health = MonitorHealth()
    health.observe(T0, unreadable={"acme": "503"})
    assert MonitorHealth.from_stored(health.to_stored(), "x").to_stored() == health.to_stored()
    with pytest.raises(ValueError, match="the health variable"):
        MonitorHealth.from_stored(["nope"], "the health variable")


@pytest.mark.parametrize("message_format", list(MessageFormat))
def test_every_format_writes_health_notices(message_format):
    health = MonitorHealth()
    health.observe(T0, unreadable={"acme": "cannot list its repositories: 503 <b>"})
    [notice] = health.notices("hook", unreadable_cycles=1, send_resolved=False)
    message = render_health(message_format, notice)
    assert message.message_id == notice.notice_id and message.event == UNREADABLE_EVENT
    if message_format is MessageFormat.DOCKERHUB:
        assert message.body["monitor"]["namespace"] == "acme"
        assert message.body["monitor"]["status"] == "Unreadable"
    else:
        assert "acme" in message.body["attachments"][0]["text"]
    if message_format is MessageFormat.SLACK:
        assert "<b>" not in message.body["attachments"][0]["text"]


def test_retired_builds_are_told_at_once_once_and_forgotten_silently_when_histories_return():
    from airflow_dockerhub.health import BUILDS_RETIRED_EVENT

    health = MonitorHealth()
    health.observe(T0, readable=["acme"], retired={"acme": "every build history answered 410"})
    [notice] = health.notices("hook", unreadable_cycles=3, send_resolved=True)
    assert notice.event == BUILDS_RETIRED_EVENT and notice.subject == "acme"
    assert "another CI" in notice.summary
    health.mark_told(notice.problem, "hook", False, T0)
    body = render_health(MessageFormat.DOCKERHUB, notice).body["monitor"]
    assert body["status"] == "BuildsRetired" and body["namespace"] == "acme"

    health.observe(T0 + CYCLE, readable=["acme"], retired={"acme": "every build history answered 410"})
    assert health.notices("hook", unreadable_cycles=3, send_resolved=True) == []

    health.observe(T0 + 2 * CYCLE, unreadable={"acme": "503"})
    assert "retired:acme" in health.problems, "a cycle that could not read the namespace settles nothing"
    health.observe(T0 + 3 * CYCLE, readable=["acme"])
    assert "retired:acme" not in health.problems
    assert health.notices("hook", unreadable_cycles=3, send_resolved=True) == []


def test_an_error_that_ends_a_sentence_of_its_own_is_not_followed_by_a_second_stop():
    health = MonitorHealth()
    for cycle in range(3):
        health.observe(T0 + cycle * CYCLE, unreadable={"acme": "503: We'll be back soon!"})
    (notice,) = health.notices("hook", unreadable_cycles=3, send_resolved=False)
    assert "We'll be back soon. Its builds" in notice.summary
    assert "!." not in notice.summary
