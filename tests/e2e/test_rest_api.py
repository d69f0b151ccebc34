"""
Airflow 3 running the installed wheel, seen through its REST API: the provider, its connection type,
the bundled DAGs, scheduled and triggered monitor runs, reruns, and a rebuild waiting in the triggerer.

The tests of this module run in order against one deployment per metadata database: the first
scheduled monitor run delivers the demo namespace's alerts, and later tests rerun it.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from airflow_dockerhub import __version__
from airflow_dockerhub.dags.build_monitor import create_build_monitor_dag
from airflow_dockerhub.dags.rebuild import create_rebuild_dag
from airflow_dockerhub.get_provider_info import CONNECTION_FORM
from tests.e2e.airflow_api import describe_states
from tests.e2e.processes import wait_until

pytestmark = pytest.mark.e2e

MONITOR = "dockerhub_build_monitor"
REBUILD = "dockerhub_rebuild"
#: What the demo namespace holds that a first monitor cycle must tell (README: "seven webhooks").
DEMO_ALERTS = {
    ("build.failed", "demo/api:latest"),
    ("build.failed", "demo/worker:latest"),
    ("build.failed", "demo/modern-app:latest"),
    ("build.failed", "demo/private-app:latest"),
    ("build.cancelled", "demo/cancelled:latest"),
    ("build.queued_too_long", "demo/queue-stuck:latest"),
    ("build.building_too_long", "demo/long-build:latest"),
}
#: A monitor cycle on a busy two-core machine, from queued to its last task.
RUN_TIMEOUT = 300


def described(webhook) -> tuple[str, str]:
    """Return a webhook's event and ``repository:tag``, as the receiver got them."""
    body = webhook["body"]
    tag = body["push_data"]["tag"]
    return webhook["headers"]["x-dockerhub-event"], f"{body['repository']['repo_name']}:{tag}"


def deliveries(deployment) -> list[dict]:
    """Return every webhook the receiver accepted so far, tests excluded."""
    return [
        hook for hook in deployment.receiver.received() if hook["headers"].get("x-dockerhub-test") != "true"
    ]


def assert_nothing_sent_twice(deployment) -> None:
    counts = Counter(hook["headers"]["x-dockerhub-event-id"] for hook in deliveries(deployment))
    twice = {event_id: count for event_id, count in counts.items() if count > 1}
    assert not twice, f"delivered more than once: {twice}"


def test_the_provider_is_listed_with_its_version(deployment):
    providers = deployment.api.get("/providers", limit=1000)["providers"]
    ours = [provider for provider in providers if provider["package_name"] == "airflow-provider-dockerhub"]
    assert [provider["version"] for provider in ours] == [__version__]


def test_the_dockerhub_connection_type_is_offered_with_its_labelled_fields(deployment):
    # What the connection form is built from; the public API has no such endpoint.
    hooks = deployment.api.call("GET", "/connections/hook_meta", prefix="/ui")
    [dockerhub] = [hook for hook in hooks if hook["connection_type"] == "dockerhub"]
    assert dockerhub["hook_name"] == "Docker Hub"
    fields = dockerhub["standard_fields"]
    for field, label in CONNECTION_FORM["relabeling"].items():
        assert fields[field]["title"] == label
        assert not fields[field]["hidden"]
        assert fields[field]["placeholder"] == CONNECTION_FORM["placeholders"][field]
    for field in CONNECTION_FORM["hidden_fields"]:
        # The UI's model calls the schema field url_schema.
        shown_as = {"schema": "url_schema"}.get(field, field)
        assert fields[shown_as]["hidden"], field


def test_the_bundled_dags_import_with_no_errors_and_offer_their_documented_params(deployment):
    errors = deployment.api.get("/importErrors")
    assert errors["total_entries"] == 0, errors["import_errors"]
    for dag in (create_build_monitor_dag(), create_rebuild_dag()):
        details = deployment.api.get(f"/dags/{dag.dag_id}/details")
        assert details["is_paused"], "a new DAG waits to be unpaused"
        served = {name: param["description"] for name, param in details["params"].items()}
        documented = {name: param.description for name, param in dag.params.items()}
        assert served == documented
        assert all(documented.values()), "every param needs a description to show in the trigger form"


def test_unpausing_the_monitor_makes_its_scheduled_run_deliver_the_demo_alerts(deployment):
    assert deliveries(deployment) == []
    deployment.api.call("PATCH", f"/dags/{MONITOR}", json={"is_paused": False})

    # With catch-up off, the scheduler runs the latest five-minute slot right after unpausing.
    first = wait_until(
        lambda: deployment.api.runs(MONITOR, run_type="scheduled"), timeout=120, what="a scheduled run"
    )[0]
    run = deployment.api.wait_for_run(MONITOR, first["dag_run_id"], timeout=RUN_TIMEOUT)
    assert run["state"] == "success", describe_states(run["task_instances"])

    received = deliveries(deployment)
    assert sorted(map(described, received)) == sorted(DEMO_ALERTS)
    assert all(hook["basic_auth"] == [deployment.receiver_user, "***"] for hook in received)
    delivered = [ti for ti in run["task_instances"] if ti["task_id"] == "deliver_alert"]
    assert len(delivered) == len(DEMO_ALERTS) and {ti["state"] for ti in delivered} == {"success"}

    stored = _record(deployment)
    assert {hook["headers"]["x-dockerhub-event-id"] for hook in received} <= set(stored)


def test_a_run_triggered_with_a_test_repository_sends_one_test_alert(deployment):
    recorded_before = set(_record(deployment))
    seen = len(deployment.receiver.received())

    run_id = deployment.api.trigger(MONITOR, {"test_alert_repository": "demo/api:latest"})
    run = deployment.api.wait_for_run(MONITOR, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", describe_states(run["task_instances"])

    new = deployment.receiver.received()[seen:]
    tests = [hook for hook in new if hook["headers"].get("x-dockerhub-test") == "true"]
    assert [described(hook) for hook in tests] == [("build.test", "demo/api:latest")]
    assert new == tests, "a test run sends nothing but the test"
    # A scheduled run may save the record meanwhile, so its alerts are compared, not its text.
    recorded = _record(deployment)
    assert set(recorded) == recorded_before
    assert tests[0]["headers"]["x-dockerhub-event-id"] not in recorded


def test_clearing_a_delivered_task_and_rerunning_the_whole_run_send_nothing_twice(deployment):
    [first, *_] = deployment.api.runs(MONITOR, run_type="scheduled")
    run_id = first["dag_run_id"]
    seen = len(deliveries(deployment))
    tries = _tries(deployment, run_id)

    # One delivered task instance, cleared as a person would from its menu in the grid.
    deployment.api.call(
        "POST",
        f"/dags/{MONITOR}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [["deliver_alert", 0]],
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    run = deployment.api.wait_for_run(MONITOR, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", describe_states(run["task_instances"])
    assert _tries(deployment, run_id)["deliver_alert[0]"] > tries["deliver_alert[0]"], "it ran again"

    # Then the whole run.
    tries = _tries(deployment, run_id)
    deployment.api.call("POST", f"/dags/{MONITOR}/dagRuns/{run_id}/clear", json={"dry_run": False})
    run = deployment.api.wait_for_run(MONITOR, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", describe_states(run["task_instances"])
    again = _tries(deployment, run_id)
    assert again["fetch_build_history"] > tries["fetch_build_history"], "the whole run ran again"
    assert again["record_deliveries"] > tries["record_deliveries"]

    assert len(deliveries(deployment)) == seen
    assert_nothing_sent_twice(deployment)


def test_a_rebuild_waits_for_the_new_build_in_the_triggerer_and_completes(deployment):
    seen = len(deliveries(deployment))
    # A paused DAG's runs stay queued; the UI's trigger form unpauses it the same way.
    deployment.api.call("PATCH", f"/dags/{REBUILD}", json={"is_paused": False})
    run_id = deployment.api.trigger(REBUILD, {"repository": "demo/worker", "tag": "latest"})

    deferred = wait_until(
        lambda: _state(deployment, REBUILD, run_id, "wait_for_build") == "deferred",
        timeout=180,
        what="the rebuild's sensor to defer",
        interval=1,
    )
    assert deferred
    assert deployment.health()["triggerer"]["status"] == "healthy"
    triggers = deployment.hub.state()
    assert any(call["repository"] == "demo/worker" for call in triggers.get("triggers", [])), triggers.keys()

    deployment.hub.add_build("demo/worker", tag="latest", status=10, created_minutes_ago=0)
    run = deployment.api.wait_for_run(REBUILD, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", describe_states(run["task_instances"])
    states = describe_states(run["task_instances"])
    assert states == {"trigger_build": "success", "wait_for_build": "success", "notify_outcome": "success"}

    # The monitor had alerted demo/worker:latest; its successful rebuild resolves that alert, once.
    new = [described(hook) for hook in deliveries(deployment)[seen:]]
    assert new == [("build.resolved", "demo/worker:latest")]
    assert_nothing_sent_twice(deployment)


def _tries(deployment, run_id) -> dict[str, int]:
    return {
        (f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]): ti["try_number"]
        for ti in deployment.api.task_instances(MONITOR, run_id)
    }


def _state(deployment, dag_id, run_id, task_id) -> str | None:
    for ti in deployment.api.task_instances(dag_id, run_id):
        if ti["task_id"] == task_id:
            assert ti["state"] not in {"failed", "upstream_failed"}, f"{task_id} {ti['state']}"
            return ti["state"]
    return None


def _record(deployment) -> dict:
    """Return the alert record as stored in its variable, keyed by event id."""
    return json.loads(deployment.api.get("/variables/dockerhub_alert_record")["value"])


#: Rebuilds that end at the same moment, each alerting a tag of its own.
PARALLEL_REBUILDS = [
    ("demo/api", "parallel-1"),
    ("demo/api", "parallel-2"),
    ("demo/worker", "parallel-3"),
    ("demo/worker", "parallel-4"),
]


def test_rebuilds_failing_at_the_same_time_all_land_in_the_alert_record(deployment):
    seen = len(deliveries(deployment))
    run_ids = [
        deployment.api.trigger(REBUILD, {"repository": repository, "tag": tag})
        for repository, tag in PARALLEL_REBUILDS
    ]
    wait_until(
        lambda: all(
            _state(deployment, REBUILD, run_id, "wait_for_build") == "deferred" for run_id in run_ids
        ),
        timeout=240,
        what="every rebuild's sensor to defer",
        interval=2,
    )

    # All new builds fail at once, so the triggerer wakes every sensor in the same poll and their
    # notify_outcome tasks write the record side by side.
    for repository, tag in PARALLEL_REBUILDS:
        deployment.hub.add_build(repository, tag=tag, status=-1, created_minutes_ago=0)
    runs = [deployment.api.wait_for_run(REBUILD, run_id, timeout=RUN_TIMEOUT) for run_id in run_ids]
    for run in runs:
        states = describe_states(run["task_instances"])
        assert run["state"] == "failed" and states["wait_for_build"] == "failed", states
        assert states["notify_outcome"] == "failed", "a failed rebuild fails its run after telling"

    new = deliveries(deployment)[seen:]
    expected = [("build.failed", f"{repository}:{tag}") for repository, tag in PARALLEL_REBUILDS]
    assert sorted(map(described, new)) == sorted(expected)
    record = _record(deployment)
    for hook in new:
        entry = record.get(hook["headers"]["x-dockerhub-event-id"])
        assert entry and "dockerhub_notify" in entry["delivered"], (
            f"{described(hook)} missing from the record"
        )

    if deployment.database == "postgresql":
        notified = [ti for run in runs for ti in run["task_instances"] if ti["task_id"] == "notify_outcome"]
        # Otherwise this proves nothing about writers meeting; SQLite's deployment runs two at most.
        assert _overlapping(notified) >= 2, "the notify_outcome tasks never ran side by side"

    # A monitor cycle finds those failures too, and the record says they were told.
    run_id = deployment.api.trigger(MONITOR)
    run = deployment.api.wait_for_run(MONITOR, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success", describe_states(run["task_instances"])
    assert len(deliveries(deployment)) == seen + len(PARALLEL_REBUILDS)
    assert_nothing_sent_twice(deployment)


def test_the_next_scheduled_run_sends_nothing_again(deployment):
    seen = len(deliveries(deployment))
    earlier = {run["dag_run_id"] for run in deployment.api.runs(MONITOR, run_type="scheduled")}

    # The next five-minute slot; at most five minutes away.
    later = wait_until(
        lambda: [
            run
            for run in deployment.api.runs(MONITOR, run_type="scheduled")
            if run["dag_run_id"] not in earlier
        ],
        timeout=360,
        what="the next scheduled monitor run",
        interval=5,
    )
    run = deployment.api.wait_for_run(MONITOR, later[0]["dag_run_id"], timeout=RUN_TIMEOUT)
    deployment.api.call("PATCH", f"/dags/{MONITOR}", json={"is_paused": True})
    assert run["state"] == "success", describe_states(run["task_instances"])
    assert len(deliveries(deployment)) == seen
    assert_nothing_sent_twice(deployment)


def _overlapping(task_instances) -> int:
    """Return the most task instances that were running at one moment."""
    moments = sorted(
        [(ti["start_date"], 1) for ti in task_instances] + [(ti["end_date"], -1) for ti in task_instances]
    )
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most
