"""The five-minute Docker Hub build monitor, as a DAG factory."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from airflow.configuration import conf
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TriggerRule, Variable, task

from airflow_dockerhub.operators.webhook import DockerHubWebhookOperator
from airflow_dockerhub.settings import (
    ALERT_RECORD_VARIABLE,
    BUILDING_THRESHOLD_VARIABLE,
    DOCKERHUB_CONN_ID,
    MAX_BUILD_AGE_VARIABLE,
    NAMESPACES_VARIABLE,
    NOTIFY_CONN_ID,
    QUEUED_THRESHOLD_VARIABLE,
)

DAG_ID = "dockerhub_build_monitor"

DOC = """
Polls the build history of every automated repository in the namespaces of the
`dockerhub_namespaces` variable and sends a webhook, shaped like Docker Hub's own push
webhook, for every build that failed, was cancelled, sits queued too long or runs too long.
Each alert is delivered once: the record of delivered alerts is the variable
`dockerhub_alert_record`; delete it to start over.
"""


def _number_param(description: str) -> Param:
    return Param(None, type=["null", "number"], exclusiveMinimum=0, description=description)


def create_build_monitor_dag(
    dag_id: str = DAG_ID,
    dockerhub_conn_id: str = DOCKERHUB_CONN_ID,
    webhook_conn_id: str = NOTIFY_CONN_ID,
    schedule: str | None = "*/5 * * * *",
) -> DAG:
    """
    Create the build monitor DAG.

    Nothing here reads a variable, a connection or the network: settings are read by the tasks.
    Delivery retries come from the Airflow configuration (``[dockerhub] delivery_retries``, default 2,
    and ``[dockerhub] delivery_retry_delay_seconds``, default 30), which needs no database.

    :param dag_id: the DAG id.
    :param dockerhub_conn_id: the Docker Hub connection.
    :param webhook_conn_id: the connection whose host is the notification URL.
    :param schedule: how often to poll.
    """
    delivery_retries = conf.getint("dockerhub", "delivery_retries", fallback=2)
    retry_delay = conf.getfloat("dockerhub", "delivery_retry_delay_seconds", fallback=30.0)

    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(minutes=30),
        doc_md=DOC,
        tags=["dockerhub"],
        params={
            "namespaces": Param(
                None,
                type=["null", "string"],
                description=f"Comma-separated namespaces for this run; empty uses the {NAMESPACES_VARIABLE} variable.",
            ),
            "queued_threshold_minutes": _number_param(
                f"Alert on builds queued longer than this; empty uses {QUEUED_THRESHOLD_VARIABLE} (default 60)."
            ),
            "building_threshold_minutes": _number_param(
                f"Alert on builds running longer than this; empty uses {BUILDING_THRESHOLD_VARIABLE} (default 120)."
            ),
            "max_build_age_hours": _number_param(
                f"Ignore builds last updated longer ago; empty uses {MAX_BUILD_AGE_VARIABLE} (default 24)."
            ),
        },
    ) as dag:
        # The snapshot and the alerts are long; the steps log their own summaries instead.
        @task(show_return_value_in_logs=False)
        def fetch_build_history(params: dict[str, Any] | None = None) -> dict[str, Any]:
            """Read the newest builds of every automated repository."""
            import logging

            import pendulum

            from airflow_dockerhub.alerts import due_alerts
            from airflow_dockerhub.hooks.dockerhub import DockerHubHook
            from airflow_dockerhub.monitor import fetch_snapshot, summary_table

            settings = _read_settings(params or {})
            snapshot = fetch_snapshot(DockerHubHook(dockerhub_conn_id=dockerhub_conn_id), settings.namespaces)
            due = due_alerts(snapshot.builds, pendulum.now("UTC"), settings.thresholds)

            logging.getLogger(__name__).info(
                "Docker Hub namespaces %s:\n%s",
                ", ".join(settings.namespaces),
                summary_table(snapshot, len(due)),
            )
            return snapshot.to_xcom()

        @task(show_return_value_in_logs=False)
        def evaluate(snapshot: dict[str, Any], params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
            """Decide which alerts are due and not yet delivered, and shape their webhooks."""
            import logging

            import pendulum

            from airflow_dockerhub.monitor import Snapshot, undelivered_alerts

            settings = _read_settings(params or {})
            alerts, already = undelivered_alerts(
                Snapshot.from_xcom(snapshot), _read_record(), pendulum.now("UTC"), settings.thresholds
            )
            log = logging.getLogger(__name__)
            log.info("%s alerts to deliver, %s delivered before", len(alerts), already)
            for alert in alerts:
                log.info(
                    "Due: %s %s:%s build %s",
                    alert["event"],
                    alert["repository"],
                    alert["tag"],
                    alert["build"],
                )
            return alerts

        @task.branch
        def any_alerts(alerts: list[dict[str, Any]]) -> str:
            """Go to delivery when there is something to deliver."""
            return "deliver_alert" if alerts else "all_clear"

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def record_deliveries(
            alerts: list[dict[str, Any]],
            snapshot: dict[str, Any],
            params: dict[str, Any] | None = None,
            ti=None,
        ) -> dict[str, Any]:
            """Add delivered alerts to the record; fail the run if anything was left undone."""
            import logging

            import pendulum
            from airflow.sdk.exceptions import AirflowFailException

            from airflow_dockerhub.monitor import record_deliveries as record

            settings = _read_settings(params or {})
            results = ti.xcom_pull(task_ids=["deliver_alert"]) if alerts else []
            ledger = _read_record()
            added, pruned, undelivered = record(
                ledger,
                alerts,
                results,
                pendulum.now("UTC"),
                timedelta(hours=settings.thresholds.max_age_hours),
            )
            if added or pruned:
                Variable.set(
                    ALERT_RECORD_VARIABLE,
                    ledger.to_stored(),
                    description="Alerts delivered by the dockerhub_build_monitor DAG; delete to start over.",
                    serialize_json=True,
                )
            log = logging.getLogger(__name__)
            log.info("Recorded %s delivered alerts; %s not delivered", added, len(undelivered))

            problems = [f"not delivered: {a['event']} {a['repository']}:{a['tag']}" for a in undelivered]
            problems += [f"not read: {error}" for error in snapshot.get("errors", [])]
            if problems:
                raise AirflowFailException(
                    "This cycle left work undone; the next run tries again:\n" + "\n".join(problems)
                )
            return {"recorded": added}

        snapshot = fetch_build_history()
        alerts = evaluate(snapshot)
        deliver = DockerHubWebhookOperator.partial(
            task_id="deliver_alert",
            webhook_conn_id=webhook_conn_id,
            retries=delivery_retries,
            retry_delay=timedelta(seconds=retry_delay),
            map_index_template="{{ task.alert['repository'] }}:{{ task.alert['tag'] }} {{ task.alert['kind'] }}",
        ).expand(alert=alerts)
        all_clear = EmptyOperator(task_id="all_clear")
        done = record_deliveries(alerts, snapshot)

        any_alerts(alerts) >> [deliver, all_clear]
        [deliver, all_clear] >> done
    return dag


def _read_settings(params: dict[str, Any]):
    from airflow_dockerhub.alerts import Thresholds
    from airflow_dockerhub.settings import MonitorSettings, parse_namespaces, parse_positive_number

    def setting(param: str, variable: str) -> tuple[Any, str]:
        if params.get(param) not in (None, ""):
            return params[param], f"the {param} param"
        return Variable.get(variable, default=None), f"the {variable} variable"

    namespaces = parse_namespaces(*setting("namespaces", NAMESPACES_VARIABLE))
    thresholds = Thresholds(
        queued_minutes=parse_positive_number(
            *setting("queued_threshold_minutes", QUEUED_THRESHOLD_VARIABLE), 60
        ),
        building_minutes=parse_positive_number(
            *setting("building_threshold_minutes", BUILDING_THRESHOLD_VARIABLE), 120
        ),
        max_age_hours=parse_positive_number(*setting("max_build_age_hours", MAX_BUILD_AGE_VARIABLE), 24),
    )
    return MonitorSettings(namespaces=namespaces, thresholds=thresholds)


def _read_record():
    from airflow_dockerhub.ledger import AlertRecord

    raw = Variable.get(ALERT_RECORD_VARIABLE, default=None)
    try:
        stored = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    except ValueError:
        raise ValueError(
            f"The {ALERT_RECORD_VARIABLE} variable is not JSON; delete it to start a new record"
        ) from None
    return AlertRecord.from_stored(stored, f"the {ALERT_RECORD_VARIABLE} variable")
