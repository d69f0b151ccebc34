"""The emulator's tags endpoint, tag pushes from outside the builds, and retired build histories."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.emulator.responses import load_sample

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
TIMEOUT = 5


@pytest.fixture
def hub():
    state = HubState(NOW)
    state.add_user("alice", "dckr_pat_alice")
    state.add_repository("acme", "app")
    state.add_repository("acme", "secret", private=True)
    with serve_in_thread(create_hub_app(state)) as server:
        server.state = state
        yield server


def get(hub, path, **params):
    return requests.get(f"{hub.url}{path}", params=params, timeout=TIMEOUT)


def test_tags_list_successful_builds_and_pushes_newest_first_with_docker_hubs_fields(hub):
    hub.state.add_build(
        "acme", "app", tag="latest", status=10, created_minutes_ago=70, updated_minutes_ago=60
    )
    hub.state.add_build("acme", "app", tag="broken", status=-1, created_minutes_ago=30)
    hub.state.push_tag("acme", "app", tag="v1.0", pushed_minutes_ago=5)

    body = get(hub, "/v2/namespaces/acme/repositories/app/tags").json()

    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    assert [tag["name"] for tag in body["results"]] == ["v1.0", "latest"], "a failed build pushes nothing"
    latest = body["results"][1]
    assert set(latest) == set(load_sample("derived-tag-list-item.json"))
    assert latest["tag_last_pushed"] == "2026-12-03T11:00:00.000000Z"
    assert latest["tag_status"] == "active" and latest["digest"].startswith("sha256:")
    assert latest["images"][0]["last_pushed"] == latest["tag_last_pushed"]


def test_tags_are_paginated_and_ordered_as_asked(hub):
    for index in range(25):
        hub.state.push_tag("acme", "app", tag=f"t{index:02d}", pushed_minutes_ago=100 - index)

    first = get(hub, "/v2/namespaces/acme/repositories/app/tags", page_size=10).json()
    assert first["count"] == 25 and "page=2" in first["next"]
    assert first["results"][0]["name"] == "t24"
    third = get(hub, "/v2/namespaces/acme/repositories/app/tags", page_size=10, page=3).json()
    assert len(third["results"]) == 5 and third["next"] is None
    assert get(hub, "/v2/namespaces/acme/repositories/app/tags", page_size=10, page=4).status_code == 404
    by_name = get(hub, "/v2/namespaces/acme/repositories/app/tags", ordering="name", page_size=3).json()
    assert [tag["name"] for tag in by_name["results"]] == ["t00", "t01", "t02"]
    assert get(hub, "/v2/namespaces/acme/repositories/app/tags", ordering="size").status_code == 400


def test_a_private_repositorys_tags_need_a_token(hub):
    hub.state.push_tag("acme", "secret", tag="latest")
    assert get(hub, "/v2/namespaces/acme/repositories/secret/tags").status_code == 404
    token = requests.post(
        f"{hub.url}/v2/auth/token", json={"identifier": "alice", "secret": "dckr_pat_alice"}, timeout=TIMEOUT
    ).json()["access_token"]
    answer = requests.get(
        f"{hub.url}/v2/namespaces/acme/repositories/secret/tags",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200 and answer.json()["count"] == 1


def test_tags_are_pushed_and_deleted_over_http(hub):
    pushed = requests.post(
        f"{hub.url}/_emulator/namespaces/acme/repositories/app/tags",
        json={"tag": "v2", "pushed_minutes_ago": 30},
        timeout=TIMEOUT,
    )
    assert pushed.json() == {"name": "v2", "tag_last_pushed": "2026-12-03T11:30:00.000000Z"}
    assert get(hub, "/v2/namespaces/acme/repositories/app/tags").json()["count"] == 1

    deleted = requests.delete(
        f"{hub.url}/_emulator/namespaces/acme/repositories/app/tags/v2", timeout=TIMEOUT
    )
    assert deleted.json() == {"deleted": "v2"}
    assert get(hub, "/v2/namespaces/acme/repositories/app/tags").json()["results"] == []
    assert hub.state.snapshot()["repositories"][0]["tags"] == {}

    hub.state.advance_clock(60)
    hub.state.add_build("acme", "app", tag="v2", status=10, created_minutes_ago=0)
    assert [t["name"] for t in get(hub, "/v2/namespaces/acme/repositories/app/tags").json()["results"]] == [
        "v2"
    ]
    unknown = requests.post(
        f"{hub.url}/_emulator/namespaces/acme/repositories/nope/tags", json={"tag": "x"}, timeout=TIMEOUT
    )
    assert unknown.status_code == 404


@pytest.mark.parametrize("status", [404, 410])
def test_retired_builds_answer_404_or_410_on_both_histories_until_restored(hub, status):
    hub.state.add_build("acme", "app", status=-1)
    legacy = "/v2/repositories/acme/app/buildhistory/"
    audit = "/api/audit/v1/action/"
    audit_params = {"object": "/api/repo/v1/repository/acme/app/"}
    assert get(hub, legacy).status_code == 200

    answer = requests.post(
        f"{hub.url}/_emulator/namespaces/acme/retire-builds", json={"status": status}, timeout=TIMEOUT
    )
    assert answer.json() == {"namespace": "acme", "status": status}

    assert get(hub, legacy).status_code == status
    assert get(hub, audit, **audit_params).status_code == status
    assert get(hub, "/v2/namespaces/acme/repositories/app/tags").status_code == 200, "tags stay"
    assert hub.state.snapshot()["retired_builds"] == {"acme": status}

    requests.post(
        f"{hub.url}/_emulator/namespaces/acme/retire-builds", json={"status": None}, timeout=TIMEOUT
    )
    assert get(hub, legacy).status_code == 200
    refused = requests.post(
        f"{hub.url}/_emulator/namespaces/acme/retire-builds", json={"status": 500}, timeout=TIMEOUT
    )
    assert refused.status_code == 400
