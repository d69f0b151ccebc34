"""Run an ASGI app with uvicorn in a background thread, for tests and the command line."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from types import TracebackType

    from fastapi import FastAPI
    from typing_extensions import Self

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class RunningServer:
    """
    A uvicorn server running in a daemon thread; stop it with :meth:`stop` or a ``with`` block.

    :param server: the uvicorn server.
    :param thread: the thread running it.
    :param host: the address it is bound to.
    :param port: the port it listens on.
    :param scheme: ``http``, or ``https`` when it serves TLS.
    """

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int, scheme: str = "http"
    ) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port
        display_host = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{display_host}:{port}"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """
        Shut the server down and wait for its thread.

        :param timeout: seconds to wait for a graceful stop before forcing one.
        :raise RuntimeError: if the thread is still running after a forced stop.
        """
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Open client connections can hold a graceful shutdown; force it rather than hang.
            log.warning("Server at %s did not stop in %s s; forcing it", self.url, timeout)
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"Server at {self.url} did not stop")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = STARTUP_TIMEOUT,
    tls: tuple[str, str] | None = None,
) -> RunningServer:
    """
    Start ``app`` with uvicorn in a daemon thread and wait until it accepts connections.

    The socket is bound here, before the thread starts, so port 0 yields a free port with no race
    and a busy port fails in the caller's thread.

    :param app: the ASGI app to serve.
    :param host: the address to bind; only this address is listened on.
    :param port: the port to bind, 0 for any free port.
    :param startup_timeout: seconds to wait for the server to start.
    :param tls: the paths of a certificate and its key, to serve HTTPS instead of HTTP.
    :raise OSError: if the address cannot be bound.
    :raise RuntimeError: if the server does not start in time.
    """
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        # Leave the process's logging configuration alone; tests and Airflow own it.
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=2,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"emulator-{bound_port}", daemon=True
    )
    thread.start()
    running = RunningServer(server, thread, host, bound_port, "https" if tls else "http")

    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"Server at {running.url} did not start within {startup_timeout} s")
        time.sleep(0.01)
    return running


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets the command line restart on its fixed port while old connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
