from __future__ import annotations

import json
import os
import time

from airflow_dockerhub.emulator import (
    DEMO_SECRET,
    DEMO_TRIGGER_TOKENS,
    DEMO_USER,
    ReceiverState,
    create_receiver_app,
    serve_in_thread,
)
from tests.dags.monitor_runs import (
    database_text,
    run_monitor,
    stored_record,
)


def test_first_run_sends_one_webhook_per_problem_build_and_a_second_run_sends_nothing(
    services, demo_problems, summarize
):
    hub_state, receiver = services
    before = int(time.time())

    run = run_monitor()

    assert run.state == "success"
    assert summarize(receiver.received) == demo_problems
    assert len(receiver.received) == len(demo_problems)
    for webhook in receiver.received:
        assert webhook["basic_auth"] == ("receiver", "r3ceiver-pw")
        assert webhook["path"] == "/hooks/dockerhub" and webhook["query"] == "token=q-t0ken"
        assert webhook["headers"]["content-type"] == "application/json"
        assert webhook["headers"]["x-dockerhub-event-id"]
    assert len({w["headers"]["x-dockerhub-event-id"] for w in receiver.received}) == len(demo_problems)

    [api] = [w for w in receiver.received if w["body"]["repository"]["repo_name"] == "demo/api"]
    [api_repo] = [r for r in hub_state.snapshot()["repositories"] if r["name"] == "api"]
    failed_build = next(build for build in api_repo["builds"] if build["status"] == -1)
    body = api["body"]
    assert set(body) == {"push_data", "repository", "build_history"}
    assert body["push_data"]["images"] == [] and body["push_data"]["pusher"] == "demo"
    assert before <= body["push_data"]["pushed_at"] <= int(time.time())
    assert body["repository"] == {
        "status": "Failed",
        "repo_url": "https://hub.docker.com/r/demo/api",
        "owner": "demo",
        "name": "api",
        "namespace": "demo",
        "repo_name": "demo/api",
    }
    assert body["build_history"]["status"] == -1 and body["build_history"]["dockertag_name"] == "latest"
    assert set(body["build_history"]) == {
        "id",
        "status",
        "created_date",
        "last_updated",
        "build_code",
        "dockertag_name",
        "cause",
    }
    assert body["build_history"] == failed_build
    assert api["headers"]["x-dockerhub-event"] == "build.failed"

    record = stored_record()
    assert {entry["repository"] for entry in record.values()} == {repo for repo, _, _ in demo_problems}

    receiver.clear()
    assert run_monitor().state == "success"
    assert receiver.received == []


def test_receiver_credentials_reach_no_log_xcom_or_rendered_field(services, caplog):
    _, receiver = services
    run_monitor()
    assert receiver.received

    stored = database_text()
    assert "deliver_alert" in stored and "event_id" in stored
    for secret in ("r3ceiver-pw", "q-t0ken"):
        assert secret not in stored
        assert secret not in caplog.text


def test_a_new_failure_of_the_same_tag_alerts_again(services, summarize):
    hub_state, receiver = services
    run_monitor()
    receiver.clear()

    new_build = hub_state.add_build("demo", "api", tag="latest", status=-1, created_minutes_ago=2)
    run_monitor()

    assert summarize(receiver.received) == {("demo/api", "latest", "Failed")}
    assert receiver.received[0]["body"]["build_history"] == new_build


def test_an_undelivered_alert_is_sent_on_a_later_run_exactly_once(services, demo_problems, summarize):
    _, receiver = services
    # More 503s than every delivery's retries can use up: the whole run fails to deliver.
    receiver.fail_next(1000, status=503)

    failed_run = run_monitor()

    assert failed_run.state == "failed"
    assert receiver.received == []
    assert stored_record() == {}
    receiver.clear()

    assert run_monitor().state == "success"
    assert summarize(receiver.received) == demo_problems
    assert len(receiver.received) == len(demo_problems)


def test_params_override_thresholds_and_namespaces(services, summarize):
    _, receiver = services
    run_monitor(namespaces="demo", queued_threshold_minutes=1, building_threshold_minutes=10)
    statuses = summarize(receiver.received)
    assert ("demo/fresh-queue", "latest", "Queued") in statuses
    assert ("demo/fresh-build", "latest", "Building") in statuses


def test_rejected_credentials_are_told_once_and_fail_every_run_until_they_change(
    services, monkeypatch, demo_problems, summarize
):
    hub_state, receiver = services
    hub_url = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"])["host"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT",
        json.dumps(
            {"conn_type": "dockerhub", "host": hub_url, "login": DEMO_USER, "password": "stale-token"}
        ),
    )

    run = run_monitor()

    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["record_deliveries"] == "failed"
    [told] = receiver.received
    assert told["headers"]["x-dockerhub-event"] == "monitor.credentials_rejected"
    monitor = told["body"]["monitor"]
    assert monitor["status"] == "CredentialsRejected" and monitor["docker_id"] == DEMO_USER
    assert "stale-token" not in json.dumps(told)
    assert monitor["message"].count("for an hour") == 1, "what the monitor does next is said once"
    assert len([path for _, path in hub_state.requests if path.startswith("/v2/auth")]) == 1
    assert stored_record() == {}

    again = run_monitor()
    assert again.state == "failed"
    assert len(receiver.received) == 1, "the targets are told once"
    assert len([path for _, path in hub_state.requests if path.startswith("/v2/auth")]) == 1, (
        "a rejected login is not tried again with the same credentials"
    )
    receiver.clear()

    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT",
        json.dumps({"conn_type": "dockerhub", "host": hub_url, "login": DEMO_USER, "password": DEMO_SECRET}),
    )
    assert run_monitor().state == "success", "new credentials lift the block at once"
    assert summarize(receiver.received) == demo_problems


def test_test_alert_param_reaches_every_target_marked_as_a_test(services, monkeypatch):
    _, receiver = services
    notify = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_NOTIFY"])
    monkeypatch.setenv("AIRFLOW_CONN_CHAT", json.dumps({**notify, "extra": {"format": "rocketchat"}}))
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_NOTIFY_TARGETS", "dockerhub_notify,chat")

    run = run_monitor(test_alert_repository="test/my-image")

    assert run.state == "success"
    assert len(receiver.received) == 2
    assert all(w["headers"]["x-dockerhub-test"] == "true" for w in receiver.received)
    assert {w["headers"]["x-dockerhub-event"] for w in receiver.received} == {"build.test"}
    hook = next(w for w in receiver.received if "repository" in w["body"])
    assert hook["body"]["repository"]["repo_name"] == "test/my-image"
    assert hook["body"]["repository"]["status"] == "Failed"
    chat = next(w for w in receiver.received if "attachments" in w["body"])
    assert chat["body"]["text"].startswith("[TEST] Docker Hub build failed: test/my-image:latest")
    assert stored_record() == {}


def test_dry_run_sends_and_records_nothing(services):
    _, receiver = services
    run = run_monitor(dry_run=True)
    assert run.state == "success"
    assert receiver.received == []
    assert stored_record() == {}


def test_chat_target_gets_a_resolved_notice_after_a_later_success(services, monkeypatch, summarize):
    hub_state, receiver = services
    notify = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_NOTIFY"])
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({**notify, "extra": {"format": "slack"}}))
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_NOTIFY_TARGETS", "dockerhub_notify,slack_alerts")
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_INCIDENT_THRESHOLD", "0")
    run_monitor()
    chat = [w for w in receiver.received if "attachments" in w["body"]]
    assert len(chat) == 7
    receiver.clear()

    hub_state.add_build("demo", "api", tag="latest", status=10, created_minutes_ago=1, updated_minutes_ago=0)
    run_monitor()

    assert [(w["headers"]["x-dockerhub-event"], w["body"]["text"]) for w in receiver.received] == [
        ("build.resolved", "Docker Hub build succeeded again: demo/api:latest")
    ]
    receiver.clear()
    run_monitor()
    assert receiver.received == []


def test_failed_builds_are_rebuilt_and_the_outcome_is_read_from_later_history(services, monkeypatch):
    hub_state, receiver = services
    hub_url = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"])["host"]
    silent_trigger = ReceiverState()
    with serve_in_thread(create_receiver_app(silent_trigger)) as silent_server:
        _rebuild_cycles(hub_state, receiver, hub_url, silent_server.url, silent_trigger, monkeypatch)


def _rebuild_cycles(hub_state, receiver, hub_url, rcv_url, silent_trigger, monkeypatch):
    triggers = {
        # Docker Hub's emulator queues a build for the tag: the rebuild is honored.
        "demo/api": f"{hub_url}/u/demo/api/trigger/{DEMO_TRIGGER_TOKENS['api']}/",
        # Accepted with 200 but no build ever appears: not honored.
        "demo/worker": f"{rcv_url}/u/demo/worker/trigger/silent-token/",
        # An unknown token: Docker Hub answers 404, a refusal for good.
        "demo/modern-app": f"{hub_url}/u/demo/modern-app/trigger/wrong-token/",
    }
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_BUILD_TRIGGER_SECRETS", json.dumps(triggers))
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_RETRY_CONFIRM_MINUTES", "0.05")

    assert run_monitor().state == "success"

    assert len(hub_state.triggers) == 1
    assert [w["body"] for w in silent_trigger.received] == [{"docker_tag": "latest"}]
    assert len(receiver.received) == 7
    record = stored_record()
    retried = {e["repository"]: e["retry"] for e in record.values() if "retry" in e}
    assert set(retried) == {"demo/api", "demo/worker", "demo/modern-app"}
    assert (
        retried["demo/modern-app"]["outcome"] == "refused"
        and retried["demo/modern-app"]["status_code"] == 404
    )
    receiver.clear()

    time.sleep(4)  # past the (shortened) confirmation time
    assert run_monitor().state == "success"

    events = sorted(
        (w["body"]["repository"]["repo_name"], w["headers"]["x-dockerhub-event"]) for w in receiver.received
    )
    assert events == [("demo/modern-app", "build.retry_refused"), ("demo/worker", "build.retry_not_honored")]
    retried = {e["repository"]: e["retry"] for e in stored_record().values() if "retry" in e}
    assert retried["demo/api"]["outcome"] == "honored"
    assert retried["demo/worker"]["outcome"] == "not_honored"
    assert len(hub_state.triggers) == 1, "no second rebuild: the limit is one per tag"
    receiver.clear()

    assert run_monitor().state == "success"
    assert receiver.received == []
    assert len(silent_trigger.received) == 1


def test_trigger_urls_reach_no_log_or_stored_row(services, monkeypatch, caplog):
    hub_state, _ = services
    hub_url = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"])["host"]
    token = DEMO_TRIGGER_TOKENS["api"]
    monkeypatch.setenv(
        "AIRFLOW_VAR_DOCKERHUB_BUILD_TRIGGER_SECRETS",
        json.dumps({"demo/api": f"{hub_url}/u/demo/api/trigger/{token}/"}),
    )
    run_monitor()
    assert len(hub_state.triggers) == 1
    assert token not in caplog.text
    assert token not in database_text()


def test_a_healthy_cycle_calls_the_heartbeat_and_an_unhealthy_one_does_not(services, monkeypatch):
    hub_state, _ = services
    beats = ReceiverState()
    with serve_in_thread(create_receiver_app(beats)) as beat_server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_HEARTBEAT",
            json.dumps({"conn_type": "generic", "host": beat_server.url + "/ping/hc-uuid-1234"}),
        )
        assert run_monitor().state == "success"
        assert [(b["method"], b["path"]) for b in beats.received] == [("GET", "/ping/hc-uuid-1234")]

        hub_state.fail_next(20, 500, path_prefix="/v2/repositories/demo/worker/buildhistory")
        assert run_monitor().state == "failed"
        assert len(beats.received) == 1


def test_a_refusal_for_good_is_reported_once_and_not_sent_again(services, demo_problems):
    _, receiver = services
    receiver.fail_next(1, status=410)

    first = run_monitor()

    assert first.state == "failed", "the refusal is reported"
    assert len(receiver.received) == len(demo_problems) - 1
    refused = [e for e in stored_record().values() if e.get("refused")]
    assert [e["refused"] for e in refused] == [{"dockerhub_notify": 410}]
    receiver.clear()

    second = run_monitor()
    assert second.state == "success", "reported once"
    assert receiver.received == []
