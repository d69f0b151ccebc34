from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread
from airflow_dockerhub.exceptions import DockerHubNotFoundError
from airflow_dockerhub.hooks.dockerhub import MAX_TAG_PAGES, DockerHubHook

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def hub(monkeypatch):
    state = HubState(NOW)
    state.add_repository("acme", "app")
    with serve_in_thread(create_hub_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        yield state


def test_every_page_of_tags_is_read_newest_push_first(hub):
    for index in range(150):
        hub.push_tag("acme", "app", tag=f"build-{index:03d}", pushed_minutes_ago=1000 - index)
    hook = DockerHubHook()

    tags, complete = hook.list_tags("acme", "app")

    assert complete and len(tags) == 150 and tags[0]["name"] == "build-149"
    assert hook.requests_sent == 2


def test_a_listing_longer_than_the_page_limit_is_cut_short_and_says_so(hub):
    hub.max_page_size = 2
    for index in range(2 * MAX_TAG_PAGES + 1):
        hub.push_tag("acme", "app", tag=f"t{index}", pushed_minutes_ago=index)

    tags, complete = DockerHubHook().list_tags("acme", "app")

    assert not complete and len(tags) == 2 * MAX_TAG_PAGES


def test_an_unknown_repository_names_the_repository_and_the_connection(hub):
    with pytest.raises(DockerHubNotFoundError, match="no repository acme/nope.*dockerhub_default"):
        DockerHubHook().list_tags("acme", "nope")


def test_a_history_gone_from_both_sources_is_told_apart_from_an_empty_one(hub):
    hub.add_repository("acme", "empty", history="none")
    hub.add_build("acme", "app", status=10)
    hook = DockerHubHook()

    assert hook.read_build_history("acme", "app").source == "legacy"
    empty = hook.read_build_history("acme", "empty")
    assert empty.source is None and not empty.gone

    hub.retire_builds("acme", 410)
    gone = hook.read_build_history("acme", "app")
    assert gone.gone and gone.answer == "410" and gone.builds == []
    assert hook.get_build_history("acme", "app") is None
