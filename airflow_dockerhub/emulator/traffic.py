"""Shape the traffic reaching the emulated Docker Hub: latency, rate limit, faults, dropped connections."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from airflow_dockerhub.emulator.state import HubState

log = logging.getLogger(__name__)

#: Docker Hub's answer past its rate limit.
TOO_MANY_REQUESTS = {"message": "Too Many Requests"}
#: Longest wait for the server to notice a connection it was told to drop.
DROP_TIMEOUT = 2.0


class TrafficShaper:
    """
    ASGI middleware that answers API requests late, refuses them past a rate limit or fails them.

    What each request gets is decided by :meth:`HubState.admit` when it arrives, so concurrent
    requests take faults and rate limit slots in arrival order; the latency is then slept without
    blocking, so requests in flight overlap.

    It must be the outermost layer of the app, outside Starlette's error middleware, because that
    wraps ``send`` and a dropped connection needs the server's own ``send`` to find the connection.

    :param app: the app answering requests that pass.
    :param state: the emulator state holding latency, rate limit and faults.
    :param exempt_prefix: paths starting with this pass untouched and uncounted, for admin calls.
    """

    def __init__(self, app: ASGIApp, state: HubState, *, exempt_prefix: str) -> None:
        self.app = app
        self.state = state
        self.exempt_prefix = exempt_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return

        # A request counts as in flight until its answer starts: the client may send its next one the
        # moment the answer arrives, before this call has returned.
        self.state.request_started()
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                self.state.request_ended()

        async def send_ending(message: Message) -> None:
            if message["type"] == "http.response.start":
                end()
            await send(message)

        try:
            await self._answer(scope, receive, send_ending, server_send=send)
        finally:
            end()

    async def _answer(self, scope: Scope, receive: Receive, send: Send, *, server_send: Send) -> None:
        admission = self.state.admit(scope["method"], scope["path"])
        fault = admission.fault
        delay = admission.latency + (fault.delay if fault is not None else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.drop:
            # The connection is found through the server's own send, not the wrapper around it.
            await drop_connection(receive, server_send)
            return

        rate_headers = admission.rate_limit.headers() if admission.rate_limit is not None else {}
        response: Response | None = None
        if admission.rate_limit is not None and admission.rate_limit.exceeded:
            # Docker Hub sends the reset epoch, not a number of seconds, in Retry-After.
            headers = {**rate_headers, "Retry-After": str(admission.rate_limit.reset)}
            response = JSONResponse(TOO_MANY_REQUESTS, status_code=429, headers=headers)
        elif fault is not None:
            # A fault's own headers win, so a fault can fake rate limit headers of its own.
            headers = {**rate_headers, **fault.headers}
            response = Response(
                fault.body, status_code=fault.status, headers=headers, media_type="application/json"
            )

        if response is not None:
            await response(scope, receive, send)
        elif rate_headers:
            await self.app(scope, receive, _adding_headers(send, rate_headers))
        else:
            await self.app(scope, receive, send)


async def drop_connection(receive: Receive, send: Send) -> None:
    """
    Close the current request's connection at once, without sending a byte of an answer.

    ASGI has no message for this, and a server answers 500 to an app that fails or returns before
    starting a response, so the connection is reached through the server: uvicorn's ``send`` is a
    method of its request cycle, which holds the connection's transport. With any other server
    a warning is logged and the server's own answer to an unanswered request goes out instead.

    :param receive: the server's ``receive``.
    :param send: the server's own ``send``, not one wrapped by a middleware.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        log.warning("Cannot drop the connection: the server does not expose its transport")
        return
    # abort() rather than close(): nothing buffered may go out, and the peer sees the end at once.
    transport.abort()
    # Returning before the server has seen the connection end would make it answer 500 (into the
    # void) and log an error; its receive() reports the end as a disconnect.
    try:
        await asyncio.wait_for(_until_disconnected(receive), DROP_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning("The server did not notice the dropped connection within %s s", DROP_TIMEOUT)


async def _until_disconnected(receive: Receive) -> None:
    # Any request body still arriving comes first, and is thrown away.
    while (await receive())["type"] != "http.disconnect":
        pass


def _adding_headers(send: Send, headers: dict[str, str]) -> Send:
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_headers
