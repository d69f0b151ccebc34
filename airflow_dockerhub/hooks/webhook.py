"""Hook that delivers webhooks to a receiver named by a connection."""

from __future__ import annotations

import json
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import requests
from airflow.sdk import BaseHook

from airflow_dockerhub.exceptions import WebhookDeliveryError
from airflow_dockerhub.http_retry import delivery_retry
from airflow_dockerhub.http_session import connection_session
from airflow_dockerhub.http_settings import http_backoff, parse_timeout, parse_verify
from airflow_dockerhub.settings import NOTIFY_CONN_ID
from airflow_dockerhub.signing import SIGNATURE_HEADER, signature
from airflow_dockerhub.targets import TargetSettings, WebhookTarget, parse_notification_url

if TYPE_CHECKING:
    from airflow.sdk import Connection

EVENT_HEADER = "X-DockerHub-Event"
EVENT_ID_HEADER = "X-DockerHub-Event-Id"
TEST_HEADER = "X-DockerHub-Test"

#: Extra keys that configure the hook; in a connection given as a URI, every other key came from the
#: notification URL's query string.
SETTING_KEYS = frozenset({"timeout", "verify", "format", "send_resolved", "signing_secret"})


class WebhookHook(BaseHook):
    """
    Deliver JSON webhooks to the URL of a connection.

    The connection's host holds the whole notification URL, for example
    ``https://user:pwd@hooks.example.com:10443/hook?token=123``: credentials inside it become basic
    auth, the path and query string are sent as they are. The login and password fields work too.
    The extra may hold ``verify`` (false, or a CA bundle path; certificates are verified by default),
    ``timeout`` (seconds, or a ``[connect, read]`` pair), ``format`` (``dockerhub``, ``slack`` or
    ``rocketchat``), ``send_resolved`` and ``signing_secret`` (sign every body with HMAC-SHA256, see
    :mod:`airflow_dockerhub.signing`).

    :param webhook_conn_id: the connection naming the receiver.
    """

    conn_name_attr = "webhook_conn_id"
    default_conn_name = NOTIFY_CONN_ID
    conn_type = "http"
    hook_name = "Webhook receiver"

    def __init__(self, webhook_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook_conn_id = webhook_conn_id

    @cached_property
    def connection(self) -> Connection:
        """The receiver's connection, read once."""
        return self.get_connection(self.webhook_conn_id)

    @cached_property
    def target(self) -> WebhookTarget:
        """Resolve the connection into the URL to post to and its credentials."""
        conn = self.connection
        try:
            target = parse_notification_url(_connection_url(conn), conn.login, conn.password)
        except ValueError as error:
            raise ValueError(f"Connection {self.webhook_conn_id}: {error}") from None
        for secret in target.secrets():
            self._mask(secret)
        return target

    @cached_property
    def target_settings(self) -> TargetSettings:
        """Read how this target wants its notices: format and resolved notices."""
        return TargetSettings.from_extra(self.webhook_conn_id, self.connection.extra_dejson)

    @cached_property
    def session(self) -> requests.Session:
        """The HTTP session deliveries are retried through, verifying TLS as the ``verify`` extra says."""
        verify = parse_verify(
            self.connection.extra_dejson.get("verify"),
            f"the 'verify' extra of connection {self.webhook_conn_id}",
        )
        session = connection_session(verify, delivery_retry(http_backoff()))
        if session.verify is False:
            self.log.warning("TLS verification is off for connection %s", self.webhook_conn_id)
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's one HTTP session, created on first use."""
        return self.session

    def deliver(self, payload: dict[str, Any], event: str, event_id: str, test: bool = False) -> int:
        """
        Post one webhook.

        :param payload: the JSON body.
        :param event: the kind of event, sent in the ``X-DockerHub-Event`` header.
        :param event_id: the stable id of the alert, sent in ``X-DockerHub-Event-Id`` so a receiver
            can drop a repeat.
        :param test: mark the delivery as a test with an ``X-DockerHub-Test: true`` header.
        :return: the receiver's status code (2xx).
        :raise WebhookDeliveryError: on any other answer or no answer; the message names the
            receiver by its redacted URL.
        """
        target = self.target
        timeout = parse_timeout(
            self.connection.extra_dejson.get("timeout"),
            f"the 'timeout' extra of connection {self.webhook_conn_id}",
        )
        headers = {"Content-Type": "application/json", EVENT_HEADER: event, EVENT_ID_HEADER: event_id}
        if test:
            headers[TEST_HEADER] = "true"
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        secret = self.connection.extra_dejson.get("signing_secret")
        if secret:
            self._mask(str(secret))
            headers[SIGNATURE_HEADER] = signature(body, str(secret), int(time.time()))
        try:
            response = self.session.post(
                target.url, data=body, headers=headers, auth=target.auth, timeout=timeout
            )
        except requests.RequestException as error:
            # The exception text would repeat the URL with its query string; name the receiver safely.
            raise WebhookDeliveryError(
                f"Could not deliver {event} {event_id} to {target.redacted}: {type(error).__name__}"
            ) from None

        if not 200 <= response.status_code < 300:
            raise WebhookDeliveryError(
                f"Receiver {target.redacted} answered {response.status_code} to {event} {event_id}; "
                "the alert stays undelivered and is sent again on a later run",
                response.status_code,
            )
        self.log.info("Delivered %s %s to %s: %s", event, event_id, target.redacted, response.status_code)
        return response.status_code

    def ping(self) -> int:
        """
        Call the URL with a GET, the way heartbeat services such as healthchecks.io expect.

        :return: the status code.
        :raise WebhookDeliveryError: on no answer or a non-2xx answer.
        """
        target = self.target
        timeout = parse_timeout(
            self.connection.extra_dejson.get("timeout"),
            f"the 'timeout' extra of connection {self.webhook_conn_id}",
        )
        try:
            response = self.session.get(target.url, auth=target.auth, timeout=timeout)
        except requests.RequestException as error:
            raise WebhookDeliveryError(f"Could not ping {target.redacted}: {type(error).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise WebhookDeliveryError(
                f"{target.redacted} answered {response.status_code} to a ping", response.status_code
            )
        return response.status_code

    @staticmethod
    def _mask(secret: str) -> None:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)


def _connection_url(conn: Connection) -> str:
    """
    Rebuild the notification URL a connection stands for.

    Set through the UI or as JSON, the host holds the whole URL. Given as an Airflow URI instead
    (``http://user:pwd@host:port/path?token=x``), Airflow has already split it into host, port, the
    path (as schema) and the query (as extra keys), so the pieces are put back together.
    """
    host = (conn.host or "").strip()
    if not host:
        raise ValueError("the host must hold the notification URL")
    if "://" in host:
        return host

    scheme = conn.conn_type if conn.conn_type in ("http", "https") else "https"
    url = f"{scheme}://{host}"
    if conn.port:
        url = f"{url}:{conn.port}"
    if conn.schema:
        url = f"{url}/{conn.schema.lstrip('/')}"
    query = {key: value for key, value in conn.extra_dejson.items() if key not in SETTING_KEYS}
    if query:
        url = f"{url}?{urlencode(query, quote_via=quote)}"
    return url
