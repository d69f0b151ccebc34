"""The monitor watching itself: an unreadable namespace is told once, after the configured cycles."""

from __future__ import annotations

import json

from tests.dags.monitor_runs import run_monitor


def _monitor_events(receiver):
    return [w for w in receiver.received if w["headers"]["x-dockerhub-event"].startswith("monitor.")]


def test_a_namespace_unreadable_for_the_configured_cycles_is_told_once(services, monkeypatch, demo_problems):
    _, receiver = services
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_NAMESPACES", "demo,ghost")
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_UNREADABLE_ALERT_CYCLES", "2")

    first = run_monitor()
    assert first.state == "failed", "a namespace that cannot be read fails the cycle"
    assert _monitor_events(receiver) == []
    assert len(receiver.received) == len(demo_problems), "the readable namespace is still watched"

    run_monitor()
    [told] = _monitor_events(receiver)
    assert told["headers"]["x-dockerhub-event"] == "monitor.namespace_unreadable"
    assert told["body"]["monitor"]["namespace"] == "ghost"
    assert told["body"]["monitor"]["cycles"] == 2

    run_monitor()
    assert len(_monitor_events(receiver)) == 1, "told once, not every cycle"

    from airflow.models import Variable

    stored = json.loads(Variable.get("dockerhub_monitor_health"))
    assert stored["namespace:ghost"]["cycles"] == 3
    assert list(stored["namespace:ghost"]["alerted"]) == ["dockerhub_notify"]
