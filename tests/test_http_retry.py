from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import pytest

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.exceptions import DockerHubError
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.http_retry import MAX_RETRY_AFTER, retry_after_seconds

NOW = 1746136878.0


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("60", MAX_RETRY_AFTER),
        ("7", 7.0),
        ("1746136938", MAX_RETRY_AFTER),  # epoch, 60 s ahead: Docker Hub's form in 2025
        ("1746136888", 10.0),
        ("Thu, 01 May 2025 22:01:28 GMT", 10.0),
        ("-5", 0.0),
        ("soon", 0.0),
        ("", 0.0),
    ],
)
def test_retry_after_is_read_in_every_form_and_clamped(value, wait):
    assert retry_after_seconds(value, NOW) == pytest.approx(wait, abs=0.01)


def test_an_epoch_years_away_never_means_waiting_years():
    assert retry_after_seconds("1900000000", NOW) == MAX_RETRY_AFTER


@pytest.fixture
def hub(monkeypatch):
    state = HubState(datetime.now(timezone.utc))
    state.add_repository("acme", "app")
    with serve_in_thread(create_hub_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        yield state


def test_docker_hub_5xx_and_429_are_retried_with_backoff(hub):
    hub.fail_next(1, 503, path_prefix="/v2/repositories/acme")
    hub.fail_next(
        1, 429, path_prefix="/v2/repositories/acme", headers={"Retry-After": str(int(time.time()) + 1)}
    )

    started = time.monotonic()
    names = [repo["name"] for repo in DockerHubHook().list_repositories("acme")]

    assert names == ["app"]
    assert len([p for _, p in hub.requests if p.startswith("/v2/repositories/acme")]) == 3
    assert time.monotonic() - started < MAX_RETRY_AFTER


def test_persistent_5xx_ends_as_an_error_of_that_read(hub):
    hub.fail_next(10, 500, path_prefix="/v2/repositories/acme/app/buildhistory")
    with pytest.raises(DockerHubError, match="500"):
        DockerHubHook().get_build_history("acme", "app")
    assert len([p for _, p in hub.requests if p.endswith("/buildhistory/")]) == 4


def test_the_hook_waits_when_docker_hub_says_the_window_is_used_up(hub):
    reset = int(time.time()) + 2
    listing = json.dumps({"count": 0, "next": None, "previous": None, "results": []})
    hub.fail_next(
        1,
        200,
        path_prefix="/v2/repositories/acme/",
        headers={"X-RateLimit-Limit": "180", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(reset)},
        body=listing,
    )
    hook = DockerHubHook()
    list(hook.list_repositories("acme"))
    started = time.monotonic()
    list(hook.list_repositories("acme"))
    assert time.monotonic() - started >= 0.9, "the next request waits for the window to end"


def test_a_read_timeout_is_retried_and_faults_can_be_switched_on_over_http(monkeypatch, hub):
    import requests

    url = json.loads(os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"])["host"]
    fault = {"count": 1, "status": 200, "path_prefix": "/v2/repositories/acme/", "delay": 1.5}
    assert requests.post(f"{url}/_emulator/faults", json=fault, timeout=5).status_code == 200
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKERHUB_DEFAULT",
        json.dumps({"conn_type": "dockerhub", "host": url, "extra": {"timeout": [2, 0.5]}}),
    )

    assert [repo["name"] for repo in DockerHubHook().list_repositories("acme")] == ["app"]
    assert len([p for _, p in hub.requests if p.startswith("/v2/repositories/acme")]) == 2


def test_a_cycle_spends_no_more_retries_than_its_budget(monkeypatch, hub):
    for name in ("one", "two", "three"):
        hub.add_repository("acme", name)
    hub.fail_next(100, 503, path_prefix="/v2/repositories/acme/")
    monkeypatch.setenv("AIRFLOW__DOCKERHUB__RETRIES_PER_CYCLE", "5")
    hook = DockerHubHook()

    for name in ("app", "one", "two", "three"):
        with pytest.raises(DockerHubError, match="503"):
            hook.get_build_history("acme", name)

    history_reads = [p for _, p in hub.requests if p.endswith("/buildhistory/")]
    # Four first attempts, and five retries in all instead of three per read.
    assert len(history_reads) == 4 + 5
    assert hook.retry_budget.spent == 5


def test_a_retries_per_cycle_setting_that_is_not_a_count_names_the_option(monkeypatch, hub):
    monkeypatch.setenv("AIRFLOW__DOCKERHUB__RETRIES_PER_CYCLE", "lots")
    with pytest.raises(ValueError, match=r"\[dockerhub\] retries_per_cycle"):
        DockerHubHook().get_build_history("acme", "app")


def automated_repositories(hub, count):
    for index in range(count):
        hub.add_repository("acme", f"r{index:02d}")
        hub.add_build("acme", f"r{index:02d}", status=10)


def history_reads(hub):
    return [path for _, path in hub.requests if path.endswith("/buildhistory/")]


def test_a_429_asking_for_longer_than_a_retry_may_wait_holds_every_request_of_the_cycle(hub):
    from airflow_dockerhub.monitor import fetch_snapshot

    automated_repositories(hub, 20)
    hub.fail_next(
        1,
        429,
        path_prefix="/v2/repositories/acme/r",
        headers={"Retry-After": "60", "Content-Type": "text/plain"},
        body="Too Many Requests (HAP429).\n",
    )

    # One read at a time, so that which reads went out before the 429 is certain: "app", then "r00".
    snapshot = fetch_snapshot(DockerHubHook(), ["acme"], concurrency=1, cycle_seconds=30)

    # The 429 is not retried after a capped wait, and no read starts after it: the rest wait for a
    # later cycle, since the wait asked for is past this cycle's reading time.
    assert history_reads(hub) == [
        "/v2/repositories/acme/app/buildhistory/",
        "/v2/repositories/acme/r00/buildhistory/",
    ]
    assert [error for error in snapshot.errors if "429" in error and "HAP429" in error]
    assert snapshot.repositories_deferred == 19


def test_the_older_x_retry_after_header_is_honoured_too():
    from types import SimpleNamespace

    from airflow_dockerhub.http_retry import docker_hub_retry, requested_wait

    assert requested_wait({"X-Retry-After": str(int(NOW) + 12)}, NOW, cap=30) == pytest.approx(12, abs=1)
    assert requested_wait({"Retry-After": "5", "X-Retry-After": str(int(NOW) + 12)}, NOW, cap=30) == 5
    assert requested_wait({}, NOW, cap=30) is None
    answer = SimpleNamespace(status=429, headers={"X-Retry-After": str(int(time.time()) + 8)})
    assert docker_hub_retry().get_retry_after(answer) == pytest.approx(8, abs=1.5)


def test_a_namespace_the_rate_limit_left_no_time_for_is_unreadable_not_healthy(hub):
    from airflow_dockerhub.monitor import fetch_snapshot

    automated_repositories(hub, 3)
    listing = {
        "count": 4,
        "next": None,
        "results": [
            {"name": name, "namespace": "acme", "is_automated": True} for name in ("app", "r00", "r01", "r02")
        ],
    }
    # Docker Hub says the window is spent until far past this cycle's reading time.
    hub.fail_next(
        1,
        200,
        path_prefix="/v2/repositories/acme/",
        headers={
            "X-RateLimit-Limit": "180",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time()) + 250),
        },
        body=json.dumps(listing),
    )

    snapshot = fetch_snapshot(DockerHubHook(), ["acme"], concurrency=2, cycle_seconds=30)

    assert history_reads(hub) == []
    assert "acme" in snapshot.unreadable and "rate limit" in snapshot.unreadable["acme"]
    assert "acme" not in snapshot.readable
    assert any(error.startswith("acme: no build history was read") for error in snapshot.errors)
