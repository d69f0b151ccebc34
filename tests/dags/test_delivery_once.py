"""Nothing answered 2xx is sent twice, and nothing is lost: reruns, cleared tasks, lost records, overlaps."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.dags.monitor_runs import DAG_ID, load_monitor_dag, run_monitor, stored_record


def _event_ids(receiver):
    return [w["headers"]["x-dockerhub-event-id"] for w in receiver.received]


def _returned(run_id, task_id):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = (
            session.query(XComModel.value)
            .filter_by(dag_id=DAG_ID, run_id=run_id, task_id=task_id, key="return_value")
            .scalar()
        )
    return json.loads(value) if isinstance(value, str) else value


def _run_task_again(run_id, task_id, map_index=-1):
    """Run one task instance of an existing run again, as clearing it in the UI does."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "tasks",
            "test",
            DAG_ID,
            task_id,
            run_id,
            "--map-index",
            str(map_index),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_rerunning_a_whole_delivered_run_sends_nothing_again(services, demo_problems):
    _, receiver = services
    first = run_monitor()
    assert first.state == "success"
    assert len(receiver.received) == len(demo_problems)
    assert _returned(first.run_id, "record_deliveries") == {"recorded": len(demo_problems)}
    receiver.clear()

    # dag.test() for the same moments clears every task of that run and runs it again.
    rerun = load_monitor_dag().test(logical_date=first.logical_date, run_after=first.run_after)

    assert rerun.run_id == first.run_id
    assert rerun.state == "success"
    assert receiver.received == []


def test_a_cleared_delivery_task_does_not_send_again(services, demo_problems):
    _, receiver = services
    run = run_monitor()
    assert run.state == "success"
    sent = len(receiver.received)
    assert sent == len(demo_problems)

    result = _run_task_again(run.run_id, "deliver_alert", map_index=0)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "the alert record says" in result.stdout + result.stderr
    assert len(receiver.received) == sent


def test_deliveries_whose_record_step_never_ran_are_recorded_by_the_next_run(services, demo_problems):
    _, receiver = services
    # The record step is skipped, as when its worker dies and its retries are spent: the webhooks
    # went out, the record does not know.
    load_monitor_dag().test(mark_success_pattern="record_deliveries")
    assert len(receiver.received) == len(demo_problems)
    assert stored_record() == {}
    first_ids = sorted(_event_ids(receiver))
    receiver.clear()

    second = run_monitor()

    assert second.state == "success"
    assert receiver.received == [], "what the first run delivered is not sent again"
    assert sorted(stored_record()) == first_ids


def test_a_run_planned_before_another_delivered_sends_nothing_twice(services, demo_problems):
    _, receiver = services
    # Run A plans its deliveries, then stalls before sending them (here: marked done unsent)...
    stalled = load_monitor_dag().test(mark_success_pattern="deliver_alert|record_deliveries")
    assert receiver.received == []
    # ...while run B plans the same alerts, delivers and records them...
    assert run_monitor().state == "success"
    delivered = len(receiver.received)
    assert delivered == len(demo_problems)

    # ...and then A's delivery runs at last.
    result = _run_task_again(stalled.run_id, "deliver_alert", map_index=0)

    assert result.returncode == 0, result.stderr[-2000:]
    assert len(receiver.received) == delivered
    assert len(set(_event_ids(receiver))) == delivered
