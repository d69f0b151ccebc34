"""Run the Docker Hub emulator with the demo namespace, and a webhook receiver, until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from airflow_dockerhub.emulator.demo import DEMO_NAMESPACE, DEMO_SECRET, DEMO_USER, demo_state
from airflow_dockerhub.emulator.hub import create_hub_app
from airflow_dockerhub.emulator.receiver import ReceiverState, create_receiver_app
from airflow_dockerhub.emulator.server import serve_in_thread
from airflow_dockerhub.emulator.state import DEFAULT_RATE_WINDOW, HubState

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    from airflow_dockerhub.emulator.server import RunningServer

#: Where ``--repositories`` go unless ``--namespace`` says otherwise.
BULK_NAMESPACE = "bulk"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """
    Read the command line.

    :param argv: the arguments, without the program name; ``sys.argv`` when omitted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_dockerhub.emulator",
        description="Serve an emulated Docker Hub with the demo namespace and a webhook receiver.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="Docker Hub emulator port (default: %(default)s)"
    )
    parser.add_argument(
        "--receiver-port",
        type=int,
        default=8766,
        help="webhook receiver port, 0 for no receiver (default: %(default)s)",
    )
    parser.add_argument("--receiver-user", help="basic auth user the receiver requires")
    parser.add_argument("--receiver-password", help="basic auth password the receiver requires")
    parser.add_argument("--max-page-size", type=int, help="largest page_size the emulator honours")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="milliseconds added to every API answer, without blocking others (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="answer 429 past N API requests per window, with X-RateLimit-* headers (default: no limit)",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=DEFAULT_RATE_WINDOW,
        metavar="SECONDS",
        help="length of a rate limit window (default: %(default)s)",
    )
    parser.add_argument(
        "--repositories",
        type=int,
        default=0,
        metavar="N",
        help="add N automated repositories with a few builds each to --namespace (default: none)",
    )
    parser.add_argument(
        "--namespace",
        default=BULK_NAMESPACE,
        help="namespace the --repositories go to, created if needed (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if (args.receiver_user is None) != (args.receiver_password is None):
        parser.error("--receiver-user and --receiver-password go together")
    if args.repositories < 0:
        parser.error("--repositories must not be negative")
    try:
        # Checked here, as the state will check them, so a bad value is a usage error, not a traceback.
        HubState().configure(
            latency=args.latency_ms / 1000, rate_limit=args.rate_limit, rate_window=args.rate_window
        )
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """
    Serve until SIGINT or SIGTERM, then stop both servers.

    :param argv: the arguments, without the program name; ``sys.argv`` when omitted.
    :return: the exit status.
    """
    args = parse_args(argv)
    hub_state = demo_state()
    if args.max_page_size is not None:
        hub_state.max_page_size = args.max_page_size
    hub_state.configure(
        latency=args.latency_ms / 1000, rate_limit=args.rate_limit, rate_window=args.rate_window
    )
    if args.repositories:
        try:
            hub_state.populate(args.namespace, args.repositories)
        except ValueError as error:
            print(f"Cannot add repositories: {error}", file=sys.stderr, flush=True)
            return 2

    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    servers: list[RunningServer] = []
    try:
        hub = serve_in_thread(create_hub_app(hub_state), args.host, args.port)
        servers.append(hub)
        print(
            f"Docker Hub emulator: {hub.url} (namespace {DEMO_NAMESPACE}, user {DEMO_USER}, "
            f"secret {DEMO_SECRET})",
            flush=True,
        )
        if args.receiver_port:
            receiver_state = ReceiverState(args.receiver_user, args.receiver_password)
            receiver = serve_in_thread(
                create_receiver_app(receiver_state, echo=True), args.host, args.receiver_port
            )
            servers.append(receiver)
            print(f"Webhook receiver: {receiver.url}", flush=True)
        if args.repositories:
            print(f"Namespace {args.namespace}: {args.repositories} repositories", flush=True)

        # Wake up now and then so a server thread that died ends the process too.
        while not stop.wait(0.5):
            if not all(server.alive for server in servers):
                print("A server stopped unexpectedly", file=sys.stderr, flush=True)
                return 1
    except OSError as error:
        print(f"Cannot listen: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
