"""Small clients of Airflow's REST API (v2), the emulator's admin endpoints and the receiver's listing."""

from __future__ import annotations

import time
from typing import Any

import requests

#: Task instance states after which a task does nothing more unless cleared.
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


class AirflowApi:
    """
    Call ``/api/v2`` of an api-server with a token from ``/auth/token``.

    Every call fails the test with the status and the body when Airflow answers with an error.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        answer = self.session.post(
            f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        assert answer.status_code == 201, f"login refused: {answer.status_code} {answer.text[:500]}"
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, path: str, *, prefix: str = "/api/v2", **kwargs: Any) -> Any:
        """Call ``prefix + path``: the public API, or with ``prefix="/ui"`` what the UI itself calls."""
        answer = self.session.request(method, f"{self.base_url}{prefix}{path}", timeout=60, **kwargs)
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:2000]}"
        return answer.json() if answer.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run of ``dag_id`` now, with ``conf`` as its params, and return its run id."""
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="run_after", **params)["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
        """Wait until a run ended, and return it with its task instances under ``task_instances``."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in {"success", "failed"}:
                run["task_instances"] = self.task_instances(dag_id, run_id)
                return run
            assert time.monotonic() < deadline, (
                f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s: "
                f"{describe_states(self.task_instances(dag_id, run_id))}"
            )
            time.sleep(2)


def describe_states(task_instances: list[dict[str, Any]]) -> dict[str, str]:
    """Return ``task_id[map_index]`` to state, to show in a failure message."""
    return {
        f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]: ti["state"]
        for ti in task_instances
    }


class Receiver:
    """Read the webhooks the emulator's receiver accepted, over its listing endpoint."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def received(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.base_url}/_receiver/received", timeout=30)
        answer.raise_for_status()
        return answer.json()


class HubAdmin:
    """Change the emulated Docker Hub from outside, through its admin endpoints."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def add_build(self, repository: str, **build: Any) -> dict[str, Any]:
        namespace, name = repository.split("/")
        answer = requests.post(
            f"{self.base_url}/_emulator/namespaces/{namespace}/repositories/{name}/builds",
            json=build,
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()

    def state(self) -> dict[str, Any]:
        answer = requests.get(f"{self.base_url}/_emulator/state", timeout=30)
        answer.raise_for_status()
        return answer.json()
