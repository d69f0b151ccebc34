"""Reading big namespaces inside Docker Hub's rate limit: turns, watched repositories, cached listings."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.monitor import fetch_snapshot
from airflow_dockerhub.pacing import Clock, RatePacer
from airflow_dockerhub.polling import PollState, plan_reads

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _state_with(reads):
    state = PollState()
    for name, (read_at, watch) in reads.items():
        state.repositories[name] = {"read_at": read_at, "watch": watch, "source": "legacy"}
    return state


def test_everything_is_read_when_the_budget_allows_it():
    plan = plan_reads(PollState(), ["a/x", "a/y"], budget=None)
    assert plan.read == ["a/x", "a/y"] and plan.deferred == [] and plan.sweep_cycles == 1


def test_watched_repositories_come_first_and_the_rest_take_turns_oldest_first():
    state = _state_with(
        {
            "a/busy": ("2026-12-01T11:55", True),
            "a/old": ("2026-12-01T10:00", False),
            "a/new": ("2026-12-01T11:55", False),
        }
    )
    plan = plan_reads(state, ["a/new", "a/old", "a/busy", "a/unseen"], budget=3)
    assert plan.read == ["a/busy", "a/unseen", "a/old"]
    assert plan.deferred == ["a/new"]
    assert plan.watched == 1
    assert plan.sweep_cycles == 2


def test_recent_failures_take_at_most_half_of_what_moving_builds_leave():
    reads = {f"a/fail-{n}": (f"2026-12-01T11:{n:02d}", "failing") for n in range(10)}
    reads.update({f"a/quiet-{n}": ("2026-12-01T09:00", None) for n in range(20)})
    reads["a/moving"] = ("2026-12-01T11:55", "active")
    plan = plan_reads(_state_with(reads), sorted(reads), budget=9)

    assert plan.read[0] == "a/moving"
    # 8 left: 4 for the failures least recently read, 4 turns for everything else.
    assert plan.read[1:5] == ["a/fail-0", "a/fail-1", "a/fail-2", "a/fail-3"]
    assert all(name.startswith("a/quiet-") for name in plan.read[5:])
    assert plan.watched == 5
    assert plan.sweep_cycles == 7  # 26 repositories in turns, 4 a cycle
    assert plan.sweep_bound == 8  # 30 repositories not moving, at least 4 of them a cycle


@contextlib.contextmanager
def serving(monkeypatch, state):
    """Serve an emulator state on loopback as the default Docker Hub connection."""
    with serve_in_thread(create_hub_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        yield server


@pytest.fixture
def bulk_hub(monkeypatch):
    state = HubState(T0)
    state.populate("bulk", 100, builds=2, failing_every=1000)
    with serving(monkeypatch, state):
        yield state


def _cycle(hub, poll_state, cycle_seconds=60.0, concurrency=4, reserve=6):
    """One cycle on the emulator's clock: the pacer's waits move that clock instead of sleeping."""
    clock = Clock(now=lambda: hub.now.timestamp(), sleep=hub.advance_clock)
    hook = DockerHubHook(
        pacer=RatePacer(clock=clock) if reserve is None else RatePacer(reserve=reserve, clock=clock)
    )
    start = hub.now
    snapshot = fetch_snapshot(
        hook,
        ["bulk"],
        poll_state,
        now=start,
        concurrency=concurrency,
        cycle_seconds=cycle_seconds,
        max_age=timedelta(hours=24),
    )
    hub.now = max(hub.now, start + timedelta(seconds=cycle_seconds))
    return snapshot


def test_a_namespace_bigger_than_the_budget_is_read_in_turns_without_a_429(bulk_hub):
    # 40 requests a minute, 6 kept in hand, and 48 s of reading in a one-minute cycle: 27 requests,
    # one for the listing and 5 kept for the unexpected leave 21 history reads.
    bulk_hub.rate_limit, bulk_hub.rate_window = 40, 60.0
    poll_state = PollState()
    read = []
    for _ in range(5):
        snapshot = _cycle(bulk_hub, poll_state)
        read.append(snapshot.repositories_polled)
    assert bulk_hub.stats()["rate_limited"] == 0
    assert read[0] == 21 and snapshot.sweep_cycles == 5 and snapshot.sweep_bound == 10
    assert len(poll_state.repositories) == 100, "every repository was read within the predicted sweep"


def test_a_repository_with_a_build_in_progress_is_read_every_cycle(bulk_hub):
    bulk_hub.rate_limit, bulk_hub.rate_window = 40, 60.0
    bulk_hub.add_build("bulk", "repo-00077", status=0, created_minutes_ago=1)
    poll_state = PollState()
    for _ in range(4):
        _cycle(bulk_hub, poll_state)
    assert poll_state.repositories["bulk/repo-00077"]["watch"]

    failed = bulk_hub.add_build("bulk", "repo-00077", status=-1, created_minutes_ago=0)
    snapshot = _cycle(bulk_hub, poll_state)
    assert failed["build_code"] in {build.build_key for build in snapshot.builds}


def test_an_unchanged_listing_is_not_read_again_and_a_changed_one_is(bulk_hub):
    poll_state = PollState()
    _cycle(bulk_hub, poll_state)
    bulk_hub.reset_stats()
    _cycle(bulk_hub, poll_state)
    listing_pages = [p for _, p in bulk_hub.requests if p.rstrip("/") == "/v2/repositories/bulk"]
    assert len(listing_pages) == 1, "the first page tells the size; the cached names are reused"

    bulk_hub.populate("bulk", 1, prefix="late-")
    snapshot = _cycle(bulk_hub, poll_state)
    assert "bulk/late-00000" in poll_state.repositories
    assert snapshot.repositories_seen == 101


def test_the_pacer_keeps_as_many_requests_in_hand_as_are_in_flight_whatever_it_was_built_with(monkeypatch):
    # The monitor's hook comes with the pacer's default reserve; sixteen reads in flight, each
    # taking a round trip, would otherwise spend each window's last requests twice over.
    state = HubState(T0)
    state.populate("bulk", 800, builds=2, failing_every=1000)
    state.rate_limit, state.rate_window = 180, 60.0
    state.latency = 0.05
    with serving(monkeypatch, state):
        poll_state = PollState()
        polled = [
            _cycle(state, poll_state, cycle_seconds=300.0, concurrency=16, reserve=None).repositories_polled
            for _ in range(2)
        ]
    assert min(polled) > 500
    assert state.stats()["rate_limited"] == 0


def test_a_listing_page_answering_404_within_the_count_is_a_fault_and_is_not_cached(monkeypatch):
    import requests

    state = HubState(T0)
    state.populate("bulk", 250, builds=1, failing_every=1000)
    with serving(monkeypatch, state) as server:
        first_page = requests.get(
            f"{server.url}/v2/repositories/bulk/", params={"page": 1, "page_size": 100}, timeout=10
        ).text
        # The first page as Docker Hub sends it, then a 404 for one of the two pages it counts in,
        # as Docker Hub has answered clients it rate limits.
        state.fail_next(1, 200, path_prefix="/v2/repositories/bulk/", body=first_page)
        state.fail_next(1, 404, path_prefix="/v2/repositories/bulk/", body='{"detail": "Not Found"}')
        poll_state = PollState()

        broken = _cycle(state, poll_state)
        healthy = _cycle(state, poll_state)

    assert "bulk" in broken.unreadable and "bulk" not in broken.readable
    assert any("page" in error and "404" in error for error in broken.errors)
    assert broken.repositories_polled == 0, "a partial listing is not read as the whole namespace"
    assert healthy.repositories_seen == 250 and healthy.repositories_polled == 250
