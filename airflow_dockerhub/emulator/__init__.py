"""Docker Hub emulator and webhook receiver, for tests and demos that must not reach Docker Hub."""

from __future__ import annotations

from airflow_dockerhub.emulator.demo import (
    DEMO_NAMESPACE,
    DEMO_SECRET,
    DEMO_TRIGGER_TOKENS,
    DEMO_USER,
    demo_state,
)
from airflow_dockerhub.emulator.hub import create_hub_app
from airflow_dockerhub.emulator.receiver import ReceiverState, create_receiver_app
from airflow_dockerhub.emulator.server import RunningServer, serve_in_thread
from airflow_dockerhub.emulator.state import HubState

__all__ = [
    "DEMO_NAMESPACE",
    "DEMO_SECRET",
    "DEMO_TRIGGER_TOKENS",
    "DEMO_USER",
    "HubState",
    "ReceiverState",
    "RunningServer",
    "create_hub_app",
    "create_receiver_app",
    "demo_state",
    "serve_in_thread",
]
