"""TLS against a real HTTPS receiver and emulator on loopback, with a certificate of the test's own."""

from __future__ import annotations

import datetime
import ipaddress
import json

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_dockerhub.emulator import (
    HubState,
    ReceiverState,
    create_hub_app,
    create_receiver_app,
    serve_in_thread,
)
from airflow_dockerhub.exceptions import DockerHubError, WebhookDeliveryError
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.hooks.webhook import WebhookHook

PAYLOAD = {"repository": {"repo_name": "acme/app", "status": "Failed"}, "build_history": {"id": 1}}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, known to no CA bundle: (certificate path, key path)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "receiver.pem", folder / "receiver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def receiver(certificate):
    state = ReceiverState()
    with serve_in_thread(create_receiver_app(state), tls=certificate) as server:
        server.state = state
        yield server


@pytest.fixture
def hub(certificate):
    state = HubState(datetime.datetime.now(datetime.timezone.utc))
    state.add_repository("acme", "app", automated=True)
    with serve_in_thread(create_hub_app(state), tls=certificate) as server:
        yield server


@pytest.fixture
def environment_bundle(monkeypatch):
    """Point requests at the public CA bundle through the environment, as corporate set-ups do."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def webhook_hook(monkeypatch, url, extra=None):
    conn = {"conn_type": "generic", "host": url + "/hook", "extra": extra or {}}
    monkeypatch.setenv("AIRFLOW_CONN_TLS_TARGET", json.dumps(conn))
    return WebhookHook(webhook_conn_id="tls_target")


def dockerhub_hook(monkeypatch, url, extra=None):
    conn = {"conn_type": "dockerhub", "host": url, "extra": extra or {}}
    monkeypatch.setenv("AIRFLOW_CONN_TLS_HUB", json.dumps(conn))
    return DockerHubHook(dockerhub_conn_id="tls_hub")


def test_an_unknown_certificate_is_refused_by_default(monkeypatch, receiver, hub):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(WebhookDeliveryError, match="SSLError"):
        webhook_hook(monkeypatch, receiver.url).deliver(PAYLOAD, "build.failed", "tls-1")
    with pytest.raises(DockerHubError, match="SSLError"):
        list(dockerhub_hook(monkeypatch, hub.url).list_repositories("acme"))
    assert receiver.state.received == []


def test_the_environment_ca_bundle_is_honoured_by_default(monkeypatch, certificate, receiver, hub):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])

    assert webhook_hook(monkeypatch, receiver.url).deliver(PAYLOAD, "build.failed", "tls-2") == 200
    assert [repo["name"] for repo in dockerhub_hook(monkeypatch, hub.url).list_repositories("acme")] == [
        "app"
    ]


def test_a_ca_bundle_in_the_connection_wins_over_the_environment(
    monkeypatch, environment_bundle, certificate, receiver, hub
):
    extra = {"verify": certificate[0]}

    assert webhook_hook(monkeypatch, receiver.url, extra).deliver(PAYLOAD, "build.failed", "tls-3") == 200
    assert list(dockerhub_hook(monkeypatch, hub.url, extra).list_repositories("acme"))


@pytest.mark.parametrize("off", [False, "false"])
def test_verification_turned_off_stays_off_whatever_the_environment_says(
    monkeypatch, environment_bundle, receiver, hub, capfd, off
):
    extra = {"verify": off}

    assert webhook_hook(monkeypatch, receiver.url, extra).deliver(PAYLOAD, "build.failed", "tls-4") == 200
    assert list(dockerhub_hook(monkeypatch, hub.url, extra).list_repositories("acme"))

    printed = capfd.readouterr().out
    assert printed.count("TLS verification is off for connection tls_target") == 1
    assert printed.count("TLS verification is off for connection tls_hub") == 1
