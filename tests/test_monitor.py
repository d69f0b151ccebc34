from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.alerts import Thresholds
from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.exceptions import DockerHubLoginError
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.ledger import AlertRecord
from airflow_dockerhub.monitor import Snapshot, apply_results, fetch_snapshot, plan_cycle, summary_table
from airflow_dockerhub.settings import MonitorSettings
from airflow_dockerhub.targets import TargetSettings

NOW = datetime.now(timezone.utc)


@pytest.fixture
def hub(monkeypatch):
    state = HubState(NOW)
    state.add_user("alice", "dckr_pat_alice")
    with serve_in_thread(create_hub_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        yield state


def test_one_unreadable_namespace_does_not_stop_the_others(hub):
    hub.add_repository("acme", "app")
    hub.add_build("acme", "app", status=-1, created_minutes_ago=10)

    snapshot = fetch_snapshot(DockerHubHook(), ["missing", "acme"])

    assert [b.repo_name for b in snapshot.builds] == ["acme/app"]
    assert len(snapshot.errors) == 1 and snapshot.errors[0].startswith("missing:")


def test_counts_what_was_seen_polled_and_skipped(hub):
    hub.add_repository("acme", "app")
    hub.add_build("acme", "app", status=10)
    hub.add_repository("acme", "pushed-only", automated=False)
    hub.add_repository("acme", "empty", history="none")

    snapshot = fetch_snapshot(DockerHubHook(), ["acme"])

    assert (snapshot.repositories_seen, snapshot.repositories_polled) == (3, 1)
    assert (snapshot.skipped_not_automated, snapshot.skipped_no_history) == (1, 1)
    table = summary_table(snapshot, alerts_due=0)
    assert "repositories seen" in table and "alerts due" in table
    assert table.splitlines()[0].split()[-1] == "3"


def test_wrong_credentials_raise_a_login_error_once(monkeypatch, hub):
    hub.add_repository("acme", "app")
    url = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"])["host"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT",
        json.dumps({"conn_type": "dockerhub", "host": url, "login": "alice", "password": "old-secret"}),
    )
    with pytest.raises(DockerHubLoginError):
        fetch_snapshot(DockerHubHook(), ["acme", "acme2", "acme3"])
    assert len([path for _, path in hub.requests if path.startswith("/v2/auth")]) == 1


def test_snapshot_round_trips_through_xcom_form(hub):
    hub.add_repository("acme", "app")
    hub.add_build("acme", "app", status=-1)
    hub.add_repository("acme", "modern", history="audit")
    hub.add_build("acme", "modern", status=0, created_minutes_ago=90)
    snapshot = fetch_snapshot(DockerHubHook(), ["acme"])

    again = Snapshot.from_xcom(json.loads(json.dumps(snapshot.to_xcom())))

    assert again.builds == snapshot.builds
    assert again.repositories_polled == snapshot.repositories_polled


def test_delivered_alerts_are_not_due_again_and_failed_ones_stay_due(hub):
    hub.add_repository("acme", "a")
    hub.add_build("acme", "a", status=-1)
    hub.add_repository("acme", "b")
    hub.add_build("acme", "b", status=-1)
    snapshot = fetch_snapshot(DockerHubHook(), ["acme"])
    record = AlertRecord()
    settings = MonitorSettings(namespaces=("acme",), thresholds=Thresholds())
    target = [TargetSettings.from_extra("dockerhub_notify", {})]

    plan = plan_cycle(snapshot, record, NOW, settings, target)
    assert (len(plan.deliveries), plan.already_delivered) == (2, 0)
    first, second = plan.deliveries

    added, _, undelivered = apply_results(
        record,
        plan,
        [{"event_id": first["event_id"], "target": "dockerhub_notify"}, None],
        NOW,
        timedelta(hours=24),
    )
    assert added == 1 and [d["event_id"] for d in undelivered] == [second["event_id"]]

    again = plan_cycle(snapshot, record, NOW, settings, target)
    assert [d["event_id"] for d in again.deliveries] == [second["event_id"]]
    assert again.already_delivered == 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_histories_are_read_side_by_side_up_to_the_concurrency_and_no_further(hub, concurrency):
    hub.populate("bulk", 40, builds=1, failing_every=1000)
    # Long enough a round trip that every worker has a read out at once, even on a busy machine.
    hub.latency = 0.1
    hub.reset_stats()

    snapshot = fetch_snapshot(DockerHubHook(), ["bulk"], concurrency=concurrency)

    assert snapshot.repositories_polled == 40
    assert hub.peak_in_flight == concurrency
