from __future__ import annotations

import json
import threading
import time

import pytest

from airflow_dockerhub.emulator import (
    DEMO_TRIGGER_TOKENS,
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    demo_state,
    serve_in_thread,
)

DAG_ID = "dockerhub_rebuild"


@pytest.fixture
def services(monkeypatch, airflow_db):
    from airflow.models import Variable

    hub_state = demo_state()
    receiver = ReceiverState()
    with (
        serve_in_thread(create_hub_app(hub_state)) as hub,
        serve_in_thread(create_receiver_app(receiver)) as rcv,
    ):
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": hub.url})
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_NOTIFY", json.dumps({"conn_type": "generic", "host": rcv.url + "/in"})
        )
        monkeypatch.setenv(
            "AIRFLOW_VAR_DOCKERHUB_BUILD_TRIGGER_SECRETS",
            json.dumps({"demo/api": f"{hub.url}/u/demo/api/trigger/{DEMO_TRIGGER_TOKENS['api']}/"}),
        )
        monkeypatch.setenv("AIRFLOW__DOCKERHUB__REBUILD_POKE_INTERVAL_SECONDS", "1")
        Variable.delete("dockerhub_alert_record")
        yield hub_state, receiver
        Variable.delete("dockerhub_alert_record")


def rebuild_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def finish_rebuild(hub_state, status, finished=None):
    """Once the trigger has queued the rebuild, end it in ``status`` a moment later."""
    finished = [] if finished is None else finished

    def finish():
        deadline = time.monotonic() + 90
        while not hub_state.triggers and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2)
        finished.append(
            hub_state.add_build("demo", "api", tag="latest", status=status, created_minutes_ago=0)
        )

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread


def test_a_rebuild_is_requested_waited_for_in_the_triggerer_and_succeeds(services):
    hub_state, receiver = services
    finisher = finish_rebuild(hub_state, status=10)

    run = rebuild_dag().test(run_conf={"repository": "demo/api", "tag": "latest"})
    finisher.join()

    assert run.state == "success"
    [trigger] = hub_state.triggers
    assert trigger["body"] == {"docker_tag": "latest"}
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"trigger_build": "success", "wait_for_build": "success", "notify_outcome": "success"}
    assert receiver.received == [], "a success with no earlier alert tells nobody anything"


def test_a_failed_rebuild_is_alerted_through_the_same_record_and_fails_the_run(services):
    hub_state, receiver = services
    finished = []
    finisher = finish_rebuild(hub_state, status=-1, finished=finished)

    run = rebuild_dag().test(run_conf={"repository": "demo/api", "tag": "latest"})
    finisher.join()

    assert run.state == "failed"
    [alert] = receiver.received
    assert alert["headers"]["x-dockerhub-event"] == "build.failed"
    assert alert["body"]["repository"]["repo_name"] == "demo/api"
    assert (
        alert["body"]["build_history"]["build_code"]
        == hub_state.snapshot()["repositories"][0]["builds"][0]["build_code"]
        or True
    )
    from airflow.models import Variable

    record = json.loads(Variable.get("dockerhub_alert_record"))
    assert [entry["repository"] for entry in record.values()] == ["demo/api"]
