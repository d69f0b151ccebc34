from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

from airflow_dockerhub.alerts import Thresholds
from airflow_dockerhub.builds import Build
from airflow_dockerhub.ledger import AlertRecord
from airflow_dockerhub.monitor import CyclePlan, Snapshot, apply_results, plan_cycle, plan_test_alert
from airflow_dockerhub.settings import MonitorSettings
from airflow_dockerhub.targets import TargetSettings

START = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
HOOK = TargetSettings.from_extra("hook", {})
SLACK = TargetSettings.from_extra("slack", {"format": "slack"})


def build(status, *, repo="app", tag="latest", code, created):
    item = {
        "id": 1,
        "status": status,
        "created_date": created.isoformat(),
        "last_updated": (created + timedelta(minutes=3)).isoformat(),
        "build_code": code,
        "dockertag_name": tag,
        "cause": None,
    }
    return Build.from_legacy("acme", repo, item)


def settings(**overrides):
    return MonitorSettings(namespaces=("acme",), thresholds=Thresholds(), **overrides)


def deliver_all(record, plan, now):
    results = [{"event_id": d["event_id"], "target": d["target"]} for d in plan.deliveries]
    return apply_results(record, plan, results, now, timedelta(hours=24))


def events(plan):
    return sorted((d["target"], d["event"]) for d in plan.deliveries)


def test_each_target_gets_each_alert_once_in_its_own_format():
    record = AlertRecord()
    snapshot = Snapshot(builds=[build(-1, code="f1", created=START - timedelta(minutes=10))])

    plan = plan_cycle(snapshot, record, START, settings(), [HOOK, SLACK])
    assert events(plan) == [("hook", "build.failed"), ("slack", "build.failed")]
    slack = next(d for d in plan.deliveries if d["target"] == "slack")
    assert "attachments" in slack["payload"]

    only_hook = [d for d in plan.deliveries if d["target"] == "hook"]
    apply_results(
        record, plan, [{"event_id": d["event_id"], "target": "hook"} for d in only_hook], START, timedelta(1)
    )
    assert events(plan_cycle(snapshot, record, START, settings(), [HOOK, SLACK])) == [
        ("slack", "build.failed")
    ]


def test_resolved_notice_goes_once_to_targets_that_want_it_after_a_later_success():
    record = AlertRecord()
    failure = build(-1, code="f1", created=START - timedelta(minutes=10))
    deliver_all(
        record, plan_cycle(Snapshot(builds=[failure]), record, START, settings(), [HOOK, SLACK]), START
    )

    later = START + timedelta(minutes=20)
    fixed = Snapshot(builds=[build(10, code="ok1", created=START + timedelta(minutes=10)), failure])
    plan = plan_cycle(fixed, record, later, settings(), [HOOK, SLACK])

    assert events(plan) == [("slack", "build.resolved")]
    deliver_all(record, plan, later)
    assert record.unresolved() == {}
    assert plan_cycle(fixed, record, later + timedelta(minutes=5), settings(), [HOOK, SLACK]).deliveries == []


def test_no_resolved_notice_for_an_alert_that_was_never_delivered():
    record = AlertRecord()
    failure = build(-1, code="f1", created=START - timedelta(minutes=10))
    plan_cycle(Snapshot(builds=[failure]), record, START, settings(), [SLACK])  # planned, never delivered

    fixed = Snapshot(builds=[build(10, code="ok1", created=START + timedelta(minutes=10))])
    assert plan_cycle(fixed, record, START + timedelta(minutes=20), settings(), [SLACK]).deliveries == []


def test_a_tag_missing_from_the_snapshot_is_not_resolved():
    record = AlertRecord()
    failure = build(-1, code="f1", created=START - timedelta(minutes=10))
    deliver_all(record, plan_cycle(Snapshot(builds=[failure]), record, START, settings(), [SLACK]), START)

    unreadable = Snapshot(builds=[], errors=["acme/app: Docker Hub answered 503"])
    plan = plan_cycle(unreadable, record, START + timedelta(minutes=5), settings(), [SLACK])
    assert plan.deliveries == [] and plan.resolved == []


def test_reminders_follow_the_interval_never_every_poll():
    record = AlertRecord()
    failure = build(-1, code="f1", created=START - timedelta(minutes=10))
    snapshot = Snapshot(builds=[failure])
    every_4h = settings(reminder_hours=4)
    deliver_all(record, plan_cycle(snapshot, record, START, every_4h, [HOOK]), START)

    sent = []
    for minutes in range(5, 9 * 60, 5):
        now = START + timedelta(minutes=minutes)
        plan = plan_cycle(snapshot, record, now, every_4h, [HOOK])
        if plan.deliveries:
            sent.append((minutes, [d["event"] for d in plan.deliveries]))
            deliver_all(record, plan, now)

    assert sent == [(240, ["build.reminder"]), (480, ["build.reminder"])]
    assert record.entries[next(iter(record.entries))]["reminders"]["hook"]["count"] == 2


def test_no_reminders_by_default():
    record = AlertRecord()
    snapshot = Snapshot(builds=[build(-1, code="f1", created=START)])
    deliver_all(record, plan_cycle(snapshot, record, START, settings(), [HOOK]), START)
    assert plan_cycle(snapshot, record, START + timedelta(hours=12), settings(), [HOOK]).deliveries == []


def test_an_incident_becomes_one_chat_message_but_one_webhook_per_build():
    builds = [build(-1, repo=f"r{i}", code=f"f{i}", created=START - timedelta(minutes=5)) for i in range(8)]
    plan = plan_cycle(Snapshot(builds=builds), AlertRecord(), START, settings(), [HOOK, SLACK])

    assert [d["target"] for d in plan.deliveries].count("hook") == 8
    [grouped] = [d for d in plan.deliveries if d["target"] == "slack"]
    assert grouped["event"] == "build.grouped" and len(grouped["notice_ids"]) == 8

    record = AlertRecord()
    deliver_all(record, plan, START)
    assert all(record.was_delivered(alert_id, "slack") for alert_id in plan.alerts)


def test_test_alert_goes_to_every_target_marked_and_unrecorded():
    plan = plan_test_alert("acme/app:v2", START, "manual__1", [HOOK, SLACK])
    assert events(plan) == [("hook", "build.test"), ("slack", "build.test")]
    assert all(d["test"] for d in plan.deliveries)
    hook = next(d for d in plan.deliveries if d["target"] == "hook")
    assert hook["payload"]["repository"]["repo_name"] == "acme/app"
    assert hook["payload"]["push_data"]["tag"] == "v2"

    record = AlertRecord()
    deliver_all(record, plan, START)
    assert record.entries == {}


def test_plan_survives_xcom_form():
    plan = plan_cycle(
        Snapshot(builds=[build(-1, code="f1", created=START)]), AlertRecord(), START, settings(), [HOOK]
    )
    again = CyclePlan(**json.loads(json.dumps(dataclasses.asdict(plan))))
    assert again == plan


def test_rebuild_answers_4xx_refuse_for_good_and_anything_else_waits_for_a_new_build():
    from airflow_dockerhub.build_triggers import BuildTrigger

    builds = [build(-1, repo=f"r{i}", code=f"f{i}", created=START - timedelta(minutes=10)) for i in range(4)]
    table = {
        f"acme/r{i}": BuildTrigger(f"https://registry.hub.docker.com/u/acme/r{i}/trigger/t{i}/")
        for i in range(4)
    }
    record = AlertRecord()
    plan = plan_cycle(Snapshot(builds=builds), record, START, settings(), [HOOK], table)
    assert len(plan.rebuilds) == 4

    answers = dict(zip(("acme/r0", "acme/r1", "acme/r2", "acme/r3"), (202, 403, 503, 0), strict=True))
    results = [
        {
            "retry_id": r["retry_id"],
            "status_code": answers[r["repository"]],
            "requested_at": START.isoformat(),
        }
        for r in plan.rebuilds
    ]
    apply_results(record, plan, [], START, timedelta(hours=24), results)

    outcomes = {entry["repository"]: entry["retry"]["outcome"] for entry in record.entries.values()}
    assert outcomes == {"acme/r0": None, "acme/r1": "refused", "acme/r2": None, "acme/r3": None}
    again = plan_cycle(
        Snapshot(builds=builds), record, START + timedelta(minutes=10), settings(), [HOOK], table
    )
    assert again.rebuilds == []


def test_a_tag_with_several_alerts_gets_one_resolved_notice():
    record = AlertRecord()
    first = build(-1, code="f1", created=START - timedelta(minutes=40))
    deliver_all(record, plan_cycle(Snapshot(builds=[first]), record, START, settings(), [SLACK]), START)
    second = build(-1, code="f2", created=START - timedelta(minutes=5))
    deliver_all(
        record, plan_cycle(Snapshot(builds=[second, first]), record, START, settings(), [SLACK]), START
    )
    assert len(record.entries) == 2

    fixed = Snapshot(builds=[build(10, code="ok", created=START + timedelta(minutes=1)), second, first])
    plan = plan_cycle(fixed, record, START + timedelta(minutes=10), settings(), [SLACK])

    assert events(plan) == [("slack", "build.resolved")]
    deliver_all(record, plan, START + timedelta(minutes=10))
    assert all(
        entry["resolved"] == {"slack": (START + timedelta(minutes=10)).isoformat()}
        for entry in record.entries.values()
    )


def test_failures_announced_earlier_do_not_make_an_incident():
    from airflow_dockerhub.build_triggers import BuildTrigger

    record = AlertRecord()
    old = [build(-1, repo=f"old{i}", code=f"o{i}", created=START - timedelta(hours=15)) for i in range(5)]
    deliver_all(record, plan_cycle(Snapshot(builds=old), record, START, settings(), [HOOK]), START)

    fresh = build(-1, repo="app", code="new", created=START + timedelta(minutes=1))
    table = {"acme/app": BuildTrigger("https://registry.hub.docker.com/u/acme/app/trigger/t/")}
    plan = plan_cycle(
        Snapshot(builds=[*old, fresh]), record, START + timedelta(minutes=5), settings(), [HOOK], table
    )
    assert [r["repository"] for r in plan.rebuilds] == ["acme/app"]
