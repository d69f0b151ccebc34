"""FastAPI app that receives webhooks and keeps them for tests and demos to inspect."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from airflow_dockerhub.emulator.traffic import drop_connection

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

RECEIVER_PREFIX = "/_receiver"
# GET too: heartbeat services are pinged with a plain GET.
_WEBHOOK_METHODS = ["POST", "PUT", "PATCH", "GET"]


class ReceiverState:
    """
    Hold the webhooks a receiver accepted, and how it should answer the next ones.

    :param username: when given with ``password``, deliveries must carry these HTTP basic auth
        credentials; others get 401 and are not stored.
    :param password: the password expected with ``username``.
    """

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.received: list[dict[str, Any]] = []
        #: Every delivery attempt seen, including those refused or failed on purpose.
        self.attempts = 0
        self._changed = threading.Condition()
        self._failures_left = 0
        self._failure_status = 500
        self._drops_left = 0

    def fail_next(self, count: int, status: int = 500, *, drop: bool = False) -> None:
        """
        Answer the next ``count`` deliveries with ``status`` and do not store them.

        :param count: how many deliveries fail.
        :param status: the HTTP status they get.
        :param drop: close the connection before reading the delivery, without any answer, as a
            proxy that crashed would; the sender sees a connection error.
        """
        with self._changed:
            if drop:
                self._drops_left = count
                return
            self._failures_left = count
            self._failure_status = status

    def take_drop(self) -> bool:
        """Tell whether the delivery arriving now must have its connection dropped, using that fault up."""
        with self._changed:
            if self._drops_left <= 0:
                return False
            self._drops_left -= 1
            self.attempts += 1
            return True

    def clear(self) -> None:
        """Forget received webhooks, attempts and pending failures."""
        with self._changed:
            self.received.clear()
            self.attempts = 0
            self._failures_left = 0
            self._drops_left = 0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """
        Wait until at least ``count`` webhooks were received.

        :param count: how many webhooks to wait for.
        :param timeout: seconds to wait at most.
        :return: the webhooks received so far, even if fewer than ``count`` when time ran out.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count and (remaining := deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            return list(self.received)

    def admit(self, credentials: tuple[str, str] | None) -> int | None:
        """
        Count a delivery attempt and decide whether to accept it.

        Wrong credentials are refused before any scripted failure is used up, so a client that
        forgot its credentials does not consume the failures a test arranged.

        :param credentials: the basic auth user and password sent, or ``None``.
        :return: the HTTP status refusing the delivery, or ``None`` to accept it.
        """
        with self._changed:
            self.attempts += 1
            if not self._credentials_match(credentials):
                return 401
            if self._failures_left > 0:
                self._failures_left -= 1
                return self._failure_status
            return None

    def store(self, webhook: dict[str, Any]) -> None:
        """
        Keep an accepted webhook and wake anyone waiting for it.

        :param webhook: the delivery, shaped as :func:`create_receiver_app` describes.
        """
        with self._changed:
            self.received.append(webhook)
            self._changed.notify_all()

    def _credentials_match(self, credentials: tuple[str, str] | None) -> bool:
        if self.username is None or self.password is None:
            return True
        if credentials is None:
            return False
        user_ok = secrets.compare_digest(credentials[0].encode(), self.username.encode())
        password_ok = secrets.compare_digest(credentials[1].encode(), self.password.encode())
        return user_ok and password_ok


class _ReceiverApp(FastAPI):
    # Outside Starlette's error middleware, like the hub's traffic shaper: dropping a connection
    # needs the server's own ``send``.
    def __init__(self, state: ReceiverState, **kwargs: Any) -> None:
        self.receiver_state = state
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        state = self.receiver_state

        async def dropping(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] == "http"
                and not scope["path"].startswith(RECEIVER_PREFIX)
                and state.take_drop()
            ):
                await drop_connection(receive, send)
                return
            await inner(scope, receive, send)

        return dropping


def create_receiver_app(state: ReceiverState, *, echo: bool = False) -> FastAPI:
    """
    Create an app that accepts webhooks on any path.

    Each accepted delivery is appended to ``state.received`` as a dict with ``method``, ``path``,
    ``query`` (raw query string), ``headers`` (lower-case names), ``body`` (parsed JSON or ``None``),
    ``raw_body`` and ``basic_auth`` (user and password, or ``None``). ``GET /_receiver/received``
    lists them, for demos that run the receiver in another process.

    :param state: where deliveries are stored and how failures are scripted.
    :param echo: print each accepted webhook to standard output.
    """
    app = _ReceiverApp(state, title="Webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(f"{RECEIVER_PREFIX}/received")
    async def list_received() -> list[dict[str, Any]]:
        return [_redacted(webhook) for webhook in list(state.received)]

    @app.api_route("/{path:path}", methods=_WEBHOOK_METHODS)
    async def receive(request: Request) -> JSONResponse:
        credentials = _basic_auth(request.headers.get("authorization"))
        refusal = state.admit(credentials)
        if refusal == 401:
            return JSONResponse(
                {"error": "Unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="webhook-receiver"'},
            )
        if refusal is not None:
            return JSONResponse({"error": "Failure requested by fail_next"}, status_code=refusal)

        raw_body = (await request.body()).decode("utf-8", errors="replace")
        webhook = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "body": _parse_json(raw_body),
            "raw_body": raw_body,
            "basic_auth": credentials,
        }
        state.store(webhook)
        if echo:
            print(describe_webhook(webhook), flush=True)
        return JSONResponse({"received": True})

    return app


def describe_webhook(webhook: dict[str, Any]) -> str:
    """
    Render a received webhook as a summary line followed by its indented JSON body.

    The summary reads ``webhook <event header> <repo_name>:<tag> <repository.status>``.

    :param webhook: a delivery as stored by the receiver.
    """
    headers = webhook["headers"]
    event = headers.get("x-dockerhub-event") or next(
        (value for name, value in headers.items() if name.endswith("-event")), "-"
    )
    body = webhook["body"]
    payload = body if isinstance(body, dict) else {}
    repository = payload.get("repository") or {}
    push_data = payload.get("push_data") or {}
    build = payload.get("build_history") or {}
    tag = push_data.get("tag") or build.get("dockertag_name") or "?"
    summary = f"webhook {event} {repository.get('repo_name', '?')}:{tag} {repository.get('status', '?')}"
    details = json.dumps(body, indent=2) if body is not None else webhook["raw_body"]
    return f"{summary}\n{details}"


def _redacted(webhook: dict[str, Any]) -> dict[str, Any]:
    # The listing is served over HTTP, so credentials the sender used stay out of it.
    headers = dict(webhook["headers"])
    if "authorization" in headers:
        headers["authorization"] = "***"
    credentials = webhook["basic_auth"]
    return {
        **webhook,
        "headers": headers,
        "basic_auth": None if credentials is None else [credentials[0], "***"],
    }


def _basic_auth(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _parse_json(raw_body: str) -> Any:
    if not raw_body.strip():
        return None
    try:
        return json.loads(raw_body)
    except ValueError:
        return None
