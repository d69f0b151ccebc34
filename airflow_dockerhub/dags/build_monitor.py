"""The Docker Hub build monitor (every five minutes unless configured otherwise), as a DAG factory."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.configuration import conf
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TriggerRule, Variable, task

from airflow_dockerhub.operators.webhook import DockerHubWebhookOperator
from airflow_dockerhub.settings import (
    BUILD_TRIGGERS_VARIABLE,
    BUILDING_THRESHOLD_VARIABLE,
    DOCKERHUB_CONN_ID,
    FRESHNESS_RULES_VARIABLE,
    HEARTBEAT_CONN_ID,
    INCIDENT_THRESHOLD_VARIABLE,
    LOGIN_BLOCK_VARIABLE,
    MAX_BUILD_AGE_VARIABLE,
    MONITOR_RUN_TIMEOUT,
    NAMESPACES_VARIABLE,
    NOTIFY_CONN_ID,
    NOTIFY_TARGETS_VARIABLE,
    QUEUED_THRESHOLD_VARIABLE,
    REMINDER_INTERVAL_VARIABLE,
    RETRY_CONFIRM_VARIABLE,
    RETRY_LIMIT_VARIABLE,
    RETRY_WINDOW_VARIABLE,
    UNREADABLE_CYCLES_VARIABLE,
    parse_schedule,
    planned_cycle_seconds,
)

DAG_ID = "dockerhub_build_monitor"
#: Stands for "as ``[dockerhub] monitor_schedule`` says", since ``None`` already means no schedule.
CONFIGURED_SCHEDULE = object()

DOC = """
Polls the build history of every automated repository in the namespaces of the
`dockerhub_namespaces` variable and sends a webhook, shaped like Docker Hub's own push
webhook, for every build that failed, was cancelled, sits queued too long or runs too long.
Each alert is delivered once: the record of delivered alerts is the variable
`dockerhub_alert_record`; delete it to start over. Tags named in `dockerhub_freshness_rules`
are checked for recent pushes in the same cycle, whatever builds them.
"""


def _number_param(description: str) -> Param:
    return Param(None, type=["null", "number"], exclusiveMinimum=0, description=description)


def create_build_monitor_dag(
    dag_id: str = DAG_ID,
    dockerhub_conn_id: str = DOCKERHUB_CONN_ID,
    webhook_conn_id: str = NOTIFY_CONN_ID,
    schedule: Any = CONFIGURED_SCHEDULE,
    cycle_seconds: float | None = None,
) -> DAG:
    """
    Create the build monitor DAG.

    Nothing here reads a variable, a connection or the network: settings are read by the tasks.
    Delivery retries and the schedule come from the Airflow configuration (``[dockerhub]
    delivery_retries``, default 2, ``[dockerhub] delivery_retry_delay_seconds``, default 30, and
    ``[dockerhub] monitor_schedule``, default every five minutes), which needs no database.

    :param dag_id: the DAG id.
    :param dockerhub_conn_id: the Docker Hub connection.
    :param webhook_conn_id: the connection whose host is the notification URL.
    :param schedule: how often to poll; by default ``[dockerhub] monitor_schedule`` (the environment
        variable ``AIRFLOW__DOCKERHUB__MONITOR_SCHEDULE``), else every five minutes.
    :param cycle_seconds: the time between two scheduled runs: a cycle spends at most its share of
        Docker Hub's rate limit over this time, and reads for at most 80 % of it. By default the
        shortest gap between two runs of the schedule, or 300 seconds without one; never more than
        25 minutes, so that a run ends within its 30-minute timeout.
    :raise ValueError: naming the option, when the configured schedule is not a schedule.
    """
    delivery_retries = conf.getint("dockerhub", "delivery_retries", fallback=2)
    retry_delay = conf.getfloat("dockerhub", "delivery_retry_delay_seconds", fallback=30.0)
    if schedule is CONFIGURED_SCHEDULE:
        schedule = parse_schedule(conf.get("dockerhub", "monitor_schedule", fallback=None))
    # The gap between runs is worked out by the fetch task, not here: stepping a cron expression
    # through a day of runs costs tens of milliseconds, and every parse of this file would pay them.
    cron = schedule if isinstance(schedule, str) else None

    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=MONITOR_RUN_TIMEOUT,
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
            "test_alert_repository": Param(
                None,
                type=["null", "string"],
                description="namespace/repository[:tag]: send a made-up failure of it to every target, "
                "marked as a test, instead of this cycle's alerts; nothing is recorded.",
            ),
            "dry_run": Param(
                False,
                type="boolean",
                description="Evaluate and log what would be sent, but send and record nothing.",
            ),
        },
    ) as dag:
        # The snapshot and the alerts are long; the steps log their own summaries instead.
        @task(show_return_value_in_logs=False, multiple_outputs=False)
        def fetch_build_history(params: dict[str, Any] | None = None) -> dict[str, Any]:
            """Read the newest builds of every automated repository."""
            import logging

            import pendulum

            from airflow_dockerhub.alerts import due_alerts
            from airflow_dockerhub.builds import BuildState
            from airflow_dockerhub.freshness import parse_rules, rules_to_xcom
            from airflow_dockerhub.hooks.dockerhub import DockerHubHook
            from airflow_dockerhub.monitor import summary_table
            from airflow_dockerhub.record_store import load_poll_state, load_record, save_poll_state

            settings = _read_settings(params or {}, webhook_conn_id)
            rules = parse_rules(
                Variable.get(FRESHNESS_RULES_VARIABLE, default=None),
                f"The {FRESHNESS_RULES_VARIABLE} variable",
            )
            hook = DockerHubHook(dockerhub_conn_id=dockerhub_conn_id)
            poll_state = load_poll_state()
            seconds = planned_cycle_seconds(cron, cycle_seconds)
            snapshot = _fetch_guarding_the_login(
                hook, settings.namespaces, poll_state, settings.thresholds.max_age_hours, seconds, rules
            )
            # Evaluation judges the same rules, also when nothing could be read.
            snapshot.freshness_rules = rules_to_xcom(rules)
            if snapshot.login_worked:
                save_poll_state(poll_state)
            now = pendulum.now("UTC")
            due = due_alerts(snapshot.builds, now, settings.thresholds)

            # Evaluation needs the builds that may alert, and the newest build of tags the record
            # knows (to resolve them); a big namespace's successes would only weigh down the XCom.
            tracked = {(entry["repository"], entry["tag"]) for entry in load_record().entries.values()}
            snapshot.keep_only(
                lambda build: build.state is not BuildState.SUCCESS or (build.repo_name, build.tag) in tracked
            )
            logging.getLogger(__name__).info(
                "Docker Hub namespaces %s:\n%s",
                ", ".join(settings.namespaces) or f"none (only the tags of {FRESHNESS_RULES_VARIABLE})",
                summary_table(snapshot, len(due), now),
            )
            return snapshot.to_xcom()

        @task(show_return_value_in_logs=False)
        def evaluate(
            snapshot: dict[str, Any], params: dict[str, Any] | None = None, run_id: str | None = None, ti=None
        ) -> list[dict[str, Any]]:
            """
            Decide what this cycle sends to which target, and shape each message in its format.

            The messages are the return value, which delivery maps over; the rest of the plan, which
            only the record step needs, travels as the ``plan`` XCom.
            """
            import dataclasses
            import logging

            import pendulum

            from airflow_dockerhub.hooks.webhook import WebhookHook
            from airflow_dockerhub.monitor import CyclePlan, Snapshot, plan_cycle, plan_test_alert

            params = params or {}
            settings = _read_settings(params, webhook_conn_id)
            targets = [WebhookHook(webhook_conn_id=conn_id).target_settings for conn_id in settings.targets]
            now = pendulum.now("UTC")
            log = logging.getLogger(__name__)

            record, health = _recover_previous_run(ti, now, settings)
            if params.get("test_alert_repository"):
                plan = plan_test_alert(params["test_alert_repository"], now, run_id or "manual", targets)
                log.info("Sending a test alert for %s", params["test_alert_repository"])
            else:
                plan = plan_cycle(
                    Snapshot.from_xcom(snapshot), record, now, settings, targets, _read_triggers(), health
                )
                log.info(
                    "%s alerts due, %s delivered to every target before; %s messages to send, %s rebuilds",
                    len(plan.alerts),
                    plan.already_delivered,
                    len(plan.deliveries),
                    len(plan.rebuilds),
                )
            for delivery in plan.deliveries:
                log.info("To send: %s (%s)", delivery["label"], delivery["event"])
            for rebuild in plan.rebuilds:
                log.info(
                    "To rebuild: %s:%s (build %s failed)",
                    rebuild["repository"],
                    rebuild["tag"],
                    rebuild["build"],
                )
            for event_id, outcome in plan.retry_outcomes.items():
                entry = record.entries.get(event_id, {})
                log.info(
                    "Rebuild of %s:%s %s", entry.get("repository", event_id), entry.get("tag", ""), outcome
                )

            if params.get("dry_run"):
                log.info("Dry run: nothing is sent and nothing is recorded")
                plan = CyclePlan()
            rest = dataclasses.asdict(plan)
            deliveries = rest.pop("deliveries")
            ti.xcom_push(key="plan", value=rest)
            return deliveries

        @task.branch
        def anything_to_do(deliveries: list[dict[str, Any]], ti=None) -> list[str]:
            """Go to delivery and to rebuilds when there is something to deliver or rebuild."""
            branches = ["deliver_alert"] if deliveries else []
            if ti.xcom_pull(task_ids="evaluate", key="plan")["rebuilds"]:
                branches.append("rebuilds_to_request")
            return branches or ["all_clear"]

        @task
        def rebuilds_to_request(ti=None) -> list[dict[str, Any]]:
            """Hand the planned rebuilds to the rebuild requests, one each."""
            return ti.xcom_pull(task_ids="evaluate", key="plan")["rebuilds"]

        @task(map_index_template="{{ rebuild_label }}", multiple_outputs=False)
        def request_rebuild(rebuild: dict[str, Any]) -> dict[str, Any]:
            """Ask Docker Hub to rebuild one failed tag; whether it did is read in later cycles."""
            import logging

            import pendulum
            from airflow.sdk import get_current_context

            from airflow_dockerhub.build_triggers import find_trigger
            from airflow_dockerhub.exceptions import DockerHubError
            from airflow_dockerhub.hooks.dockerhub import DockerHubHook

            get_current_context()["rebuild_label"] = f"{rebuild['repository']}:{rebuild['tag']}"
            trigger = find_trigger(_read_triggers(), rebuild["repository"], rebuild["tag"])
            if trigger is None:
                raise ValueError(
                    f"The {BUILD_TRIGGERS_VARIABLE} variable has no trigger for {rebuild['repository']}"
                )
            requested_at = pendulum.now("UTC")
            try:
                status = (
                    DockerHubHook(dockerhub_conn_id=dockerhub_conn_id)
                    .trigger_build(trigger, rebuild["tag"])
                    .status_code
                )
            except DockerHubError as error:
                # Counted as an attempt all the same: a trigger that never answers must not be called
                # again every cycle. With no new build it is reported as not honored.
                logging.getLogger(__name__).warning("No answer from the build trigger: %s", error)
                status = 0
            return {
                "retry_id": rebuild["retry_id"],
                "status_code": status,
                "requested_at": requested_at.isoformat(),
            }

        # Retried when the worker dies or the record cannot be saved; "work left undone" is final.
        @task(
            trigger_rule=TriggerRule.ALL_DONE,
            retries=2,
            retry_delay=timedelta(seconds=10),
            multiple_outputs=False,
        )
        def record_deliveries(
            deliveries: list[dict[str, Any]],
            snapshot: dict[str, Any],
            params: dict[str, Any] | None = None,
            ti=None,
        ) -> dict[str, Any]:
            """Add what was delivered to the record; fail the run if anything was left undone."""
            import logging

            import pendulum
            from airflow.sdk.exceptions import AirflowFailException

            from airflow_dockerhub.health import MonitorHealth
            from airflow_dockerhub.monitor import CyclePlan, apply_results
            from airflow_dockerhub.record_store import load_record, save_health, update_record

            if deliveries is None:
                # This step runs even when an earlier one failed, so that delivered alerts are always
                # recorded. Failing here too keeps the run red: Airflow judges a run by its last steps.
                raise AirflowFailException("Nothing to record: an earlier step failed before planning")
            cycle = CyclePlan(deliveries=deliveries, **ti.xcom_pull(task_ids="evaluate", key="plan"))
            settings = _read_settings(params or {}, webhook_conn_id)
            results = ti.xcom_pull(task_ids=["deliver_alert"]) if cycle.deliveries else []
            rebuilds = ti.xcom_pull(task_ids=["request_rebuild"]) if cycle.rebuilds else []
            now = pendulum.now("UTC")
            health = MonitorHealth.from_stored(cycle.health, "the plan") if cycle.health is not None else None
            outcome: dict[str, Any] = {}

            def note_results(ledger) -> None:
                # Called again to check the save stuck; the first call tells what was new.
                applied = apply_results(
                    ledger,
                    cycle,
                    results,
                    now,
                    timedelta(hours=settings.thresholds.max_age_hours),
                    rebuilds,
                    health,
                )
                outcome.setdefault("applied", applied)

            # A dry run or a test alert leaves the record as it was, pruning included.
            if (params or {}).get("dry_run") or (params or {}).get("test_alert_repository"):
                note_results(load_record())
            else:
                update_record(note_results)
                if health is not None:
                    save_health(health)
            # Tells the next run that this one's deliveries are in the record (see _recover_previous_run).
            ti.xcom_push(key="record_saved", value=True)
            added, _, undelivered = outcome["applied"]
            logging.getLogger(__name__).info(
                "Recorded %s newly delivered alerts; %s messages not delivered", added, len(undelivered)
            )

            answered = {r["retry_id"] for r in rebuilds if r}
            problems = [
                f"refused for good ({d['refused']}), not sent again: {d['label']} ({d['event']})"
                if d.get("refused")
                else f"not delivered: {d['label']} ({d['event']})"
                for d in undelivered
            ]
            problems += [
                f"rebuild not requested: {r['repository']}:{r['tag']}"
                for r in cycle.rebuilds
                if r["retry_id"] not in answered
            ]
            problems += [f"not read: {error}" for error in snapshot.get("errors", [])]
            if snapshot.get("login_rejected"):
                problems.append(f"nothing read: {snapshot['login_rejected']['reason']}")
            if problems:
                raise AirflowFailException(
                    "This cycle left work undone; the next run tries again:\n" + "\n".join(problems)
                )
            _heartbeat()
            return {"recorded": added}

        snapshot = fetch_build_history()
        deliveries = evaluate(snapshot)
        deliver = RecordedWebhookOperator.partial(
            task_id="deliver_alert",
            webhook_conn_id=webhook_conn_id,
            retries=delivery_retries,
            retry_delay=timedelta(seconds=retry_delay),
            map_index_template="{{ task.alert['label'] }}",
        ).expand(alert=deliveries)
        to_request = rebuilds_to_request()
        rebuild = request_rebuild.expand(rebuild=to_request)
        all_clear = EmptyOperator(task_id="all_clear")
        done = record_deliveries(deliveries, snapshot)

        anything_to_do(deliveries) >> [deliver, to_request, all_clear]
        [deliver, rebuild, all_clear] >> done
    return dag


def _read_settings(params: dict[str, Any], default_target: str = NOTIFY_CONN_ID):
    from airflow_dockerhub.alerts import Thresholds
    from airflow_dockerhub.health import DEFAULT_UNREADABLE_CYCLES
    from airflow_dockerhub.retries import RetryPolicy
    from airflow_dockerhub.settings import (
        DEFAULT_INCIDENT_THRESHOLD,
        MonitorSettings,
        parse_conn_ids,
        parse_count,
        parse_namespaces,
        parse_non_negative_number,
        parse_positive_number,
    )

    def setting(param: str | None, variable: str) -> tuple[Any, str]:
        if param and params.get(param) not in (None, ""):
            return params[param], f"the {param} param"
        return Variable.get(variable, default=None), f"the {variable} variable"

    thresholds = Thresholds(
        queued_minutes=parse_positive_number(
            *setting("queued_threshold_minutes", QUEUED_THRESHOLD_VARIABLE), 60
        ),
        building_minutes=parse_positive_number(
            *setting("building_threshold_minutes", BUILDING_THRESHOLD_VARIABLE), 120
        ),
        max_age_hours=parse_positive_number(*setting("max_build_age_hours", MAX_BUILD_AGE_VARIABLE), 24),
    )
    namespaces, where = setting("namespaces", NAMESPACES_VARIABLE)
    # With freshness rules and no namespace, the monitor watches publication alone: after automated
    # builds are retired that is all there is to watch, and listing namespaces would cost requests.
    freshness_only = namespaces in (None, "") and Variable.get(
        FRESHNESS_RULES_VARIABLE, default=None
    ) not in (None, "", "[]")
    return MonitorSettings(
        namespaces=() if freshness_only else parse_namespaces(namespaces, where),
        thresholds=thresholds,
        targets=parse_conn_ids(*setting(None, NOTIFY_TARGETS_VARIABLE), default_target),
        reminder_hours=parse_non_negative_number(*setting(None, REMINDER_INTERVAL_VARIABLE), 0),
        retry_policy=RetryPolicy(
            limit=parse_count(*setting(None, RETRY_LIMIT_VARIABLE), 1),
            window_hours=parse_positive_number(*setting(None, RETRY_WINDOW_VARIABLE), 24),
            confirm_minutes=parse_positive_number(*setting(None, RETRY_CONFIRM_VARIABLE), 30),
        ),
        incident_threshold=parse_count(
            *setting(None, INCIDENT_THRESHOLD_VARIABLE), DEFAULT_INCIDENT_THRESHOLD
        ),
        unreadable_cycles=parse_count(*setting(None, UNREADABLE_CYCLES_VARIABLE), DEFAULT_UNREADABLE_CYCLES),
    )


def _fetch_guarding_the_login(hook, namespaces, poll_state, max_age_hours, cycle_seconds, rules=()):
    """Fetch, unless these credentials were rejected lately; a rejection blocks them for a while."""
    import logging

    import pendulum

    from airflow_dockerhub.exceptions import DockerHubLoginError
    from airflow_dockerhub.http_settings import read_concurrency
    from airflow_dockerhub.login_guard import block, blocked_message
    from airflow_dockerhub.monitor import Snapshot, fetch_snapshot

    log = logging.getLogger(__name__)

    login, secret = hook.connection.login, hook.connection.password
    now = pendulum.now("UTC")
    if login and secret:
        stored = Variable.get(LOGIN_BLOCK_VARIABLE, default=None, deserialize_json=True)
        message = blocked_message(stored, login, secret, now, LOGIN_BLOCK_VARIABLE)
        if message:
            log.error("%s", message)
            rejection = stored.get("reason") if isinstance(stored, dict) else None
            return Snapshot(
                login_rejected={"docker_id": login, "reason": message, "error": rejection or message}
            )
    try:
        return fetch_snapshot(
            hook,
            namespaces,
            poll_state,
            now=now,
            max_age=timedelta(hours=max_age_hours),
            concurrency=read_concurrency(),
            cycle_seconds=cycle_seconds,
            freshness=rules,
        )
    except DockerHubLoginError as error:
        Variable.set(LOGIN_BLOCK_VARIABLE, block(login, secret, now, str(error)), serialize_json=True)
        reason = f"{error}. No login is tried again for an hour, or until the connection's credentials change"
        log.error("%s", reason)
        # Nothing is read, and the run fails at its end; the targets are told once, by evaluation.
        return Snapshot(login_rejected={"docker_id": login or "", "reason": reason, "error": str(error)})


def _heartbeat() -> None:
    """Call the heartbeat connection, when there is one, to say this cycle was healthy."""
    import logging

    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airflow_dockerhub.exceptions import WebhookDeliveryError
    from airflow_dockerhub.hooks.webhook import WebhookHook

    log = logging.getLogger(__name__)
    try:
        Connection.get(HEARTBEAT_CONN_ID)
    except AirflowNotFoundException:
        log.debug("No %s connection: no heartbeat", HEARTBEAT_CONN_ID)
        return
    try:
        WebhookHook(webhook_conn_id=HEARTBEAT_CONN_ID).ping()
    except WebhookDeliveryError as error:
        # The heartbeat's silence is the signal; failing the cycle over it would add nothing.
        log.warning("Heartbeat not delivered: %s", error)


def _read_triggers():
    from airflow.sdk.log import mask_secret

    from airflow_dockerhub.build_triggers import parse_trigger_table

    table = parse_trigger_table(
        Variable.get(BUILD_TRIGGERS_VARIABLE, default=None), f"The {BUILD_TRIGGERS_VARIABLE} variable"
    )
    for trigger in table.values():
        mask_secret(trigger.url)
    return table


class RecordedWebhookOperator(DockerHubWebhookOperator):
    """
    Deliver one of the monitor's messages, unless the record says its target already has it.

    A delivery cleared in the UI after its run was recorded, or planned by a run that overlapped
    another which delivered the same notices, would otherwise send them a second time.
    """

    def execute(self, context):
        """Deliver the message, unless the alert record shows its target has it already."""
        from airflow_dockerhub.monitor import delivered_before
        from airflow_dockerhub.record_store import load_health, load_record

        plan = context["ti"].xcom_pull(task_ids="evaluate", key="plan") or {}
        if delivered_before(load_record(), load_health(), self.alert, plan.get("notices") or {}):
            self.log.info("Not sent: the alert record says %s has it already", self.hook.webhook_conn_id)
            return {
                "event_id": self.alert["event_id"],
                "target": self.hook.webhook_conn_id,
                "status_code": None,
            }
        return super().execute(context)


def _recover_previous_run(ti, now, settings):
    """
    Load the record and the monitor's health, with what the previous run delivered added.

    When a worker dies after a delivery was answered but before the record step saved it, and the
    record step's retries are spent too, the answer still sits in that run's XCom: it is applied
    here, so nothing that run delivered is sent twice. A previous run that did record is left alone,
    so that deleting the record still starts over.
    """
    import logging

    from airflow_dockerhub.health import MonitorHealth
    from airflow_dockerhub.monitor import CyclePlan, apply_results
    from airflow_dockerhub.record_store import load_health, load_record, update_record

    log = logging.getLogger(__name__)

    health = load_health()
    previous = ti.get_previous_dagrun() if ti is not None else None
    recorded = previous and ti.xcom_pull(
        task_ids="record_deliveries", key="record_saved", run_id=previous.run_id
    )
    rest = ti.xcom_pull(task_ids="evaluate", key="plan", run_id=previous.run_id) if previous else None
    deliveries = ti.xcom_pull(task_ids="evaluate", run_id=previous.run_id) if rest else None
    if recorded or not rest or deliveries is None:
        return load_record(), health
    log.warning("The previous run %s did not record its deliveries; recording them now", previous.run_id)

    cycle = CyclePlan(deliveries=deliveries, **rest)
    results = ti.xcom_pull(task_ids=["deliver_alert"], run_id=previous.run_id) if cycle.deliveries else []
    rebuilds = ti.xcom_pull(task_ids=["request_rebuild"], run_id=previous.run_id) if cycle.rebuilds else []
    before = (
        MonitorHealth.from_stored(cycle.health, "the previous plan") if cycle.health is not None else None
    )
    max_age = timedelta(hours=settings.thresholds.max_age_hours)
    record = update_record(lambda r: apply_results(r, cycle, results, now, max_age, rebuilds, before))
    if before is None:
        return record, health
    # The previous plan's view is at least as new as the stored one; marks stored since are kept.
    before.add_marks(health)
    return record, before
