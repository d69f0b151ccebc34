from __future__ import annotations

import json
import os

import pytest

from airflow_dockerhub.emulator import ReceiverState, create_receiver_app, serve_in_thread
from airflow_dockerhub.exceptions import WebhookDeliveryError
from airflow_dockerhub.operators.webhook import DockerHubWebhookOperator

ALERT = {
    "event_id": "5f0c7bd6-8f2e-5d54-9a4e-1f1f1f1f1f1f",
    "event": "build.failed",
    "kind": "failed",
    "repository": "acme/app",
    "tag": "latest",
    "payload": {"repository": {"repo_name": "acme/app", "status": "Failed"}},
}


@pytest.fixture
def receiver(monkeypatch):
    state = ReceiverState()
    with serve_in_thread(create_receiver_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_NOTIFY", json.dumps({"conn_type": "http", "host": server.url + "/in"})
        )
        yield state


def test_operator_delivers_the_alert_and_returns_only_its_id_target_and_status(receiver):
    result = DockerHubWebhookOperator(task_id="deliver", alert=ALERT).execute({})
    assert result == {"event_id": ALERT["event_id"], "target": "dockerhub_notify", "status_code": 200}
    [webhook] = receiver.received
    assert webhook["body"] == ALERT["payload"]
    assert webhook["headers"]["x-dockerhub-event-id"] == ALERT["event_id"]


def test_operator_fails_on_a_refused_delivery(receiver):
    receiver.fail_next(1000, status=500)
    with pytest.raises(WebhookDeliveryError, match="500"):
        DockerHubWebhookOperator(task_id="deliver", alert=ALERT).execute({})


def test_a_refusal_for_good_is_returned_not_raised(receiver):
    receiver.fail_next(1, status=410)
    result = DockerHubWebhookOperator(task_id="deliver", alert=ALERT).execute({})
    assert result == {
        "event_id": ALERT["event_id"],
        "target": "dockerhub_notify",
        "status_code": 410,
        "refused": True,
    }


def test_operator_names_what_an_alert_lacks(receiver):
    with pytest.raises(ValueError, match="event_id"):
        DockerHubWebhookOperator(task_id="deliver", alert={"event": "build.failed", "payload": {}}).execute(
            {}
        )
    assert receiver.received == []


def test_the_alert_names_its_target_and_a_test_is_marked(receiver, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_TARGET", os.environ["AIRFLOW_CONN_DOCKERHUB_NOTIFY"])
    monkeypatch.delenv("AIRFLOW_CONN_DOCKERHUB_NOTIFY")
    alert = {**ALERT, "target": "other_target", "test": True}
    result = DockerHubWebhookOperator(task_id="deliver", alert=alert).execute({})
    assert result["target"] == "other_target"
    assert receiver.received[0]["headers"]["x-dockerhub-test"] == "true"
