"""
Drive whole monitor cycles through faults and count what was lost, sent twice or leaked.

Run it with ``scripts/reliability``. Each scenario injects a new failed build into the emulated Docker
Hub, switches on a fault of Docker Hub, of the receiver or of Airflow itself (a record step that never
ran, a run rerun from the UI), runs one monitor cycle with ``dag.test()``, then runs a clean cycle to
let the monitor recover, as the next five-minute run would. At the end every problem build must have
reached the receiver exactly once, a rejected login must have been told exactly once, and no secret
may appear in the captured output or anywhere in the metadata database (XComs, rendered fields,
variables).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
RECEIVER_PASSWORD = "rel-pw-7f3a9"
QUERY_TOKEN = "rel-qt-51c2e"
TRIGGER_TOKEN = "0b7e4c1a-3d52-4f8e-9a61-5c2d8e7f1a01"
WRONG_TOKEN = "dckr_pat_rel-wrong-2c9d"
SECRETS = (RECEIVER_PASSWORD, QUERY_TOKEN, TRIGGER_TOKEN, WRONG_TOKEN)
#: Read timeout of the Docker Hub connection in this run, so that a slow answer times out quickly.
READ_TIMEOUT = 1.0


@dataclass
class Figures:
    """What the run counted."""

    faults: int = 0
    cycles: int = 0
    expected: int = 0
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            ("faults tried", self.faults),
            ("monitor cycles", self.cycles),
            ("alerts expected", self.expected),
            ("alerts delivered", self.delivered),
            ("alerts lost", len(self.lost)),
            ("alerts sent twice", len(self.duplicated)),
            ("secrets leaked", len(self.leaked)),
        ]
        return "\n".join(f"{label:<20}{count:>6}" for label, count in rows)


@dataclass
class Airflow:
    """Faults of Airflow itself, for the next cycle: they change how the cycle is run, not what it meets."""

    skip_record: bool = False
    rerun_previous: bool = False
    wrong_token: bool = False


def _scenarios(hub, receiver, airflow: Airflow):
    """Name each fault and switch it on; every one of them is something Docker Hub, a receiver or Airflow did."""
    return [
        (
            "Docker Hub 503 once on the listing",
            lambda: hub.fail_next(1, 503, path_prefix="/v2/repositories/demo/"),
        ),
        (
            "Docker Hub 429 with Retry-After as an epoch",
            lambda: hub.fail_next(
                1,
                429,
                path_prefix="/v2/repositories/demo/",
                headers={"Retry-After": str(int(time.time()) + 1)},
            ),
        ),
        (
            "Docker Hub plain-text 429 (HAP429)",
            lambda: hub.fail_next(
                1, 429, path_prefix="/v2/", headers={"Retry-After": "1"}, body="Too Many Requests (HAP429).\n"
            ),
        ),
        (
            "Docker Hub 500 on one history for a whole cycle",
            # The first read and its three retries: the history is unreadable for this one cycle.
            lambda: hub.fail_next(4, 500, path_prefix="/v2/repositories/demo/api/buildhistory"),
        ),
        (
            "Docker Hub answers HTML with 200",
            lambda: hub.fail_next(
                1,
                200,
                path_prefix="/v2/repositories/demo/worker/buildhistory",
                body="<html>maintenance</html>",
            ),
        ),
        (
            "Docker Hub history body without results",
            lambda: hub.fail_next(
                1, 200, path_prefix="/v2/repositories/demo/cancelled/buildhistory", body='{"count": 3}'
            ),
        ),
        (
            "Docker Hub 429 with only the older X-Retry-After header",
            lambda: hub.fail_next(
                1,
                429,
                path_prefix="/v2/repositories/demo/",
                headers={"X-Retry-After": str(int(time.time()) + 1)},
            ),
        ),
        (
            "Docker Hub refuses the bearer token before it expires",
            lambda: hub.fail_next(
                1,
                401,
                path_prefix="/v2/repositories/demo/api/buildhistory",
                body='{"detail": "token revoked"}',
            ),
        ),
        ("receiver 503 twice", lambda: receiver.fail_next(2, 503)),
        # Four answers are a delivery's first attempt and its three retries: this cycle's new alert fails.
        ("receiver 408 past every retry", lambda: receiver.fail_next(4, 408)),
        ("receiver 500 past every retry", lambda: receiver.fail_next(4, 500)),
        ("receiver 429", lambda: receiver.fail_next(1, 429)),
        ("receiver drops the connection", lambda: receiver.fail_next(1, drop=True)),
        (
            "Docker Hub drops the connection twice",
            lambda: hub.fail_next(2, drop=True, path_prefix="/v2/repositories/demo/"),
        ),
        (
            "Docker Hub answers slower than the read timeout",
            lambda: hub.fail_next(
                1, 200, path_prefix="/v2/repositories/demo/", delay=READ_TIMEOUT + 0.5, body="{}"
            ),
        ),
        (
            "Docker Hub drops every history read of one repository for a cycle",
            lambda: hub.fail_next(4, drop=True, path_prefix="/v2/repositories/demo/worker/buildhistory"),
        ),
        ("Docker Hub auth endpoint 503", lambda: hub.fail_next(2, 503, path_prefix="/v2/auth/token")),
        (
            "Docker Hub rejects the login (wrong token for one cycle)",
            lambda: setattr(airflow, "wrong_token", True),
        ),
        ("worker lost between delivery and record", lambda: setattr(airflow, "skip_record", True)),
        ("a delivered run rerun from the UI", lambda: setattr(airflow, "rerun_previous", True)),
    ]


def run(scenario_limit: int | None = None) -> Figures:
    """
    Run the scenarios and return the figures; Airflow's home is a fresh temporary folder.

    :param scenario_limit: run only the first scenarios, for a quick check.
    """
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="dockerhub-reliability-"))
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DOCKERHUB__DELIVERY_RETRIES"] = "0"
    import subprocess

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    from airflow.dag_processing.dagbag import DagBag

    from airflow_dockerhub.emulator import (
        DEMO_SECRET,
        DEMO_USER,
        ReceiverState,
        create_hub_app,
        create_receiver_app,
        demo_state,
        serve_in_thread,
    )

    figures = Figures()
    hub = demo_state()
    receiver = ReceiverState("reliability", RECEIVER_PASSWORD)
    log_path = Path(os.environ["AIRFLOW_HOME"]) / "reliability-output.log"
    with (
        serve_in_thread(create_hub_app(hub)) as hub_server,
        serve_in_thread(create_receiver_app(receiver)) as rcv,
    ):

        def docker_hub(token: str) -> str:
            return json.dumps(
                {
                    "conn_type": "dockerhub",
                    "host": hub_server.url,
                    "login": DEMO_USER,
                    "password": token,
                    "extra": {"timeout": [2, READ_TIMEOUT]},
                }
            )

        os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"] = docker_hub(DEMO_SECRET)
        notify = (
            rcv.url.replace("http://", f"http://reliability:{RECEIVER_PASSWORD}@")
            + f"/in?token={QUERY_TOKEN}"
        )
        os.environ["AIRFLOW_CONN_DOCKERHUB_NOTIFY"] = json.dumps({"conn_type": "generic", "host": notify})
        os.environ["AIRFLOW_VAR_DOCKERHUB_NAMESPACES"] = "demo"
        os.environ["AIRFLOW_VAR_DOCKERHUB_BUILD_TRIGGER_SECRETS"] = json.dumps(
            {"demo/api": f"{hub_server.url}/u/demo/api/trigger/{TRIGGER_TOKEN}/"}
        )
        dag = DagBag().dags["dockerhub_build_monitor"]
        airflow = Airflow()
        last_run = None

        def cycle() -> None:
            nonlocal last_run
            figures.cycles += 1
            if airflow.wrong_token:
                os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"] = docker_hub(WRONG_TOKEN)
            with _captured(log_path):
                if airflow.rerun_previous and last_run is not None:
                    # The same moments make dag.test() clear that run's tasks and run them again.
                    dag.test(logical_date=last_run.logical_date, run_after=last_run.run_after)
                else:
                    pattern = "record_deliveries" if airflow.skip_record else None
                    last_run = dag.test(mark_success_pattern=pattern)
            os.environ["AIRFLOW_CONN_DOCKERHUB_DEFAULT"] = docker_hub(DEMO_SECRET)
            airflow.__init__()

        expected = _due_now(hub)
        cycle()
        repositories = ["worker", "cancelled", "queue-stuck", "long-build", "modern-app"]
        for index, (scenario, switch_on) in enumerate(_scenarios(hub, receiver, airflow)[:scenario_limit]):
            # A new failure each time, so every fault meets an alert that has to get through.
            name = repositories[index % len(repositories)]
            injected = hub.add_build("demo", name, status=-1, created_minutes_ago=0.5)
            expected.add(_failure_alert("demo", name, injected))
            switch_on()
            figures.faults += 1
            with log_path.open("a") as output:
                output.write(f"=== fault: {scenario}\n")
            cycle()
            cycle()
    build_alerts = [
        w for w in receiver.received if not w["headers"]["x-dockerhub-event"].startswith("monitor.")
    ]
    received = Counter(w["headers"]["x-dockerhub-event-id"] for w in build_alerts)
    told = [
        w for w in receiver.received if w["headers"]["x-dockerhub-event"] == "monitor.credentials_rejected"
    ]
    if scenario_limit is None:
        # The rejected login must be told once, like an alert.
        expected.add("monitor.credentials_rejected")
        received.update("monitor.credentials_rejected" for _ in told)
    figures.expected = len(expected)
    figures.delivered = len(set(received) & expected)
    figures.lost = sorted(expected - set(received))
    figures.duplicated = sorted(event_id for event_id, count in received.items() if count > 1)
    text = log_path.read_text(errors="replace")
    if "Delivered build.failed" not in text:
        raise RuntimeError(
            f"The task logs were not captured in {log_path}; the secrets count would mean nothing"
        )
    stored = _database_text()
    # The working Docker Hub token and every bearer token it was exchanged for are secrets too.
    secrets = (*SECRETS, DEMO_SECRET, *hub.issued_tokens())
    figures.leaked = [f"{_hint(secret)} in the output" for secret in secrets if secret in text]
    figures.leaked += [f"{_hint(secret)} in the metadata database" for secret in secrets if secret in stored]
    return figures


def _hint(secret: str) -> str:
    """Name a leaked secret by its first characters, so the report does not leak it once more."""
    return f"{secret[:6]}…"


def _database_text() -> str:
    """Dump every row of the metadata database: XComs, rendered fields, variables, logs of events."""
    from airflow import settings
    from sqlalchemy import inspect, text

    rows = []
    with settings.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows.extend(repr(row) for row in connection.execute(text(f'SELECT * FROM "{table}"')))
    return "\n".join(rows)


@contextlib.contextmanager
def _captured(path: Path):
    """
    Send everything this process writes to stdout and stderr, and every log record, to a file.

    Log records are written without Airflow's secrets masker, so the count shows what the code logs,
    not what the masker caught.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    # Airflow's task loggers may not propagate to the root logger, so they get the handler too.
    loggers = [logging.getLogger(), logging.getLogger("airflow.task")]
    with path.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
            handler.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _due_now(hub) -> set[str]:
    """Return the event ids of the alerts the emulator's builds call for right now."""
    from datetime import datetime, timezone

    from airflow_dockerhub.alerts import Thresholds, due_alerts
    from airflow_dockerhub.builds import Build

    builds = [
        Build.from_legacy(repository["namespace"], repository["name"], raw)
        for repository in hub.snapshot()["repositories"]
        if repository["automated"] and repository["history"] != "none"
        for raw in repository["builds"]
    ]
    return {alert.event_id for alert in due_alerts(builds, datetime.now(timezone.utc), Thresholds())}


def _failure_alert(namespace: str, repository: str, raw: dict) -> str:
    from airflow_dockerhub.alerts import Alert, AlertKind
    from airflow_dockerhub.builds import Build

    return Alert(AlertKind.FAILED, Build.from_legacy(namespace, repository, raw)).event_id


def main() -> int:
    figures = run()
    if "--json" in sys.argv[1:]:
        print(json.dumps(dataclasses.asdict(figures)))
        return 0
    print(figures.table())
    for label, items in (
        ("lost", figures.lost),
        ("sent twice", figures.duplicated),
        ("leaked", figures.leaked),
    ):
        for item in items:
            print(f"  {label}: {item}")
    return 0 if not (figures.lost or figures.duplicated or figures.leaked) else 1


if __name__ == "__main__":
    sys.exit(main())
