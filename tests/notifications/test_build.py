from __future__ import annotations

import json

import pytest

from airflow_dockerhub.emulator import (
    HubState,
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    serve_in_thread,
)

NOTIFIER_DAGS = """
from __future__ import annotations

from airflow.sdk import DAG, task

from airflow_dockerhub.notifications.build import DockerHubBuildNotifier, notify_build_outcome

with DAG("notifier_on_failure", schedule=None) as failing:

    @task(on_failure_callback=DockerHubBuildNotifier(repository="acme/app", targets=["hook", "chat"]))
    def deploy():
        raise RuntimeError("the image is not there")

    deploy()

with DAG("notifier_outcome", schedule=None) as outcome:

    @task
    def tell():
        return notify_build_outcome("acme/app", "latest", targets=["hook", "chat"], resolve=True)

    tell()
"""


@pytest.fixture
def dags(load_test_dags):
    from airflow.models import Variable

    Variable.delete("dockerhub_alert_record")
    yield load_test_dags("notifier_dags", NOTIFIER_DAGS)
    Variable.delete("dockerhub_alert_record")


@pytest.fixture
def world(monkeypatch):
    hub_state = HubState()
    hub_state.add_repository("acme", "app")
    receiver = ReceiverState()
    with (
        serve_in_thread(create_hub_app(hub_state)) as hub,
        serve_in_thread(create_receiver_app(receiver)) as rcv,
    ):
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": hub.url})
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_HOOK", json.dumps({"conn_type": "generic", "host": rcv.url + "/hook"})
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_CHAT",
            json.dumps({"conn_type": "generic", "host": rcv.url + "/chat", "extra": {"format": "slack"}}),
        )
        yield hub_state, receiver


def by_path(receiver):
    return sorted((w["path"], w["headers"]["x-dockerhub-event"]) for w in receiver.received)


def test_a_failure_callback_sends_the_monitors_alert_once_per_target(dags, world):
    hub_state, receiver = world
    hub_state.add_build("acme", "app", status=-1, created_minutes_ago=5)

    assert dags["notifier_on_failure"].test().state == "failed"
    assert by_path(receiver) == [("/chat", "build.failed"), ("/hook", "build.failed")]
    hook = next(w for w in receiver.received if w["path"] == "/hook")
    assert hook["body"]["repository"]["status"] == "Failed"

    receiver.clear()
    dags["notifier_on_failure"].test()
    assert receiver.received == [], "the record already holds the alert for both targets"


def test_a_later_success_resolves_the_alert_where_the_target_wants_it(dags, world):
    hub_state, receiver = world
    hub_state.add_build("acme", "app", status=-1, created_minutes_ago=20)
    dags["notifier_on_failure"].test()
    receiver.clear()

    hub_state.add_build("acme", "app", status=10, created_minutes_ago=2)
    assert dags["notifier_outcome"].test().state == "success"

    assert by_path(receiver) == [("/chat", "build.resolved")]
    receiver.clear()
    dags["notifier_outcome"].test()
    assert receiver.received == []


def test_a_success_without_an_earlier_alert_sends_nothing(dags, world):
    hub_state, receiver = world
    hub_state.add_build("acme", "app", status=10, created_minutes_ago=2)
    assert dags["notifier_outcome"].test().state == "success"
    assert receiver.received == []
