from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_dockerhub.emulator import (
    HubState,
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    serve_in_thread,
)
from airflow_dockerhub.operators.build_trigger import DockerHubBuildTriggerOperator

TOKEN = "7c1f0c52-3e0b-4d4e-9d55-trigger-token"
OTHER_TOKEN = "0d9e2b61-6a4f-4c1e-8b1a-other-token"


@pytest.fixture
def hub(monkeypatch):
    state = HubState()
    state.add_repository("acme", "app")
    state.set_trigger("acme", "app", TOKEN)
    with serve_in_thread(create_hub_app(state)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        server.state = state
        yield server


def trigger_url(base, token=TOKEN, repository="acme/app"):
    return f"{base}/u/{repository}/trigger/{token}/"


def make_operator(**kwargs):
    return DockerHubBuildTriggerOperator(
        **{"task_id": "rebuild", "repository": "acme/app", "tag": "v2", **kwargs}
    )


def test_the_trigger_queues_a_build_of_exactly_that_tag_and_returns_no_url(hub, caplog, capfd):
    caplog.set_level(logging.INFO)
    before = datetime.now(timezone.utc)

    result = make_operator(trigger_url=trigger_url(hub.url)).execute({})

    [call] = hub.state.triggers
    assert call["repository"] == "acme/app"
    assert call["body"] == {"docker_tag": "v2"}
    assert call["tags"] == ["v2"]
    [queued] = [b for b in hub.state.snapshot()["repositories"][0]["builds"] if b["dockertag_name"] == "v2"]
    assert queued["build_code"] == call["build_codes"][0]

    assert set(result) == {"repository", "tag", "status_code", "requested_at"}
    assert (result["repository"], result["tag"], result["status_code"]) == ("acme/app", "v2", 200)
    assert before <= datetime.fromisoformat(result["requested_at"]) <= before + timedelta(minutes=1)
    assert TOKEN not in json.dumps(result)
    # Task loggers print through structlog, so the process output is where a leak would show.
    output = capfd.readouterr().out
    assert "Docker Hub accepted the rebuild of acme/app:v2" in output
    assert TOKEN not in output and TOKEN not in caplog.text


def test_the_trigger_comes_from_the_variable_and_a_tag_entry_wins(monkeypatch, hub):
    table = {
        "acme/app": trigger_url(hub.url, OTHER_TOKEN),
        "acme/app:v2": {"url": trigger_url(hub.url)},
    }
    monkeypatch.setenv("AIRFLOW_VAR_DOCKERHUB_BUILD_TRIGGER_SECRETS", json.dumps(table))

    assert make_operator().execute({})["status_code"] == 200

    [call] = hub.state.triggers
    assert call["body"] == {"docker_tag": "v2"}


def test_a_repository_missing_from_the_variable_is_named_and_nothing_is_sent(monkeypatch, hub):
    monkeypatch.setenv("AIRFLOW_VAR_REBUILDS", json.dumps({"acme/other": trigger_url(hub.url)}))

    with pytest.raises(ValueError, match="rebuilds variable") as error:
        make_operator(triggers_variable="rebuilds").execute({})

    assert "acme/app" in str(error.value)
    assert hub.state.triggers == []


def test_an_unset_variable_is_reported_like_a_missing_entry(hub):
    with pytest.raises(ValueError, match="dockerhub_build_trigger_secrets variable has no build trigger"):
        make_operator().execute({})


def test_an_unknown_trigger_fails_without_retries_and_without_the_token(hub, caplog, capfd):
    caplog.set_level(logging.INFO)
    operator = make_operator(trigger_url=trigger_url(hub.url, OTHER_TOKEN), retries=3)

    with pytest.raises(AirflowFailException) as error:
        operator.execute({})

    message = str(error.value)
    assert "acme/app" in message and "v2" in message and "404" in message
    assert OTHER_TOKEN not in message
    output = capfd.readouterr().out
    assert "/*** answered 404" in output
    assert OTHER_TOKEN not in output and OTHER_TOKEN not in caplog.text
    assert hub.state.triggers == []


def test_a_server_error_fails_with_retries(monkeypatch):
    receiver = ReceiverState()
    receiver.fail_next(1, status=503)
    with serve_in_thread(create_receiver_app(receiver)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_DOCKERHUB_DEFAULT", json.dumps({"conn_type": "dockerhub", "host": server.url})
        )
        with pytest.raises(AirflowException, match="503") as error:
            make_operator(trigger_url=trigger_url(server.url)).execute({})

    assert not isinstance(error.value, AirflowFailException)
    assert TOKEN not in str(error.value)


def test_a_url_that_is_not_a_docker_hub_trigger_is_refused_before_sending(hub):
    with pytest.raises(ValueError, match="trigger_url of rebuild") as error:
        make_operator(trigger_url=f"http://example.com/u/acme/app/trigger/{TOKEN}/").execute({})

    assert TOKEN not in str(error.value)
    assert hub.state.triggers == []


def test_the_trigger_url_is_never_a_template_field():
    assert "trigger_url" not in DockerHubBuildTriggerOperator.template_fields
    assert set(DockerHubBuildTriggerOperator.template_fields) == {"repository", "tag"}
