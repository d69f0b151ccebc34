from __future__ import annotations

import json

from airflow_dockerhub.emulator import ReceiverState, create_receiver_app, serve_in_thread
from airflow_dockerhub.hooks.webhook import WebhookHook
from airflow_dockerhub.signing import signature, verify

BODY = b'{"repository":{"repo_name":"acme/app","status":"Failed"}}'


def test_a_signature_verifies_and_any_change_breaks_it():
    header = signature(BODY, "s3cret", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify(BODY, header, "s3cret", now=1_700_000_010)
    assert not verify(BODY + b" ", header, "s3cret", now=1_700_000_010)
    assert not verify(BODY, header, "other", now=1_700_000_010)
    assert not verify(BODY, header, "s3cret", now=1_700_000_000 + 301), "too old: a replay"
    assert not verify(BODY, "garbage", "s3cret", now=1_700_000_010)


def test_a_target_with_a_signing_secret_signs_the_exact_body(monkeypatch, caplog):
    receiver = ReceiverState()
    with serve_in_thread(create_receiver_app(receiver)) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_SIGNED",
            json.dumps(
                {"conn_type": "generic", "host": server.url + "/in", "extra": {"signing_secret": "k-9f3a"}}
            ),
        )
        WebhookHook(webhook_conn_id="signed").deliver(json.loads(BODY), "build.failed", "e-1")

    [webhook] = receiver.received
    header = webhook["headers"]["x-dockerhub-signature"]
    timestamp = int(header.split(",")[0][2:])
    assert verify(webhook["raw_body"].encode("utf-8"), header, "k-9f3a", now=timestamp)
    assert "k-9f3a" not in caplog.text
