"""The monitor DAG on a bigger namespace behind Docker Hub's rate limit."""

from __future__ import annotations

import json

from airflow_dockerhub.settings import POLL_STATE_VARIABLE
from tests.dags.monitor_runs import DAG_ID, run_monitor


def _snapshot_xcom(run_id):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = (
            session.query(XComModel.value)
            .filter_by(dag_id=DAG_ID, run_id=run_id, task_id="fetch_build_history", key="return_value")
            .scalar()
        )
    return json.loads(value) if isinstance(value, str) else value


def test_a_rate_limited_cycle_gets_no_429_remembers_its_listing_and_hands_on_only_what_matters(
    services, monkeypatch, demo_problems, summarize
):
    hub, receiver = services
    hub.populate("bulk", 60, builds=2, failing_every=1000)
    hub.rate_limit, hub.rate_window = 2000, 60.0
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_NAMESPACES", "demo,bulk")

    first = run_monitor()

    assert first.state == "success"
    assert summarize(receiver.received) == demo_problems
    assert hub.stats()["rate_limited"] == 0
    snapshot = _snapshot_xcom(first.run_id)
    assert snapshot["repositories_polled"] >= 60
    assert all(item["namespace"] == "demo" for item in snapshot["builds"]), (
        "the bulk namespace only has successes nobody alerted about; they stay out of the XCom"
    )
    assert snapshot["tag_states"]["success"] >= 60

    from airflow.models import Variable

    stored = json.loads(Variable.get(POLL_STATE_VARIABLE))
    assert len(stored["namespaces"]["bulk"]["automated"]) == 60

    hub.reset_stats()
    second = run_monitor()
    assert second.state == "success"
    listings = [path for _, path in hub.requests if path.rstrip("/") == "/v2/repositories/bulk"]
    assert len(listings) == 1, "only the first page, to see the size has not changed"
