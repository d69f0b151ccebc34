from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from airflow_dockerhub.emulator import (
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    demo_state,
    serve_in_thread,
)

DAG_ID = "dockerhub_build_monitor"

#: Anonymous reads see every public problem build of the demo namespace, not the private one.
EXPECTED_ANONYMOUS = {
    ("demo/api", "latest", "Failed"),
    ("demo/worker", "latest", "Failed"),
    ("demo/queue-stuck", "latest", "Queued"),
    ("demo/long-build", "latest", "Building"),
    ("demo/cancelled", "latest", "Cancelled"),
    ("demo/modern-app", "latest", "Failed"),
}


@pytest.fixture
def airflow_env(tmp_path):
    env = os.environ.copy()
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=env
    )
    return env


def airflow_dags_test(env):
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_airflow_dags_test_with_only_the_documented_settings(airflow_env):
    """Run the CLI the way a user does: two connections and one variable, nothing else."""
    hub_state = demo_state()
    receiver = ReceiverState("alerts", "pa55:word")
    with (
        serve_in_thread(create_hub_app(hub_state)) as hub,
        serve_in_thread(create_receiver_app(receiver)) as rcv,
    ):
        notify = (
            rcv.url.replace("http://", "http://alerts:pa55%3Aword@") + "/notify/dockerhub?team=infra&key=k-77"
        )
        airflow_env["AIRFLOW_CONN_DOCKERHUB_DEFAULT"] = json.dumps(
            {"conn_type": "dockerhub", "host": hub.url}
        )
        airflow_env["AIRFLOW_CONN_DOCKERHUB_NOTIFY"] = json.dumps({"conn_type": "http", "host": notify})
        airflow_env["AIRFLOW_VAR_DOCKERHUB_NAMESPACES"] = "demo"

        first = airflow_dags_test(airflow_env)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        received = {
            (
                w["body"]["repository"]["repo_name"],
                w["body"]["push_data"]["tag"],
                w["body"]["repository"]["status"],
            )
            for w in receiver.received
        }
        assert received == EXPECTED_ANONYMOUS
        assert len(receiver.received) == len(EXPECTED_ANONYMOUS)
        assert all(w["basic_auth"] == ("alerts", "pa55:word") for w in receiver.received)
        assert all(w["query"] == "team=infra&key=k-77" for w in receiver.received)
        for output in (first.stdout, first.stderr):
            assert "pa55:word" not in output and "pa55%3Aword" not in output and "k-77" not in output

        second = airflow_dags_test(airflow_env)
        assert second.returncode == 0
        assert len(receiver.received) == len(EXPECTED_ANONYMOUS)

        hub_state.add_build("demo", "worker", tag="latest", status=-1, created_minutes_ago=1)
        third = airflow_dags_test(airflow_env)
        assert third.returncode == 0
        new = receiver.received[len(EXPECTED_ANONYMOUS) :]
        assert [(w["body"]["repository"]["repo_name"], w["body"]["repository"]["status"]) for w in new] == [
            ("demo/worker", "Failed")
        ]
