from __future__ import annotations

import json
import logging

import pytest

from airflow_dockerhub.emulator import ReceiverState, create_receiver_app, serve_in_thread
from airflow_dockerhub.exceptions import WebhookDeliveryError
from airflow_dockerhub.hooks.webhook import WebhookHook

PAYLOAD = {"repository": {"repo_name": "acme/app", "status": "Failed"}, "build_history": {"id": 1}}


@pytest.fixture
def receiver():
    state = ReceiverState("hook-user", "hook-pass")
    with serve_in_thread(create_receiver_app(state)) as server:
        server.state = state
        yield server


def use_connection(monkeypatch, value, conn_id="dockerhub_notify"):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value)
    )
    return WebhookHook(webhook_conn_id=conn_id)


def test_url_credentials_become_basic_auth_and_path_and_query_survive(monkeypatch, receiver):
    url = receiver.url.replace("http://", "http://hook-user:hook-pass@") + "/hooks/dockerhub?token=t0k3n&a=1"
    hook = use_connection(monkeypatch, {"conn_type": "http", "host": url})

    assert hook.deliver(PAYLOAD, "build.failed", "event-1") == 200

    [webhook] = receiver.state.received
    assert webhook["basic_auth"] == ("hook-user", "hook-pass")
    assert webhook["path"] == "/hooks/dockerhub"
    assert webhook["query"] == "token=t0k3n&a=1"
    assert webhook["body"] == PAYLOAD
    assert webhook["headers"]["content-type"] == "application/json"
    assert webhook["headers"]["x-dockerhub-event"] == "build.failed"
    assert webhook["headers"]["x-dockerhub-event-id"] == "event-1"
    assert webhook["headers"]["user-agent"].startswith("airflow-provider-dockerhub/")


def test_login_and_password_fields_work_too(monkeypatch, receiver):
    hook = use_connection(
        monkeypatch,
        {"conn_type": "http", "host": receiver.url + "/hook", "login": "hook-user", "password": "hook-pass"},
    )
    hook.deliver(PAYLOAD, "build.failed", "event-2")
    assert receiver.state.received[0]["basic_auth"] == ("hook-user", "hook-pass")


def test_a_uri_form_connection_is_put_back_together(monkeypatch, receiver):
    uri = receiver.url.replace("http://", "http://hook-user:hook-pass@") + "/hooks/dockerhub?token=abc"
    hook = use_connection(monkeypatch, uri)
    hook.deliver(PAYLOAD, "build.failed", "event-3")
    [webhook] = receiver.state.received
    assert (webhook["path"], webhook["query"], webhook["basic_auth"]) == (
        "/hooks/dockerhub",
        "token=abc",
        ("hook-user", "hook-pass"),
    )


def test_non_2xx_fails_the_delivery_without_leaking_credentials(monkeypatch, receiver, caplog):
    caplog.set_level(logging.INFO)
    url = receiver.url.replace("http://", "http://hook-user:hook-pass@") + "/hook?token=t0k3n"
    hook = use_connection(monkeypatch, {"conn_type": "http", "host": url})
    receiver.state.fail_next(1, status=404)

    with pytest.raises(WebhookDeliveryError) as error:
        hook.deliver(PAYLOAD, "build.failed", "event-4")

    assert error.value.status_code == 404
    for text in (str(error.value), caplog.text):
        assert "hook-pass" not in text and "t0k3n" not in text
    assert receiver.state.received == []


def test_unreachable_receiver_is_named_by_its_redacted_url(monkeypatch):
    hook = use_connection(
        monkeypatch, {"conn_type": "http", "host": "http://u:sekret@127.0.0.1:9/hook?token=zz"}
    )
    with pytest.raises(WebhookDeliveryError) as error:
        hook.deliver(PAYLOAD, "build.failed", "event-5")
    assert "http://127.0.0.1:9/***" in str(error.value)
    assert "sekret" not in str(error.value) and "zz" not in str(error.value)
    assert error.value.__cause__ is None


def test_url_secrets_are_registered_with_airflows_masker(monkeypatch):
    from airflow.sdk.log import redact

    hook = use_connection(
        monkeypatch, {"conn_type": "http", "host": "https://u:pw-9f8e7d@h/x?token=tk-1a2b3c"}
    )
    assert hook.target.password == "pw-9f8e7d"
    masked = redact("sent with pw-9f8e7d and tk-1a2b3c")
    assert "pw-9f8e7d" not in masked and "tk-1a2b3c" not in masked


def test_missing_host_names_the_connection(monkeypatch):
    hook = use_connection(monkeypatch, {"conn_type": "http"})
    with pytest.raises(ValueError, match="dockerhub_notify"):
        hook.deliver(PAYLOAD, "build.failed", "event-6")


def test_tls_verification_is_on_unless_the_extra_turns_it_off(monkeypatch):
    hook = use_connection(monkeypatch, {"conn_type": "http", "host": "https://h/x"})
    assert hook.session.verify is True
    off = use_connection(
        monkeypatch, {"conn_type": "http", "host": "https://h/x", "extra": {"verify": False}}, "n2"
    )
    assert off.session.verify is False


def test_server_errors_are_retried_with_the_same_event_id(monkeypatch, receiver):
    url = receiver.url.replace("http://", "http://hook-user:hook-pass@") + "/hook"
    hook = use_connection(monkeypatch, {"conn_type": "http", "host": url})
    receiver.state.fail_next(2, status=503)

    assert hook.deliver(PAYLOAD, "build.failed", "event-7") == 200

    assert receiver.state.attempts == 3
    [webhook] = receiver.state.received
    assert webhook["headers"]["x-dockerhub-event-id"] == "event-7"


def test_a_token_in_the_url_path_is_never_printed(monkeypatch, receiver, capfd, caplog):
    caplog.set_level(logging.INFO)
    url = (
        receiver.url.replace("http://", "http://hook-user:hook-pass@") + "/services/T000/B000/Zx9SlackSecret"
    )
    hook = use_connection(monkeypatch, {"conn_type": "generic", "host": url, "extra": {"format": "slack"}})
    receiver.state.fail_next(1, status=404)
    with pytest.raises(WebhookDeliveryError) as error:
        hook.deliver(PAYLOAD, "build.failed", "event-8")
    hook.deliver(PAYLOAD, "build.failed", "event-9")

    out = capfd.readouterr()
    for text in (str(error.value), caplog.text, out.out, out.err):
        assert "Zx9SlackSecret" not in text
    assert "/services/T000/B000/Zx9SlackSecret" in hook.target.secrets()
    assert len(receiver.state.received) == 1
