from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"

# Parses the DAG folder in a fresh interpreter whose sockets refuse to connect and whose metadata
# database cannot be opened: a DAG file that reached for either would fail to import.
PARSE_OFFLINE = textwrap.dedent(
    """
    import socket, sys

    def refuse(*args, **kwargs):
        raise RuntimeError("network access at parse time")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    """
)
PARSE = PARSE_OFFLINE + textwrap.dedent(
    """
    assert bag.import_errors == {}, bag.import_errors
    print(sorted(bag.dags))
    """
)
# Prints the monitor's schedule, or the import error.
SCHEDULE = PARSE_OFFLINE + textwrap.dedent(
    """
    if bag.import_errors:
        print("IMPORT ERROR", *bag.import_errors.values())
    else:
        print("SCHEDULE", bag.dags["dockerhub_build_monitor"].timetable.expression)
    """
)


def _parse_offline(tmp_path, script, **env_overrides):
    env = os.environ.copy()
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path}/missing-dir/airflow.db"
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", script, str(DAGS)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "missing-dir").exists(), "parsing must not open the database"
    return result.stdout


def test_dag_file_parses_without_network_or_database(tmp_path):
    output = _parse_offline(tmp_path, PARSE)
    assert "dockerhub_build_monitor" in output and "dockerhub_rebuild" in output


def test_dag_schedule_and_steps():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.dags["dockerhub_build_monitor"]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.timetable.expression == "*/5 * * * *"
    assert {t.task_id for t in dag.tasks} == {
        "fetch_build_history",
        "evaluate",
        "anything_to_do",
        "rebuilds_to_request",
        "request_rebuild",
        "deliver_alert",
        "all_clear",
        "record_deliveries",
    }
    assert set(dag.params) == {
        "namespaces",
        "queued_threshold_minutes",
        "building_threshold_minutes",
        "max_build_age_hours",
        "test_alert_repository",
        "dry_run",
    }
    assert all(dag.params.get_param(name).description for name in dag.params)


def test_rebuild_dag_is_started_by_hand_with_documented_params():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["dockerhub_rebuild"]
    assert dag.timetable.can_be_scheduled is False
    assert [t.task_id for t in dag.topological_sort()] == [
        "trigger_build",
        "wait_for_build",
        "notify_outcome",
    ]
    assert dag.get_task("wait_for_build").deferrable is True
    assert {name: dag.params.get_param(name).description for name in dag.params}.keys() == {
        "repository",
        "tag",
    }
    assert all(dag.params.get_param(name).description for name in dag.params)


def _parse_with_schedule(tmp_path, value):
    return _parse_offline(tmp_path, SCHEDULE, AIRFLOW__DOCKERHUB__MONITOR_SCHEDULE=value)


def test_the_monitor_schedule_is_overridden_by_the_airflow_configuration(tmp_path):
    assert "SCHEDULE */15 * * * *" in _parse_with_schedule(tmp_path, "*/15 * * * *")
    hourly = _parse_with_schedule(tmp_path, "@hourly").strip().splitlines()[-1]
    assert hourly in ("SCHEDULE @hourly", "SCHEDULE 0 * * * *")


def test_a_bad_monitor_schedule_fails_the_import_naming_the_option(tmp_path):
    output = _parse_with_schedule(tmp_path, "every five minutes")
    assert "IMPORT ERROR" in output
    assert "[dockerhub] monitor_schedule (AIRFLOW__DOCKERHUB__MONITOR_SCHEDULE)" in output
    assert "'every five minutes'" in output


def test_the_cycle_budget_follows_the_schedule():
    from airflow_dockerhub.settings import parse_schedule, schedule_cycle_seconds

    assert parse_schedule(None) == "*/5 * * * *" and parse_schedule("none") is None
    assert schedule_cycle_seconds("*/5 * * * *", 300.0) == 300.0
    assert schedule_cycle_seconds("0 * * * *", 300.0) == 3600.0
    assert schedule_cycle_seconds(None, 300.0) == 300.0


def test_a_rare_schedule_still_reads_within_the_runs_timeout():
    from airflow_dockerhub.monitor import READ_SHARE
    from airflow_dockerhub.settings import MONITOR_RUN_TIMEOUT, planned_cycle_seconds

    assert planned_cycle_seconds("*/5 * * * *", None) == 300.0
    assert planned_cycle_seconds(None, 120.0) == 120.0
    for hourly in (planned_cycle_seconds("0 * * * *", None), planned_cycle_seconds(None, 86400.0)):
        # Reading ends with at least ten minutes of the run left for evaluating and delivering.
        assert hourly * READ_SHARE <= MONITOR_RUN_TIMEOUT.total_seconds() - 600
