"""The emulator's load-test features over real HTTP: dropped connections, latency, rate limit, scale."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.emulator.__main__ import parse_args

PROJECT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)
TIMEOUT = 5
LISTING = "/v2/repositories/acme/"


@pytest.fixture
def hub():
    """A hub on 127.0.0.1 serving the namespace ``acme`` with one repository, on a frozen clock."""
    state = HubState(NOW)
    state.add_repository("acme", "app")
    state.add_build("acme", "app", status=10)
    with serve_in_thread(create_hub_app(state)) as server:
        server.state = state
        yield server


def get(server, path, **kwargs):
    return requests.get(f"{server.url}{path}", timeout=TIMEOUT, **kwargs)


def admin(server, method, path, body=None):
    response = requests.request(method, f"{server.url}/_emulator/{path}", json=body, timeout=TIMEOUT)
    return response


# Dropped connections


def test_dropped_connection_is_a_connection_error_not_an_answer(hub):
    hub.state.fail_next(1, path_prefix=LISTING, drop=True)

    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.get(f"{hub.url}{LISTING}", timeout=TIMEOUT)
        # The fault is used up and the server carries on, on a new connection.
        after = session.get(f"{hub.url}{LISTING}", timeout=TIMEOUT)

    assert after.status_code == 200
    assert hub.state.stats() == {"requests": 2, "rate_limited": 0, "faults": 1, "dropped": 1}


def test_dropped_connections_are_queued_over_http_and_drop_request_bodies_too(hub):
    queued = admin(hub, "POST", "faults", {"count": 2, "drop": True, "path_prefix": "/v2/users/login"})

    assert queued.status_code == 200
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{hub.url}/v2/users/login", data=b"x" * 200_000, timeout=TIMEOUT)
    assert requests.post(f"{hub.url}/v2/users/login", json={}, timeout=TIMEOUT).status_code == 401


# Latency


def test_latency_delays_api_answers_but_requests_in_flight_overlap(hub):
    assert admin(hub, "POST", "settings", {"latency": 0.2}).json()["latency"] == 0.2

    def timed_get(_):
        started = time.monotonic()
        response = get(hub, LISTING)
        return response.status_code, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(timed_get, range(20)))
    elapsed = time.monotonic() - started

    assert [status for status, _ in results] == [200] * 20
    assert min(took for _, took in results) >= 0.19
    # One after the other they would take 4 s.
    assert elapsed < 2.0


def test_latency_spares_admin_calls(hub):
    hub.state.latency = 1.0

    started = time.monotonic()
    assert admin(hub, "GET", "stats").status_code == 200

    assert time.monotonic() - started < 0.8


# Rate limit and clock


def test_rate_limit_answers_429_past_the_limit_until_the_clock_moves_on(hub):
    hub.state.rate_limit = 3
    window_end = int((NOW + timedelta(seconds=60)).timestamp())

    answers = [get(hub, LISTING) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in answers] == ["2", "1", "0", "0"]
    assert {answer.headers["X-RateLimit-Limit"] for answer in answers} == {"3"}
    assert {answer.headers["X-RateLimit-Reset"] for answer in answers} == {str(window_end)}
    refused = answers[-1]
    assert refused.json() == {"message": "Too Many Requests"}
    assert refused.headers["Retry-After"] == str(window_end)
    assert "Retry-After" not in answers[0].headers

    # Still inside the window a minute has not passed.
    assert admin(hub, "POST", "clock", {"advance_seconds": 59}).status_code == 200
    assert get(hub, LISTING).status_code == 429

    admin(hub, "POST", "clock", {"advance_seconds": 1})
    renewed = get(hub, LISTING)

    assert renewed.status_code == 200
    assert renewed.headers["X-RateLimit-Remaining"] == "2"
    assert renewed.headers["X-RateLimit-Reset"] == str(window_end + 60)


def test_rate_limit_is_set_over_http_and_refuses_before_a_queued_fault(hub):
    settings = admin(hub, "POST", "settings", {"rate_limit": 1, "rate_window": 10})
    hub.state.fail_next(1, 503, path_prefix=LISTING)

    assert settings.json() == {"latency": 0.0, "rate_limit": 1, "rate_window": 10.0}
    assert get(hub, "/v2/namespaces/acme/repositories").status_code == 200
    assert get(hub, LISTING).status_code == 429
    admin(hub, "POST", "clock", {"advance_seconds": 10})
    faulted = get(hub, LISTING)
    assert faulted.status_code == 503
    assert faulted.headers["X-RateLimit-Remaining"] == "0"

    assert admin(hub, "POST", "settings", {"rate_limit": None}).json()["rate_limit"] is None
    assert "X-RateLimit-Limit" not in get(hub, LISTING).headers


@pytest.mark.parametrize(
    "settings",
    [{"latency": -1}, {"rate_limit": 1.5}, {"rate_limit": -1}, {"rate_window": 0}, {"speed": 2}],
)
def test_bad_settings_are_refused_and_change_nothing(hub, settings):
    answer = admin(hub, "POST", "settings", {"latency": 0.5, **settings})

    assert answer.status_code == 400
    assert hub.state.settings() == {"latency": 0.0, "rate_limit": None, "rate_window": 60.0}


def test_stats_count_requests_and_refusals_until_reset(hub):
    hub.state.rate_limit = 2
    for _ in range(5):
        get(hub, LISTING)
    admin(hub, "GET", "state")

    counted = admin(hub, "GET", "stats").json()
    before_reset = admin(hub, "DELETE", "stats").json()

    assert counted == before_reset == {"requests": 5, "rate_limited": 3, "faults": 0, "dropped": 0}
    assert len(hub.state.requests) == 0
    assert admin(hub, "GET", "stats").json() == {"requests": 0, "rate_limited": 0, "faults": 0, "dropped": 0}


def test_clock_endpoint_sets_advances_and_releases_the_clock(hub):
    assert admin(hub, "GET", "clock").json() == {"now": "2025-03-04T12:00:00.000000Z"}

    moved = admin(hub, "POST", "clock", {"advance_seconds": 90.5}).json()
    set_to = admin(hub, "POST", "clock", {"now": "2025-06-01T08:30:00Z"}).json()
    offset = admin(hub, "POST", "clock", {"now": "2025-06-01T10:30:00+02:00"}).json()

    assert moved == {"now": "2025-03-04T12:01:30.500000Z"}
    assert set_to == offset == {"now": "2025-06-01T08:30:00.000000Z"}
    assert hub.state.now == datetime(2025, 6, 1, 8, 30, tzinfo=timezone.utc)

    released = admin(hub, "POST", "clock", {"real_time": True}).json()
    assert abs(datetime.fromisoformat(released["now"][:-1] + "+00:00") - datetime.now(timezone.utc)) < (
        timedelta(minutes=1)
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"now": "2025-06-01T08:30:00"}, {"now": "soon"}, {"advance_seconds": "60"}, {"now": 1, "x": 2}],
)
def test_clock_endpoint_refuses_unclear_requests(hub, body):
    assert admin(hub, "POST", "clock", body).status_code == 400
    assert hub.state.now == NOW


# Scale


def test_two_thousand_repositories_are_listed_page_by_page_with_their_histories():
    state = HubState(NOW)
    started = time.monotonic()
    names = state.populate("load", 2000)
    populated_in = time.monotonic() - started

    with serve_in_thread(create_hub_app(state)) as server, requests.Session() as session:
        listed = []
        url = f"{server.url}/v2/repositories/load/?page_size=100"
        started = time.monotonic()
        while url:
            page = session.get(url, timeout=TIMEOUT).json()
            listed.extend(entry["name"] for entry in page["results"])
            url = page["next"]
        current = session.get(
            f"{server.url}/v2/namespaces/load/repositories", params={"page": 20, "page_size": 100}, timeout=5
        ).json()
        histories = [
            session.get(f"{server.url}/v2/repositories/load/{name}/buildhistory/", timeout=TIMEOUT).json()
            for name in names[:50]
        ]
        elapsed = time.monotonic() - started

    assert listed == names == [f"repo-{index:05d}" for index in range(2000)]
    assert current["count"] == 2000
    assert current["next"] is None
    assert [entry["name"] for entry in current["results"]] == names[1900:]
    assert all(history["count"] == 3 for history in histories)
    newest = [history["results"][0]["status"] for history in histories]
    assert newest.count(-1) == 5
    assert {build["status"] for history in histories for build in history["results"][1:]} == {10}
    # Generous bounds, only to catch work that grows with the namespace on every request.
    assert populated_in < 5
    assert elapsed < 20


def test_populate_over_http_refuses_names_already_taken(hub):
    added = admin(hub, "POST", "namespaces/acme/populate", {"count": 12, "prefix": "svc-", "builds": 1})
    again = admin(hub, "POST", "namespaces/acme/populate", {"count": 1, "prefix": "svc-", "start": 11})
    more = admin(hub, "POST", "namespaces/acme/populate", {"count": 3, "prefix": "svc-", "start": 12})
    wrong = admin(hub, "POST", "namespaces/acme/populate", {"count": 3, "colour": "red"})

    assert added.json() == {"namespace": "acme", "added": 12}
    assert more.json() == {"namespace": "acme", "added": 3}
    assert again.status_code == wrong.status_code == 400
    listing = get(hub, LISTING, params={"page_size": 100}).json()
    assert [entry["name"] for entry in listing["results"]][-3:] == ["svc-00012", "svc-00013", "svc-00014"]
    assert listing["count"] == 16


def test_repository_lookups_do_not_scan_other_repositories():
    state = HubState(NOW)
    state.populate("load", 1000)
    state.add_repository("acme", "app")
    state.set_trigger("acme", "app", "token")

    scans = 0
    real_items = dict.items

    class CountingDict(dict):
        def items(self):
            nonlocal scans
            scans += 1
            return real_items(self)

        def values(self):
            nonlocal scans
            scans += 1
            return super().values()

    state._repositories = CountingDict(state._repositories)
    state.repository("load", "repo-00500", None)
    state.repositories("acme", None)
    state.trigger("token", {}, url_form="v1")

    assert scans == 0


# Command line


def test_command_line_flags_reach_the_state():
    args = parse_args(
        ["--latency-ms", "50", "--rate-limit", "100", "--rate-window", "30", "--repositories", "10"]
    )

    assert (args.latency_ms, args.rate_limit, args.rate_window) == (50.0, 100, 30.0)
    assert (args.repositories, args.namespace) == (10, "bulk")
    for wrong in (["--latency-ms", "-1"], ["--rate-limit", "-2"], ["--repositories", "-3"]):
        with pytest.raises(SystemExit):
            parse_args(wrong)


def test_command_line_serves_populated_namespace_under_a_rate_limit():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_dockerhub.emulator",
            "--port",
            "0",
            "--receiver-port",
            "0",
            "--repositories",
            "150",
            "--namespace",
            "load",
            "--rate-limit",
            "1000",
            "--latency-ms",
            "10",
        ],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in process.stdout], daemon=True).start()
    try:
        hub_url = re.search(r"http://\S+", lines.get(timeout=20)).group(0)
        namespace_line = lines.get(timeout=10)
        listing = requests.get(f"{hub_url}/v2/repositories/load/", timeout=TIMEOUT)
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)

    assert namespace_line == "Namespace load: 150 repositories"
    assert listing.json()["count"] == 150
    assert listing.headers["X-RateLimit-Limit"] == "1000"
    assert listing.headers["X-RateLimit-Remaining"] == "999"
    assert returncode == 0, process.stderr.read()
