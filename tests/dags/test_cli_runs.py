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


def test_airflow_dags_test_with_only_the_documented_settings(airflow_env, public_demo_problems, summarize):
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
        assert summarize(receiver.received) == public_demo_problems
        assert len(receiver.received) == len(public_demo_problems)
        assert all(w["basic_auth"] == ("alerts", "pa55:word") for w in receiver.received)
        assert all(w["query"] == "team=infra&key=k-77" for w in receiver.received)
        for output in (first.stdout, first.stderr):
            assert "pa55:word" not in output and "pa55%3Aword" not in output and "k-77" not in output

        second = airflow_dags_test(airflow_env)
        assert second.returncode == 0
        assert len(receiver.received) == len(public_demo_problems)

        hub_state.add_build("demo", "worker", tag="latest", status=-1, created_minutes_ago=1)
        third = airflow_dags_test(airflow_env)
        assert third.returncode == 0
        new = receiver.received[len(public_demo_problems) :]
        assert [(w["body"]["repository"]["repo_name"], w["body"]["repository"]["status"]) for w in new] == [
            ("demo/worker", "Failed")
        ]
