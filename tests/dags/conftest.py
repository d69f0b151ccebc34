"""What the demo namespace must make the monitor send, shared by the DAG tests."""

from __future__ import annotations

import json

import pytest

from airflow_dockerhub.emulator import (
    DEMO_SECRET,
    DEMO_USER,
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    demo_state,
    serve_in_thread,
)
from tests.dags.monitor_runs import reset_record

#: One webhook per problem build of the demo namespace, keyed by repository, tag and status.
DEMO_PROBLEMS = frozenset(
    {
        ("demo/api", "latest", "Failed"),
        ("demo/worker", "latest", "Failed"),
        ("demo/queue-stuck", "latest", "Queued"),
        ("demo/long-build", "latest", "Building"),
        ("demo/cancelled", "latest", "Cancelled"),
        ("demo/modern-app", "latest", "Failed"),
        ("demo/private-app", "latest", "Failed"),
    }
)


@pytest.fixture
def demo_problems():
    """Return the problem builds of the demo namespace, the private one included."""
    return set(DEMO_PROBLEMS)


@pytest.fixture
def public_demo_problems():
    """Return the problem builds an anonymous reader sees: all but the private repository's."""
    return {problem for problem in DEMO_PROBLEMS if problem[0] != "demo/private-app"}


def webhook_key(webhook):
    body = webhook["body"]
    return (body["repository"]["repo_name"], body["push_data"]["tag"], body["repository"]["status"])


@pytest.fixture
def summarize():
    """Return a function that reduces received webhooks to (repository, tag, status) triples."""
    return lambda webhooks: {webhook_key(webhook) for webhook in webhooks}


@pytest.fixture
def services(monkeypatch, airflow_db):
    """Serve the demo Docker Hub and a receiver, and point the monitor's connections at them."""
    hub_state = demo_state()
    receiver_state = ReceiverState("receiver", "r3ceiver-pw")
    with (
        serve_in_thread(create_hub_app(hub_state)) as hub,
        serve_in_thread(create_receiver_app(receiver_state)) as rcv,
    ):
        notify_url = (
            rcv.url.replace("http://", "http://receiver:r3ceiver-pw@") + "/hooks/dockerhub?token=q-t0ken"
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT",
            json.dumps(
                {"conn_type": "dockerhub", "host": hub.url, "login": DEMO_USER, "password": DEMO_SECRET}
            ),
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_NOTIFY", json.dumps({"conn_type": "http", "host": notify_url})
        )
        monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_NAMESPACES", "demo")
        reset_record()
        yield hub_state, receiver_state
        reset_record()
