"""Tag freshness and retired build histories through fetch, plan and record, against the emulator."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.alerts import Thresholds
from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.freshness import FreshnessRule
from airflow_dockerhub.health import BUILDS_RETIRED_EVENT, MonitorHealth
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.ledger import AlertRecord
from airflow_dockerhub.monitor import Snapshot, apply_results, fetch_snapshot, plan_cycle, summary_table
from airflow_dockerhub.polling import PollState
from airflow_dockerhub.settings import MonitorSettings
from airflow_dockerhub.targets import TargetSettings

NOW = datetime.now(timezone.utc)
HOOK = TargetSettings.from_extra("hook", {})
RESOLVING = TargetSettings.from_extra("resolving", {"send_resolved": True})
SETTINGS = MonitorSettings(namespaces=("acme",), thresholds=Thresholds())


@pytest.fixture
def hub(monkeypatch):
    state = HubState(NOW)
    state.add_user("alice", "dckr_pat_alice")
    with serve_in_thread(create_hub_app(state)) as server:
        state.url = server.url
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        yield state


def rule(repository="acme/app", tag="latest", interval=timedelta(days=1), grace=timedelta(hours=1)):
    return FreshnessRule(repository, tag, interval, grace)


def tag_paths(state):
    return [path for _, path in state.requests if path.endswith("/tags")]


def deliver_all(record, plan, now):
    results = [{"event_id": d["event_id"], "target": d["target"]} for d in plan.deliveries]
    return apply_results(record, plan, results, now, timedelta(hours=24))


def events(plan):
    return sorted((d["target"], d["event"]) for d in plan.deliveries)


def cycle(rules, record, now, targets=(HOOK, RESOLVING), namespaces=("acme",)):
    snapshot = fetch_snapshot(DockerHubHook(), namespaces, freshness=rules, now=now)
    plan = plan_cycle(Snapshot.from_xcom(snapshot.to_xcom()), record, now, SETTINGS, list(targets))
    deliver_all(record, plan, now)
    return snapshot, plan


def test_tags_are_read_anonymously_only_for_repositories_with_a_rule_and_counted(hub):
    for name in ("app", "other", "third"):
        hub.add_repository("acme", name, automated=False)
        hub.push_tag("acme", name, tag="latest", pushed_minutes_ago=30)

    snapshot = fetch_snapshot(DockerHubHook(), ["acme"], freshness=[rule(), rule(tag="v*")])

    assert tag_paths(hub) == ["/v2/namespaces/acme/repositories/app/tags"], "one read per repository"
    assert snapshot.requests == len(hub.requests), "tag reads count among the cycle's requests"
    assert snapshot.tags == {
        "acme/app": [{"name": "latest", "pushed_at": snapshot.tags["acme/app"][0]["pushed_at"]}]
    }
    assert snapshot.repositories_polled == 0, "a namespace without automated builds still gets its rules"


def test_a_private_repositorys_tags_are_read_with_the_connections_token(hub, monkeypatch):
    hub.add_repository("acme", "secret", private=True)
    hub.push_tag("acme", "secret", tag="latest", pushed_minutes_ago=5)

    anonymous = fetch_snapshot(DockerHubHook(), [], freshness=[rule("acme/secret")])
    assert anonymous.tags == {} and "acme/secret tags" in anonymous.errors[0]

    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT",
        json.dumps(
            {"conn_type": "dockerhub", "host": hub.url, "login": "alice", "password": "dckr_pat_alice"}
        ),
    )
    with_token = fetch_snapshot(DockerHubHook(), [], freshness=[rule("acme/secret")])
    assert with_token.errors == [] and [t["name"] for t in with_token.tags["acme/secret"]] == ["latest"]


def test_tag_reads_share_the_cycles_request_budget_with_history_reads(monkeypatch):
    # The emulator's clock stands an hour back, so its rate-limit window has ended for the pacer,
    # which then never waits: the budget is plain arithmetic and the test does not depend on timing.
    state = HubState(NOW - timedelta(hours=1))
    state.populate("bulk", 120, builds=1, failing_every=0)
    for index in range(4):
        state.push_tag("bulk", f"repo-{index:05d}", tag="latest")
    state.rate_limit = 600
    with serve_in_thread(create_hub_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        rules = [rule(f"bulk/repo-{index:05d}") for index in range(4)]
        without = fetch_snapshot(DockerHubHook(), ["bulk"], PollState(), cycle_seconds=10)
        with_rules = fetch_snapshot(DockerHubHook(), ["bulk"], PollState(), cycle_seconds=10, freshness=rules)

    assert without.repositories_deferred > 0, "the budget must be smaller than the namespace"
    assert with_rules.repositories_polled == without.repositories_polled - 4
    assert with_rules.repositories_deferred == without.repositories_deferred + 4
    assert state.stats()["rate_limited"] == 0


def test_a_stale_tag_alerts_once_and_a_push_resolves_it_where_wanted(hub):
    hub.add_repository("acme", "app", automated=False)
    hub.push_tag("acme", "app", tag="latest", pushed_minutes_ago=26 * 60)
    record = AlertRecord()

    _, first = cycle([rule()], record, NOW)
    assert events(first) == [("hook", "tag.stale"), ("resolving", "tag.stale")]
    _, second = cycle([rule()], record, NOW + timedelta(minutes=5))
    assert second.deliveries == [], "stale is told once, not every cycle"
    [entry] = record.entries.values()
    assert entry["kind"] == "tag_stale" and entry["repository"] == "acme/app" and not entry["resolved_at"]
    assert record.prune(NOW + timedelta(days=30), timedelta(hours=24)) == 0, "kept while still stale"

    hub.push_tag("acme", "app", tag="latest", pushed_minutes_ago=0)
    _, pushed = cycle([rule()], record, NOW + timedelta(minutes=10))
    assert events(pushed) == [("resolving", "tag.fresh")], "only the target that wants resolved notices"
    [fresh] = pushed.deliveries
    assert fresh["payload"]["repository"]["status"] == "Fresh"
    assert fresh["payload"]["push_data"]["pushed_at"] == int(NOW.timestamp())
    assert entry["resolved_at"] and list(entry["resolved"]) == ["resolving"]
    _, after = cycle([rule()], record, NOW + timedelta(minutes=15))
    assert after.deliveries == []


def test_a_fresh_tag_and_a_fresh_pattern_send_nothing(hub):
    hub.add_repository("acme", "app")
    hub.add_build("acme", "app", tag="latest", status=10, created_minutes_ago=70, updated_minutes_ago=60)
    hub.push_tag("acme", "app", tag="v1.0", pushed_minutes_ago=5 * 24 * 60)
    hub.push_tag("acme", "app", tag="v1.1", pushed_minutes_ago=60)
    record = AlertRecord()

    snapshot, plan = cycle([rule(), rule(tag="v*")], record, NOW)

    assert plan.deliveries == [] and record.entries == {}
    assert re.search(r"^  fresh +2$", summary_table(snapshot, 0, NOW), re.MULTILINE)


def test_a_missing_tag_is_reported_once_and_an_unreadable_one_never(hub):
    hub.add_repository("acme", "app", automated=False)
    hub.push_tag("acme", "app", tag="latest", pushed_minutes_ago=10)
    hub.delete_tag("acme", "app", tag="latest")
    record = AlertRecord()

    _, first = cycle([rule()], record, NOW)
    assert events(first) == [("hook", "tag.missing"), ("resolving", "tag.missing")]
    assert first.deliveries[0]["payload"]["repository"]["status"] == "Missing"
    _, later = cycle([rule()], record, NOW + timedelta(days=3))
    assert later.deliveries == []

    hub.fail_next(50, 503, path_prefix="/v2/namespaces/acme/repositories/app/tags")
    snapshot, faulted = cycle([rule(tag="nightly")], AlertRecord(), NOW)
    assert faulted.deliveries == [] and "acme/app tags" in snapshot.errors[0]


def test_a_rule_removed_closes_its_alert_silently_but_not_when_nothing_could_be_read(hub):
    hub.add_repository("acme", "app", automated=False)
    record = AlertRecord()
    cycle([rule()], record, NOW)
    [entry] = record.entries.values()

    unread = Snapshot(login_rejected={"docker_id": "x", "reason": "rejected"})
    plan = plan_cycle(unread, record, NOW, SETTINGS, [RESOLVING])
    assert plan.resolved == []

    _, removed = cycle([], record, NOW + timedelta(minutes=5))
    assert removed.deliveries == [] and entry["resolved_at"]


def test_retired_build_histories_are_told_once_with_what_to_do(hub):
    hub.add_repository("acme", "app")
    hub.add_build("acme", "app", status=10, created_minutes_ago=30)
    hub.add_repository("acme", "modern", history="audit")
    hub.add_build("acme", "modern", status=10, created_minutes_ago=30)
    state, health = PollState(), MonitorHealth()

    def health_cycle(now):
        snapshot = fetch_snapshot(DockerHubHook(), ["acme"], state, now=now)
        plan = plan_cycle(snapshot, AlertRecord(), now, SETTINGS, [HOOK], health=health)
        for delivery in plan.deliveries:
            for notice_id in delivery["notice_ids"]:
                notice = plan.notices[notice_id]
                health.mark_told(notice["problem"], delivery["target"], notice["recovered"], now)
        return snapshot, plan

    before, _ = health_cycle(NOW)
    assert before.retired == {}

    hub.retire_builds("acme", 410)
    retired, plan = health_cycle(NOW + timedelta(minutes=5))
    assert retired.retired == {"acme": "every build history answered 410"}
    assert retired.unreadable == {} and retired.errors == []
    [told] = plan.deliveries
    assert told["event"] == BUILDS_RETIRED_EVENT
    monitor = told["payload"]["monitor"]
    assert monitor["status"] == "BuildsRetired" and monitor["namespace"] == "acme"
    assert "another CI" in monitor["message"] and "dockerhub_freshness_rules" in monitor["message"]
    table = summary_table(retired, 0, NOW)
    assert "namespaces with retired builds" in table and "Automated builds of acme are retired" in table

    _, again = health_cycle(NOW + timedelta(minutes=10))
    assert again.deliveries == [], "told once, not every cycle"


def test_a_namespace_that_never_had_builds_is_not_called_retired(hub):
    hub.add_repository("acme", "empty", history="none")
    hub.retire_builds("acme", 404)
    snapshot = fetch_snapshot(DockerHubHook(), ["acme"], PollState())
    assert snapshot.retired == {} and snapshot.skipped_no_history == 1


def test_a_named_tag_sunk_below_a_cut_short_listing_is_asked_for_by_name(hub):
    from airflow_dockerhub.hooks.dockerhub import MAX_TAG_PAGES, PAGE_SIZE

    hub.add_repository("acme", "busy", automated=False)
    hub.push_tag("acme", "busy", tag="latest", pushed_minutes_ago=3 * 24 * 60)
    # CI keeps pushing a tag per commit, so the stale `latest` sinks past every page that is read.
    for index in range(MAX_TAG_PAGES * PAGE_SIZE + 5):
        hub.push_tag("acme", "busy", tag=f"sha-{index:05d}", pushed_minutes_ago=60 - index * 0.01)
    rules = [rule("acme/busy", "latest"), rule("acme/busy", "gone"), rule("acme/busy", "v*")]

    snapshot = fetch_snapshot(DockerHubHook(), ["acme"], freshness=rules, now=NOW)
    again = Snapshot.from_xcom(json.loads(json.dumps(snapshot.to_xcom())))

    assert snapshot.tags_complete["acme/busy"] is False
    looked_up = sorted(path.rsplit("/", 1)[1] for _, path in hub.requests if "/tags/" in path)
    assert looked_up == ["gone", "latest"], "only the named tags are asked for, the pattern is not"
    verdicts = {state.rule.tag: state.verdict for state in again.tag_states_now(NOW)}
    assert verdicts == {"latest": "stale", "gone": "missing"}, (
        "no verdict on a pattern in a cut-short listing"
    )
