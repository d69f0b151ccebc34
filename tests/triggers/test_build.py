from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import datetime, timezone

import pytest

# The triggerer rebuilds triggers with this very function.
from airflow._shared.module_loading import import_string
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.sensors.build import DockerHubBuildSensor
from airflow_dockerhub.triggers.build import DockerHubBuildTrigger

NOW = datetime.now(timezone.utc)
#: Every wait for an event is bounded, so a trigger that never fires fails the test instead of hanging it.
EVENT_TIMEOUT = 10.0


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


@pytest.fixture
def no_sync_connection_lookup(monkeypatch):
    """Make the sync lookup fail as it does inside the triggerer's event loop."""

    def refuse(cls, conn_id):
        raise RuntimeError(f"sync get_connection({conn_id!r}) called inside the event loop")

    monkeypatch.setattr(DockerHubHook, "get_connection", classmethod(refuse))


def make_trigger(**kwargs):
    return DockerHubBuildTrigger(**{"repository": "acme/app", "poke_interval": 0.1, **kwargs})


def make_sensor(**kwargs):
    return DockerHubBuildSensor(task_id="wait_for_build", repository="acme/app", **kwargs)


async def first_event(trigger, timeout=EVENT_TIMEOUT, while_waiting=None):
    events = trigger.run()
    helper = asyncio.create_task(while_waiting()) if while_waiting else None
    try:
        event = await asyncio.wait_for(anext(events), timeout)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), timeout)
        return event
    finally:
        if helper:
            helper.cancel()
        await events.aclose()


def history_reads(state):
    return sum(1 for _, path in state.requests if path.endswith("/buildhistory/"))


def test_serialize_round_trips_through_plain_values():
    trigger = DockerHubBuildTrigger(
        repository="acme/app",
        tag="v1",
        build_code="bxyz",
        dockerhub_conn_id="hub_prod",
        poke_interval=30,
        created_after="2026-12-03T12:00:00+00:00",
    )

    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**json.loads(json.dumps(kwargs)))

    assert classpath == "airflow_dockerhub.triggers.build.DockerHubBuildTrigger"
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "repository": "acme/app",
        "tag": "v1",
        "build_code": "bxyz",
        "created_after": "2026-12-03T12:00:00+00:00",
        "dockerhub_conn_id": "hub_prod",
        "poke_interval": 30.0,
    }


def test_success_fires_after_the_build_changes_state_and_the_sensor_returns_it(
    hub, no_sync_connection_lookup
):
    hub.state.add_build("acme", "app", tag="latest", status=0, created_minutes_ago=5)

    async def finish_build_later():
        await asyncio.sleep(0.5)
        return hub.state.add_build("acme", "app", tag="latest", status=10, created_minutes_ago=1)

    async def scenario():
        finisher = asyncio.create_task(finish_build_later())
        event = await first_event(make_trigger(tag="latest"))
        return event, await finisher

    event, finished = asyncio.run(scenario())

    assert event.payload["status"] == "success"
    summary = event.payload["build"]
    assert summary["build_code"] == finished["build_code"]
    assert summary["build"] == finished
    assert (summary["repository"], summary["tag"], summary["state"]) == ("acme/app", "latest", "success")
    assert history_reads(hub.state) >= 2
    assert make_sensor(tag="latest").execute_complete({}, event.payload) == summary


@pytest.mark.parametrize(("status", "state"), [(-1, "failed"), (-4, "cancelled")])
def test_a_failed_or_cancelled_build_fires_its_state_and_fails_the_sensor(hub, status, state):
    failed = hub.state.add_build("acme", "app", tag="v2", status=status, created_minutes_ago=3)

    event = asyncio.run(first_event(make_trigger(tag="v2")))

    assert event.payload["status"] == state
    assert event.payload["build"]["build"] == failed
    with pytest.raises(AirflowFailException) as error:
        make_sensor(tag="v2").execute_complete({}, event.payload)
    message = str(error.value)
    assert "acme/app" in message and "v2" in message
    assert failed["build_code"] in message and state in message


def test_the_trigger_waits_for_the_build_with_the_given_code(hub):
    wanted = hub.state.add_build("acme", "app", status=3, created_minutes_ago=10)
    hub.state.add_build("acme", "app", status=10, created_minutes_ago=2)

    async def scenario():
        with pytest.raises(TimeoutError):
            await first_event(make_trigger(build_code=wanted["build_code"]), timeout=0.5)
        hub.state.add_build("acme", "app", status=-1, build_code=wanted["build_code"], created_minutes_ago=1)
        return await first_event(make_trigger(build_code=wanted["build_code"]))

    event = asyncio.run(scenario())

    assert event.payload["status"] == "failed"
    assert event.payload["build"]["build_code"] == wanted["build_code"]


def test_a_rejected_login_fires_an_error_and_the_sensor_raises_its_message(monkeypatch, hub):
    hub.state.add_user("alice", "dckr_pat_alice")
    use_connection(monkeypatch, hub.url, login="alice", password="wrong-secret")

    event = asyncio.run(first_event(make_trigger()))

    assert event.payload["status"] == "error"
    assert "alice" in event.payload["message"]
    assert "wrong-secret" not in event.payload["message"]
    with pytest.raises(AirflowException, match="alice"):
        make_sensor().execute_complete({}, event.payload)


def test_an_unreachable_docker_hub_is_polled_through_rather_than_reported(monkeypatch):
    with serve_in_thread(create_hub_app(HubState(NOW))) as gone:
        pass
    use_connection(monkeypatch, gone.url)

    with pytest.raises(TimeoutError):
        asyncio.run(first_event(make_trigger(), timeout=1.0))


def test_reading_a_slow_docker_hub_leaves_the_event_loop_free(monkeypatch):
    slow = FastAPI()

    @slow.api_route("/{path:path}", methods=["GET"])
    async def answer_slowly(path: str) -> JSONResponse:
        await asyncio.sleep(0.4)
        return JSONResponse({"detail": "Object not found"}, status_code=404)

    ticks = []

    async def tick():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    with serve_in_thread(slow) as server:
        use_connection(monkeypatch, server.url)
        with pytest.raises(TimeoutError):
            asyncio.run(first_event(make_trigger(poke_interval=0.01), timeout=1.5, while_waiting=tick))

    # Every read of the history takes two slow answers; a blocked loop would stall the ticks that long.
    assert len(ticks) > 30
    assert max(later - earlier for earlier, later in itertools.pairwise(ticks)) < 0.3


def test_an_event_without_a_known_status_fails_the_sensor():
    with pytest.raises(AirflowException, match="unexpected event"):
        make_sensor().execute_complete({}, {"status": "lost"})
