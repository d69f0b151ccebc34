from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.sensors.build import DockerHubBuildSensor
from airflow_dockerhub.triggers.build import DockerHubBuildTrigger

NOW = datetime.now(timezone.utc)
LEGACY_FIELDS = {"id", "status", "created_date", "last_updated", "build_code", "dockertag_name", "cause"}


def use_connection(monkeypatch, url, **fields):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": url, **fields})
    )


@pytest.fixture
def hub(monkeypatch):
    state = HubState(NOW)
    state.add_repository("acme", "app")
    with serve_in_thread(create_hub_app(state)) as server:
        use_connection(monkeypatch, server.url)
        server.state = state
        yield server


def make_sensor(**kwargs):
    return DockerHubBuildSensor(**{"task_id": "wait_for_build", "repository": "acme/app", **kwargs})


def history_reads(state):
    return sum(1 for _, path in state.requests if path.endswith("/buildhistory/"))


# Poking


def test_a_successful_build_is_returned_as_a_json_summary(hub):
    hub.state.add_build("acme", "app", tag="latest", status=-1, created_minutes_ago=30)
    success = hub.state.add_build("acme", "app", tag="latest", status=10, created_minutes_ago=5)

    result = make_sensor().poke({})

    assert isinstance(result, PokeReturnValue) and result.is_done
    summary = result.xcom_value
    assert json.loads(json.dumps(summary)) == summary
    assert summary == {
        "repository": "acme/app",
        "namespace": "acme",
        "name": "app",
        "tag": "latest",
        "build_code": success["build_code"],
        "state": "success",
        "created": (NOW - timedelta(minutes=5)).isoformat(),
        "last_updated": (NOW - timedelta(minutes=5)).isoformat(),
        "build": success,
    }
    assert set(summary["build"]) == LEGACY_FIELDS


@pytest.mark.parametrize(("status", "state"), [(-1, "failed"), (-4, "cancelled")])
def test_a_failed_or_cancelled_build_fails_the_task_and_says_which(hub, status, state):
    build = hub.state.add_build("acme", "app", tag="v2", status=status, created_minutes_ago=5)

    with pytest.raises(AirflowFailException) as error:
        make_sensor(tag="v2").poke({})

    message = str(error.value)
    for expected in ("acme/app", "v2", build["build_code"], state):
        assert expected in message


@pytest.mark.parametrize("status", [0, 3])
def test_a_queued_or_running_build_is_not_done(hub, status):
    hub.state.add_build("acme", "app", status=status, created_minutes_ago=5)
    assert make_sensor().poke({}) is False


def test_a_repository_without_builds_is_not_done(hub):
    assert make_sensor().poke({}) is False


def test_a_success_of_another_tag_does_not_satisfy_a_tag(hub):
    hub.state.add_build("acme", "app", tag="v1", status=3, created_minutes_ago=10)
    hub.state.add_build("acme", "app", tag="latest", status=10, created_minutes_ago=2)

    assert make_sensor(tag="v1").poke({}) is False
    assert make_sensor().poke({}).xcom_value["tag"] == "latest"


def test_a_build_code_picks_that_build_whatever_came_later(hub):
    failed = hub.state.add_build("acme", "app", status=-1, created_minutes_ago=20)
    running = hub.state.add_build("acme", "app", status=3, created_minutes_ago=10)
    success = hub.state.add_build("acme", "app", status=10, created_minutes_ago=2)

    with pytest.raises(AirflowFailException, match=failed["build_code"]):
        make_sensor(build_code=failed["build_code"]).poke({})
    assert make_sensor(build_code=running["build_code"]).poke({}) is False
    assert make_sensor(build_code=success["build_code"]).poke({}).xcom_value["build"] == success


def test_a_rejected_login_fails_at_once_without_a_second_attempt(monkeypatch, hub):
    hub.state.add_user("alice", "dckr_pat_alice")
    use_connection(monkeypatch, hub.url, login="alice", password="wrong-secret")

    with pytest.raises(AirflowFailException, match="alice") as error:
        make_sensor().poke({})

    assert "wrong-secret" not in str(error.value)
    assert sum(1 for _, path in hub.state.requests if path.startswith("/v2/auth")) == 1


def test_an_unreachable_docker_hub_is_poked_again_rather_than_failed(monkeypatch, capfd):
    with serve_in_thread(create_hub_app(HubState(NOW))) as gone:
        pass
    use_connection(monkeypatch, gone.url)

    assert make_sensor().poke({}) is False
    # Airflow's task logger writes through structlog to the process output, not to caplog.
    assert "Could not read the latest build of acme/app" in capfd.readouterr().out


def test_a_repository_that_is_not_namespace_slash_name_is_refused(hub):
    with pytest.raises(ValueError, match="namespace/name"):
        make_sensor(repository="app").poke({})


# Deferring


def test_deferrable_sensor_defers_to_the_trigger_while_the_build_runs(monkeypatch, hub):
    hub.state.add_build("acme", "app", tag="v1", status=3, created_minutes_ago=5)
    monkeypatch.setenv("AIRFLOW_CONN_HUB_PROD", json.dumps({"conn_type": "dockerhub", "host": hub.url}))
    sensor = make_sensor(
        tag="v1", deferrable=True, poke_interval=15, timeout=600, dockerhub_conn_id="hub_prod"
    )

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    trigger = deferred.value.trigger
    assert isinstance(trigger, DockerHubBuildTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600)
    assert trigger.serialize()[1] == {
        "repository": "acme/app",
        "tag": "v1",
        "build_code": None,
        "created_after": None,
        "dockerhub_conn_id": "hub_prod",
        "poke_interval": 15.0,
    }


def test_created_after_waits_for_a_build_newer_than_the_old_failure(hub):
    hub.state.add_build("acme", "app", status=-1, created_minutes_ago=30)
    since = (hub.state.now - timedelta(minutes=10)).isoformat()
    sensor = make_sensor(created_after=since)

    assert sensor.poke({}) is False, "the old failure is not the build waited for"
    rebuilt = hub.state.add_build("acme", "app", status=10, created_minutes_ago=1)
    assert sensor.poke({}).xcom_value["build"] == rebuilt


def test_deferrable_sensor_returns_at_once_when_the_build_already_succeeded(hub):
    success = hub.state.add_build("acme", "app", status=10, created_minutes_ago=5)
    assert make_sensor(deferrable=True).execute({})["build"] == success


def test_deferrable_sensor_with_soft_fail_skips_a_failed_build(hub):
    hub.state.add_build("acme", "app", status=-1, created_minutes_ago=5)
    with pytest.raises(AirflowSkipException):
        make_sensor(deferrable=True, soft_fail=True).execute({})


# Whole DAG runs

SENSOR_DAGS = """
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_dockerhub.sensors.build import DockerHubBuildSensor

for dag_id, options in {
    "dockerhub_build_sensor_poke": {"mode": "poke"},
    "dockerhub_build_sensor_reschedule": {"mode": "reschedule"},
    "dockerhub_build_sensor_deferrable": {"deferrable": True},
}.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
        DockerHubBuildSensor(
            task_id="wait_for_build",
            repository="acme/app",
            tag="latest",
            poke_interval=1,
            timeout=30,
            retries=2,
            retry_delay=timedelta(seconds=1),
            **options,
        )
"""


@pytest.fixture
def sensor_dags(hub, load_test_dags):
    return load_test_dags("sensor_dags", SENSOR_DAGS)


def run_while_the_build_finishes(dag, state, status):
    """Run the DAG; once the sensor has seen the build running, let the build end in ``status``."""
    state.add_build("acme", "app", tag="latest", status=3, created_minutes_ago=5)
    stop = threading.Event()

    def finish():
        # Starting a task takes seconds here, so a fixed delay could end the build before the first poke.
        deadline = time.monotonic() + 60
        while not history_reads(state) and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.05)
        if not stop.wait(1.5):
            state.add_build("acme", "app", tag="latest", status=status, created_minutes_ago=1)

    finisher = threading.Thread(target=finish, daemon=True)
    finisher.start()
    try:
        return dag.test()
    finally:
        stop.set()
        finisher.join()


def reschedules(ti):
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).where(TaskReschedule.ti_id == ti.id))


@pytest.mark.parametrize(
    ("dag_id", "rescheduled"),
    [("dockerhub_build_sensor_poke", False), ("dockerhub_build_sensor_reschedule", True)],
)
def test_sensor_in_a_dag_run_waits_for_the_build_to_succeed(hub, sensor_dags, dag_id, rescheduled):
    run = run_while_the_build_finishes(sensor_dags[dag_id], hub.state, status=10)

    assert run.state == "success"
    ti = run.get_task_instance("wait_for_build")
    summary = ti.xcom_pull(task_ids="wait_for_build")
    assert (summary["repository"], summary["tag"], summary["state"]) == ("acme/app", "latest", "success")
    assert history_reads(hub.state) >= 2
    assert (reschedules(ti) > 0) is rescheduled


def test_deferrable_sensor_in_a_dag_run_resumes_with_the_triggers_event(hub, sensor_dags, capfd):
    run = run_while_the_build_finishes(sensor_dags["dockerhub_build_sensor_deferrable"], hub.state, status=10)

    assert run.state == "success"
    assert "reached the final state success [airflow_dockerhub.triggers.build" in capfd.readouterr().out
    summary = run.get_task_instance("wait_for_build").xcom_pull(task_ids="wait_for_build")
    assert summary["state"] == "success"


def test_a_build_that_fails_during_a_dag_run_fails_the_sensor_without_retries(hub, sensor_dags):
    run = run_while_the_build_finishes(sensor_dags["dockerhub_build_sensor_reschedule"], hub.state, status=-1)

    assert run.state == "failed"
    ti = run.get_task_instance("wait_for_build")
    assert ti.state == "failed"
    assert ti.try_number == 1


def test_an_unreadable_created_after_names_the_field(hub):
    with pytest.raises(AirflowFailException, match="created_after"):
        make_sensor(created_after="after lunch").poke({})
