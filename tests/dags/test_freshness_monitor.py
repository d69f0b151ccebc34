"""Tag freshness and the retirement notice in whole monitor cycles (dag.test() against the emulator)."""

from __future__ import annotations

import json
import os

from tests.dags.monitor_runs import run_monitor, stored_record


def _tag_events(receiver):
    return sorted(
        (
            w["headers"]["x-dockerhub-event"],
            w["body"]["repository"]["repo_name"],
            w["body"]["push_data"]["tag"],
        )
        for w in receiver.received
        if w["headers"]["x-dockerhub-event"].startswith("tag.")
    )


def _set_rules(monkeypatch, rules):
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_FRESHNESS_RULES", json.dumps(rules))


def _want_resolved(monkeypatch):
    notify = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_NOTIFY"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_NOTIFY", json.dumps({**notify, "extra": {"send_resolved": True}})
    )


def test_stale_missing_and_pushed_again_tags_in_the_monitor_cycle(services, monkeypatch, demo_problems):
    hub, receiver = services
    _want_resolved(monkeypatch)
    hub.push_tag("demo", "worker", tag="release-1", pushed_minutes_ago=5 * 24 * 60)
    hub.push_tag("demo", "worker", tag="release-2", pushed_minutes_ago=3 * 24 * 60)
    _set_rules(
        monkeypatch,
        [
            {"repository": "demo/api", "tag": "latest", "interval": "1d", "grace": "1h"},
            {"repository": "demo/api", "tag": "v1", "interval": "1h"},
            {"repository": "demo/worker", "tag": "release-*", "interval": "P1D", "grace": "PT2H"},
            {"repository": "demo/api", "tag": "nightly", "interval": "1d"},
        ],
    )

    assert run_monitor().state == "success"
    assert _tag_events(receiver) == [
        ("tag.missing", "demo/api", "nightly"),
        ("tag.stale", "demo/api", "latest"),
        ("tag.stale", "demo/worker", "release-2"),
    ], "the fresh tag sends nothing; the pattern counts its newest push"
    assert len(receiver.received) == len(demo_problems) + 3, "build alerts go on as before"
    stale = next(w for w in receiver.received if w["body"]["push_data"]["tag"] == "release-2")
    assert stale["body"]["repository"]["status"] == "Stale"
    assert stale["body"]["freshness"]["rule_tag"] == "release-*"
    assert stale["headers"]["x-dockerhub-event-id"] == next(
        event_id for event_id, entry in stored_record().items() if entry["tag"] == "release-*"
    )

    receiver.clear()
    assert run_monitor().state == "success"
    assert receiver.received == [], "each stale or missing tag is told once"

    hub.push_tag("demo", "worker", tag="release-3")
    assert run_monitor().state == "success"
    assert _tag_events(receiver) == [("tag.fresh", "demo/worker", "release-3")]
    [fresh] = receiver.received
    assert fresh["body"]["repository"]["status"] == "Fresh"
    entry = next(entry for entry in stored_record().values() if entry["tag"] == "release-*")
    assert entry["resolved_at"] and "dockerhub_notify" in entry["resolved"]


def test_a_namespace_without_automated_builds_gets_freshness_checks_anonymously(services, monkeypatch):
    hub, receiver = services
    hub.add_repository("tools", "cli", automated=False)
    hub.push_tag("tools", "cli", tag="latest", pushed_minutes_ago=5 * 60)
    hub.add_repository("tools", "internal", automated=False, private=True)
    hub_url = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"])["host"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": hub_url})
    )
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_NAMESPACES", "tools")
    _set_rules(
        monkeypatch,
        [
            {"repository": "tools/cli", "interval": "1h", "grace": "30m"},
            {"repository": "tools/internal", "interval": "1h"},
        ],
    )

    run = run_monitor()

    assert _tag_events(receiver) == [("tag.stale", "tools/cli", "latest")]
    assert run.state == "failed", "a private repository read without a token is a read error of the cycle"
    assert not any(w["headers"]["x-dockerhub-event"] == "tag.missing" for w in receiver.received), (
        "a repository whose tags cannot be read is never reported missing"
    )
    tag_reads = sorted({path for _, path in hub.requests if path.endswith("/tags")})
    assert tag_reads == [
        "/v2/namespaces/tools/repositories/cli/tags",
        "/v2/namespaces/tools/repositories/internal/tags",
    ]


def test_retired_builds_are_told_once_while_freshness_goes_on(services, monkeypatch, caplog, demo_problems):
    hub, receiver = services
    assert run_monitor().state == "success"
    assert len(receiver.received) == len(demo_problems)
    receiver.clear()

    hub.retire_builds("demo", 410)
    _set_rules(monkeypatch, [{"repository": "demo/worker", "tag": "edge", "interval": "1m", "grace": "1s"}])
    caplog.clear()
    assert run_monitor().state == "success"

    events = sorted(w["headers"]["x-dockerhub-event"] for w in receiver.received)
    assert events == ["monitor.builds_retired", "tag.stale"]
    retired = next(
        w for w in receiver.received if w["headers"]["x-dockerhub-event"] == "monitor.builds_retired"
    )
    assert retired["body"]["monitor"]["namespace"] == "demo"
    assert "another CI" in retired["body"]["monitor"]["message"]
    assert "Automated builds of demo are retired (every build history answered 410)" in caplog.text

    receiver.clear()
    assert run_monitor().state == "success"
    assert receiver.received == [], "the retirement is told once, not every cycle"


def test_bad_freshness_rules_fail_the_run_naming_the_variable_and_field(services, monkeypatch, capfd):
    _, receiver = services
    _set_rules(monkeypatch, [{"repository": "demo/api", "interval": "soon"}])

    run = run_monitor()

    assert run.state == "failed" and receiver.received == []
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["fetch_build_history"] == "failed"
    output = "".join(capfd.readouterr())
    assert "The dockerhub_freshness_rules variable, rule 1 (demo/api:latest): 'interval'" in output


def test_without_namespaces_the_monitor_checks_tag_freshness_alone(services, monkeypatch):
    hub, receiver = services
    monkeypatch.delenv("AIRFLOW_VAR_DOCKERHUB_NAMESPACES")
    _set_rules(monkeypatch, [{"repository": "demo/api", "tag": "nightly", "interval": "1d"}])
    hub.reset_stats()

    assert run_monitor().state == "success"

    assert _tag_events(receiver) == [("tag.missing", "demo/api", "nightly")]
    assert len(receiver.received) == 1, "no build history is read without a namespace"
    read = [path for _, path in hub.requests if not path.startswith("/v2/auth")]
    assert read == ["/v2/namespaces/demo/repositories/api/tags"]


def test_without_namespaces_or_freshness_rules_the_run_names_the_variable(services, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_DOCKERHUB_NAMESPACES")
    monkeypatch.delenv("AIRFLOW_VAR_DOCKERHUB_FRESHNESS_RULES", raising=False)

    assert run_monitor().state == "failed"
