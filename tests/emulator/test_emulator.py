"""Tests of the Docker Hub emulator and the webhook receiver, over real HTTP."""

from __future__ import annotations

import base64
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from airflow_dockerhub.emulator import (
    DEMO_SECRET,
    DEMO_TRIGGER_TOKENS,
    DEMO_USER,
    HubState,
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    demo_state,
    serve_in_thread,
)
from airflow_dockerhub.emulator.responses import load_sample

PROJECT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)
TIMEOUT = 5
ISO_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

LEGACY_LISTING_KEYS = {
    "user",
    "name",
    "namespace",
    "repository_type",
    "status",
    "description",
    "is_private",
    "is_automated",
    "can_edit",
    "star_count",
    "pull_count",
    "last_updated",
    "is_migrated",
}
BUILD_KEYS = {"id", "status", "created_date", "last_updated", "build_code", "dockertag_name", "cause"}
# 105 healthy repositories plus 12 named ones, one of them private.
DEMO_REPOSITORIES = 117


@pytest.fixture(scope="module")
def demo_hub():
    state = demo_state(NOW)
    with serve_in_thread(create_hub_app(state)) as server:
        yield server


@pytest.fixture
def start_hub():
    """Start a hub on a state the test owns; stopped when the test ends."""
    servers = []

    def start(state: HubState):
        server = serve_in_thread(create_hub_app(state))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def echoing_receiver():
    state = ReceiverState()
    with serve_in_thread(create_receiver_app(state, echo=True)) as server:
        yield server, state


@pytest.fixture
def receiver(echoing_receiver):
    server, state = echoing_receiver
    state.clear()
    return server, state


def get(server, path, **kwargs):
    return requests.get(f"{server.url}{path}", timeout=TIMEOUT, **kwargs)


def access_token(server) -> str:
    response = requests.post(
        f"{server.url}/v2/auth/token",
        json={"identifier": DEMO_USER, "secret": DEMO_SECRET},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def follow_pages(server, url, headers=None):
    pages = []
    while url:
        assert url.startswith(server.url), url
        response = requests.get(url, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = pages[-1]["next"]
    return pages


def copy_lines(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.strip())


def history(server, repo, headers=None):
    response = get(server, f"/v2/repositories/demo/{repo}/buildhistory/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def audit(server, repo, **params):
    return get(
        server,
        "/api/audit/v1/action/",
        params={"object": f"/api/repo/v1/repository/demo/{repo}/", "include_related": "true", **params},
    )


# Repository listings


def test_legacy_listing_follows_next_across_pages_and_hides_private_repositories(demo_hub):
    pages = follow_pages(demo_hub, f"{demo_hub.url}/v2/repositories/demo/?page_size=100")

    entries = [entry for page in pages for entry in page["results"]]
    names = [entry["name"] for entry in entries]
    assert len(pages) == 2
    assert pages[0]["previous"] is None
    assert pages[1]["previous"].startswith(demo_hub.url)
    assert pages[0]["count"] == len(entries) == DEMO_REPOSITORIES - 1
    assert names == sorted(names)
    assert "private-app" not in names
    assert all(set(entry) == LEGACY_LISTING_KEYS for entry in entries)
    automated = {entry["name"]: entry["is_automated"] for entry in entries}
    assert automated["docs-site"] is False
    assert automated["api"] is True


def test_legacy_listing_shows_private_repositories_with_a_token(demo_hub):
    headers = {"Authorization": f"Bearer {access_token(demo_hub)}"}

    pages = follow_pages(demo_hub, f"{demo_hub.url}/v2/repositories/demo/?page_size=100", headers)

    entries = {entry["name"]: entry for page in pages for entry in page["results"]}
    assert len(entries) == DEMO_REPOSITORIES
    assert entries["private-app"]["is_private"] is True


def test_repository_last_updated_moves_only_with_successful_builds(demo_hub):
    pages = follow_pages(demo_hub, f"{demo_hub.url}/v2/repositories/demo/?page_size=100")
    entries = {entry["name"]: entry for page in pages for entry in page["results"]}

    assert entries["api"]["last_updated"] == history(demo_hub, "api")[0]["last_updated"]
    for repo in ("queue-stuck", "old-failure"):
        [build] = history(demo_hub, repo)
        assert entries[repo]["last_updated"] < build["created_date"]


def test_page_size_defaults_to_ten_and_is_capped(demo_hub):
    assert len(get(demo_hub, "/v2/repositories/demo/").json()["results"]) == 10
    assert len(get(demo_hub, "/v2/repositories/demo/?page_size=500").json()["results"]) == 100


def test_switched_off_legacy_listing_answers_404_but_current_listing_works(start_hub):
    state = demo_state(NOW)
    state.legacy_listing_enabled = False
    hub = start_hub(state)

    response = get(hub, "/v2/repositories/demo/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Object not found"}
    assert get(hub, "/v2/namespaces/demo/repositories").status_code == 200


def test_current_listing_has_no_is_automated_and_404s_past_the_last_page(demo_hub):
    first = get(demo_hub, "/v2/namespaces/demo/repositories?page_size=100").json()
    pages = follow_pages(demo_hub, first["next"])

    sample_keys = set(load_sample("repositories-namespace-list-page.json")["results"][0])
    assert all(set(entry) == sample_keys for entry in first["results"] + pages[0]["results"])
    assert "is_automated" not in sample_keys
    assert len(first["results"]) + len(pages[0]["results"]) == first["count"] == DEMO_REPOSITORIES - 1
    assert get(demo_hub, "/v2/namespaces/demo/repositories?page_size=100&page=3").status_code == 404


def test_unknown_namespace_answers_404(demo_hub):
    for path in ("/v2/repositories/nobody/", "/v2/namespaces/nobody/repositories"):
        response = get(demo_hub, path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Object not found"}


def test_single_repository_endpoints_report_is_automated(demo_hub):
    current = get(demo_hub, "/v2/namespaces/demo/repositories/docs-site").json()
    legacy = get(demo_hub, "/v2/repositories/demo/api/").json()

    assert set(current) == set(load_sample("repository-info-namespaces-get.json"))
    assert current["is_automated"] is False
    assert set(legacy) == set(load_sample("repository-legacy-get.json"))
    assert legacy["is_automated"] is True
    assert get(demo_hub, "/v2/namespaces/demo/repositories/private-app").status_code == 404


# Build history


def test_build_history_is_newest_first_so_a_later_tag_can_hide_a_failure(demo_hub):
    builds = history(demo_hub, "api")

    assert [(build["dockertag_name"], build["status"]) for build in builds] == [
        ("v1", 10),
        ("latest", -1),
        ("latest", 10),
    ]
    assert all(set(build) == BUILD_KEYS for build in builds)
    assert all(ISO_MICROSECONDS.fullmatch(build["created_date"]) for build in builds)
    assert builds[1]["created_date"] == "2025-03-04T11:30:00.000000Z"
    assert builds[1]["last_updated"] == "2025-03-04T11:35:00.000000Z"


def test_build_history_pages_link_back_to_the_emulator(demo_hub):
    first = get(demo_hub, "/v2/repositories/demo/api/buildhistory?page_size=2").json()
    second = requests.get(first["next"], timeout=TIMEOUT).json()

    assert first["count"] == 3
    assert first["next"].startswith(demo_hub.url)
    assert [build["dockertag_name"] for build in second["results"]] == ["latest"]
    assert second["next"] is None


@pytest.mark.parametrize("repo", ["modern-app", "no-history", "private-app", "missing"])
def test_build_history_answers_404_without_a_visible_legacy_history(demo_hub, repo):
    response = get(demo_hub, f"/v2/repositories/demo/{repo}/buildhistory/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Object not found"}


def test_private_build_history_needs_a_token(demo_hub):
    builds = history(demo_hub, "private-app", headers={"Authorization": f"JWT {access_token(demo_hub)}"})

    assert [build["status"] for build in builds] == [-1]


def test_audit_endpoint_describes_builds_of_audit_repositories(demo_hub):
    body = audit(demo_hub, "modern-app", limit=50).json()

    assert body["meta"] == {"limit": 50, "next": None, "offset": 0, "previous": None, "total_count": 2}
    failed, succeeded = body["objects"]
    assert failed["action"] == "Build"
    assert failed["build_tag"] == "latest"
    assert failed["state"] == "Failed"
    assert failed["created"] == "Tue, 04 Mar 2025 11:40:00 +0000"
    assert failed["end_date"] == "Tue, 04 Mar 2025 11:45:00 +0000"
    assert failed["resource_uri"] == f"/api/build/v1/demo/build/{failed['uuid']}/"
    assert succeeded["state"] == "Success"


@pytest.mark.parametrize("repo", ["api", "no-history"])
def test_audit_endpoint_has_no_objects_for_other_repositories(demo_hub, repo):
    body = audit(demo_hub, repo).json()

    assert body["objects"] == []
    assert body["meta"]["total_count"] == 0


def test_audit_endpoint_answers_404_for_unknown_repository(demo_hub):
    assert audit(demo_hub, "missing").status_code == 404


def test_audit_states_follow_the_numeric_status(start_hub):
    statuses = {0: "Pending", 1: "Pending", 11: "Pending", 2: "In progress", 9: "In progress"}
    statuses |= {10: "Success", -1: "Failed", -2: "Failed", -4: "Canceled"}
    state = HubState(NOW)
    state.add_repository("demo", "audited", history="audit")
    for minutes, status in enumerate(statuses):
        state.add_build("demo", "audited", status=status, created_minutes_ago=60 - minutes)
    hub = start_hub(state)

    objects = audit(hub, "audited").json()["objects"]

    assert [obj["state"] for obj in reversed(objects)] == list(statuses.values())
    final = {"Success", "Failed", "Canceled"}
    assert all((obj["end_date"] is not None) == (obj["state"] in final) for obj in objects)


# Authentication


def test_access_token_is_a_jwt_that_expires_in_ten_minutes(demo_hub):
    claims = jwt_claims(access_token(demo_hub))

    assert claims["sub"] == DEMO_USER
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["exp"] - (time.time() + 600)) < 5


def test_wrong_secret_is_refused(demo_hub):
    response = requests.post(
        f"{demo_hub.url}/v2/auth/token", json={"identifier": DEMO_USER, "secret": "wrong"}, timeout=TIMEOUT
    )

    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect authentication credentials"}


def test_unknown_and_expired_tokens_are_refused(start_hub):
    state = demo_state(NOW)
    hub = start_hub(state)
    expired = state.issue_token(DEMO_USER, ttl=-1)

    for token in ("not-a-token", expired):
        response = get(hub, "/v2/repositories/demo/", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid token"}


def test_switched_off_token_endpoint_leaves_the_login_endpoint(start_hub):
    state = demo_state(NOW)
    state.auth_token_endpoint_enabled = False
    hub = start_hub(state)

    refused = requests.post(
        f"{hub.url}/v2/auth/token", json={"identifier": DEMO_USER, "secret": DEMO_SECRET}, timeout=TIMEOUT
    )
    login = requests.post(
        f"{hub.url}/v2/users/login/", json={"username": DEMO_USER, "password": DEMO_SECRET}, timeout=TIMEOUT
    )

    assert refused.status_code == 404
    token = login.json()["token"]
    assert jwt_claims(token)["exp"] - jwt_claims(token)["iat"] == 30 * 24 * 3600
    assert len(history(hub, "private-app", headers={"Authorization": f"Bearer {token}"})) == 1


# Remote build triggers


def test_legacy_trigger_queues_a_build_of_the_requested_tag(start_hub):
    state = demo_state(NOW)
    hub = start_hub(state)
    token = DEMO_TRIGGER_TOKENS["api"]

    response = requests.post(
        f"{hub.url}/u/demo/api/trigger/{token}/", json={"docker_tag": "v1"}, timeout=TIMEOUT
    )

    assert response.status_code == 200
    assert response.text == "OK"
    newest = history(hub, "api")[0]
    assert (newest["dockertag_name"], newest["status"]) == ("v1", 0)
    assert newest["created_date"] == "2025-03-04T12:00:00.000000Z"
    assert state.triggers[-1]["repository"] == "demo/api"
    assert state.triggers[-1]["tags"] == ["v1"]


def test_legacy_trigger_refuses_a_token_of_another_repository(start_hub):
    hub = start_hub(demo_state(NOW))
    token = DEMO_TRIGGER_TOKENS["api"]

    response = requests.post(
        f"{hub.url}/u/demo/worker/trigger/{token}/", json={"build": True}, timeout=TIMEOUT
    )

    assert response.status_code == 404


def test_source_trigger_with_build_true_queues_every_tag(start_hub):
    state = demo_state(NOW)
    hub = start_hub(state)
    source = "11111111-2222-4333-8444-555555555555"
    url = f"{hub.url}/api/build/v1/source/{source}/trigger/{DEMO_TRIGGER_TOKENS['worker']}/call/"

    response = requests.post(url, json={"build": True}, timeout=TIMEOUT)

    body = response.json()
    assert set(body) == set(load_sample("trigger-v1-call-response-success-trimmed.json"))
    assert body["uuid"] == source
    assert body["image"] == "demo/worker"
    queued = [build for build in history(hub, "worker") if build["status"] == 0]
    assert sorted(build["dockertag_name"] for build in queued) == ["edge", "latest"]


def test_source_trigger_with_unknown_token_answers_404(demo_hub):
    response = requests.post(
        f"{demo_hub.url}/api/build/v1/source/x/trigger/unknown/call/", json={}, timeout=TIMEOUT
    )

    assert response.status_code == 404


# State and admin endpoints


def test_states_built_alike_share_build_ids_and_codes():
    first, second = demo_state(NOW), demo_state(NOW)

    assert first.snapshot() == second.snapshot()
    added = first.add_build("demo", "api", build_id=99_000_000)
    assert first.add_build("demo", "api")["id"] == added["id"] + 1


def test_admin_endpoint_adds_builds_and_requests_are_recorded(start_hub):
    state = demo_state(NOW)
    hub = start_hub(state)

    added = requests.post(
        f"{hub.url}/_emulator/namespaces/demo/repositories/worker/builds",
        json={"tag": "edge", "status": -1, "created_minutes_ago": 1},
        timeout=TIMEOUT,
    ).json()
    builds = history(hub, "worker")
    served = requests.get(f"{hub.url}/_emulator/requests", timeout=TIMEOUT).json()
    snapshot = requests.get(f"{hub.url}/_emulator/state", timeout=TIMEOUT).json()

    assert builds[0] == added
    assert served == [{"method": "GET", "path": "/v2/repositories/demo/worker/buildhistory/"}]
    assert state.requests == [("GET", "/v2/repositories/demo/worker/buildhistory/")]
    assert len(snapshot["repositories"]) == DEMO_REPOSITORIES


def test_admin_endpoint_rejects_unknown_repository_and_arguments(start_hub):
    hub = start_hub(demo_state(NOW))
    base = f"{hub.url}/_emulator/namespaces/demo/repositories"

    missing = requests.post(f"{base}/missing/builds", json={}, timeout=TIMEOUT)
    bad = requests.post(f"{base}/api/builds", json={"colour": "red"}, timeout=TIMEOUT)

    assert missing.status_code == 404
    assert bad.status_code == 400


# Webhook receiver


def test_receiver_stores_and_echoes_a_webhook(receiver, capsys):
    server, state = receiver
    payload = {
        "push_data": {"tag": "latest"},
        "repository": {"repo_name": "demo/api", "status": "Failed"},
    }

    response = requests.post(
        f"{server.url}/hooks/build?source=test",
        json=payload,
        headers={"X-Dockerhub-Event": "build.failed"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    [webhook] = state.received
    assert webhook["method"] == "POST"
    assert webhook["path"] == "/hooks/build"
    assert webhook["query"] == "source=test"
    assert webhook["headers"]["x-dockerhub-event"] == "build.failed"
    assert webhook["body"] == payload
    assert json.loads(webhook["raw_body"]) == payload
    assert webhook["basic_auth"] is None
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "webhook build.failed demo/api:latest Failed"
    assert json.loads("\n".join(out[1:])) == payload


def test_receiver_keeps_a_body_that_is_not_json(receiver):
    server, state = receiver

    requests.post(f"{server.url}/", data="plain text", timeout=TIMEOUT)

    assert state.received[0]["body"] is None
    assert state.received[0]["raw_body"] == "plain text"


def test_receiver_fails_the_requested_number_of_deliveries(receiver):
    server, state = receiver
    state.fail_next(2, status=503)

    statuses = [
        requests.post(f"{server.url}/hook", json={"n": n}, timeout=TIMEOUT).status_code for n in range(3)
    ]

    assert statuses == [503, 503, 200]
    assert [webhook["body"] for webhook in state.received] == [{"n": 2}]
    assert state.attempts == 3


def test_receiver_can_drop_the_connection_without_storing_the_delivery(receiver):
    server, state = receiver
    state.fail_next(1, drop=True)

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{server.url}/hook", json={"n": 0}, timeout=TIMEOUT)
    assert requests.post(f"{server.url}/hook", json={"n": 1}, timeout=TIMEOUT).status_code == 200

    assert [webhook["body"] for webhook in state.received] == [{"n": 1}]
    assert state.attempts == 2


def test_receiver_with_credentials_refuses_other_deliveries():
    state = ReceiverState(username="hook", password="s3cret")
    with serve_in_thread(create_receiver_app(state)) as server:
        url = f"{server.url}/hook"
        anonymous = requests.post(url, json={}, timeout=TIMEOUT)
        wrong = requests.post(url, json={}, auth=("hook", "nope"), timeout=TIMEOUT)
        right = requests.post(url, json={"ok": True}, auth=("hook", "s3cret"), timeout=TIMEOUT)

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert right.status_code == 200
    assert [(webhook["body"], webhook["basic_auth"]) for webhook in state.received] == [
        ({"ok": True}, ("hook", "s3cret"))
    ]


# Running the servers


def test_stopped_server_refuses_connections():
    server = serve_in_thread(create_receiver_app(ReceiverState()))
    server.stop()

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{server.url}/hook", json={}, timeout=TIMEOUT)


def test_command_line_serves_the_demo_until_sigterm():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        receiver_port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_dockerhub.emulator",
            "--port",
            "0",
            "--receiver-port",
            str(receiver_port),
        ],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=copy_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        hub_line, receiver_line = lines.get(timeout=10), lines.get(timeout=10)
        hub_url = re.search(r"http://\S+", hub_line).group(0)
        listing = requests.get(f"{hub_url}/v2/repositories/demo/", timeout=TIMEOUT).json()
        delivered = requests.post(f"http://127.0.0.1:{receiver_port}/hook", json={}, timeout=TIMEOUT)
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)

    assert listing["count"] == DEMO_REPOSITORIES - 1
    assert delivered.status_code == 200
    assert receiver_line.endswith(f"http://127.0.0.1:{receiver_port}")
    assert returncode == 0, process.stderr.read()


def test_importing_the_emulator_does_not_import_airflow():
    code = "import sys, airflow_dockerhub.emulator; print('airflow' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"
