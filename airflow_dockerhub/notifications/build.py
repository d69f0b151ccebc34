"""Notifier that sends the monitor's notice about a build from any DAG's callbacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_dockerhub.alerts import Alert, AlertKind
from airflow_dockerhub.builds import Build, BuildState
from airflow_dockerhub.exceptions import WebhookDeliveryError
from airflow_dockerhub.notices import RESOLVED_EVENT, Notice
from airflow_dockerhub.settings import DOCKERHUB_CONN_ID, NOTIFY_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_dockerhub.ledger import AlertRecord

log = logging.getLogger(__name__)

#: The alert a build's state raises when a DAG asks: the DAG has decided that it waited long enough.
ALERT_FOR_STATE = {
    BuildState.FAILED: AlertKind.FAILED,
    BuildState.CANCELLED: AlertKind.CANCELLED,
    BuildState.QUEUED: AlertKind.QUEUED_TOO_LONG,
    BuildState.BUILDING: AlertKind.BUILDING_TOO_LONG,
}


class DockerHubBuildNotifier(BaseNotifier):
    """
    Send the monitor's alert about the newest build of a repository and tag, from any DAG.

    Meant for ``on_failure_callback`` (or any other callback) of a DAG that waits for or depends on a
    Docker Hub build: it reads the newest build of the tag, and when that build failed, was cancelled,
    or is still queued or running, sends the same notice the build monitor would, in each target's
    format. It goes through the same alert record, so a target that already has the alert, from the
    monitor or from another callback, does not get it again, and the monitor will not repeat it. A
    build that succeeded sends nothing.

    .. code-block:: python

        deploy = BashOperator(
            task_id="deploy",
            bash_command="...",
            on_failure_callback=DockerHubBuildNotifier(repository="my-org/api", tag="latest"),
        )

    :param repository: ``namespace/repository``.
    :param tag: the Docker tag.
    :param targets: connection ids to notify, each in its own format.
    :param dockerhub_conn_id: the Docker Hub connection.
    """

    template_fields: Sequence[str] = ("repository", "tag")

    def __init__(
        self,
        *,
        repository: str,
        tag: str = "latest",
        targets: Sequence[str] = (NOTIFY_CONN_ID,),
        dockerhub_conn_id: str = DOCKERHUB_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repository = repository
        self.tag = tag
        self.targets = tuple(targets)
        self.dockerhub_conn_id = dockerhub_conn_id

    def notify(self, context: Context) -> None:
        notify_build_outcome(self.repository, self.tag, self.targets, self.dockerhub_conn_id)


def notify_build_outcome(
    repository: str,
    tag: str,
    targets: Sequence[str] = (NOTIFY_CONN_ID,),
    dockerhub_conn_id: str = DOCKERHUB_CONN_ID,
    resolve: bool = False,
) -> int:
    """
    Tell the targets what became of the newest build of a tag, through the monitor's alert record.

    A build that failed, was cancelled or is still waiting raises its alert at each target that does
    not have it yet. With ``resolve``, a build that succeeded sends the resolved notice of every alert
    of the tag a target got and was not yet told is over; without alerts before, a success sends
    nothing.

    :param repository: ``namespace/repository``.
    :param tag: the Docker tag.
    :param targets: connection ids to notify, each in its own format.
    :param dockerhub_conn_id: the Docker Hub connection.
    :param resolve: whether a success resolves earlier alerts of the tag.
    :return: how many messages were delivered.
    :raise WebhookDeliveryError: after recording what was delivered, when a target refused.
    """
    from airflow_dockerhub.hooks.dockerhub import DockerHubHook
    from airflow_dockerhub.record_store import load_record, save_record

    namespace, _, name = repository.partition("/")
    if not namespace or not name:
        raise ValueError(f"repository must be namespace/repository, got {repository!r}")
    build = DockerHubHook(dockerhub_conn_id=dockerhub_conn_id).latest_build(namespace, name, tag=tag)
    record = load_record()
    now = datetime.now(timezone.utc)

    notices = _notices(build, record, resolve)
    if not notices:
        log.info("Nothing to tell about %s:%s: %s", repository, tag, _describe(build))
        return 0
    sent, failure = 0, None
    for conn_id in targets:
        try:
            sent += _deliver(conn_id, notices, record, now)
        except WebhookDeliveryError as error:
            failure = failure or error
    save_record(record)
    if failure is not None:
        raise failure
    return sent


def _notices(build: Build | None, record: AlertRecord, resolve: bool) -> list[tuple[Notice, dict[str, Any]]]:
    """Pair each notice with the alert it is about, as the record keeps alerts."""
    from airflow_dockerhub.monitor import alert_summary

    if build is None:
        return []
    if build.state in ALERT_FOR_STATE:
        alert = Alert(ALERT_FOR_STATE[build.state], build)
        return [(Notice.for_alert(alert), alert_summary(alert))]
    if resolve and build.state is BuildState.SUCCESS:
        return [
            (Notice.resolved(event_id, build), entry)
            for event_id, entry in record.entries.items()
            if (entry["repository"], entry["tag"]) == (build.repo_name, build.tag)
        ]
    return []


def _deliver(
    conn_id: str, notices: Sequence[tuple[Notice, dict[str, Any]]], record: AlertRecord, now: datetime
) -> int:
    from airflow_dockerhub.formats import render
    from airflow_dockerhub.hooks.webhook import WebhookHook

    hook = WebhookHook(webhook_conn_id=conn_id)
    sent = 0
    for notice, alert in notices:
        resolved = notice.event == RESOLVED_EVENT
        entry = record.entries.get(notice.alert_id, {})
        if resolved:
            if conn_id not in entry.get("delivered", {}) or conn_id in entry.get("resolved", {}):
                continue
            if not hook.target_settings.send_resolved:
                continue
        elif record.was_delivered(notice.alert_id, conn_id):
            log.info("%s already has %s about %s", conn_id, notice.event, notice.build.repo_name)
            continue
        for message in render(hook.target_settings.message_format, [notice], now):
            hook.deliver(message.body, message.event, message.message_id)
        if resolved:
            record.mark_resolved(notice.alert_id, now)
            record.mark_resolved_delivered(notice.alert_id, conn_id, now)
        else:
            record.mark_delivered(alert, conn_id, now)
        sent += 1
    return sent


def _describe(build: Build | None) -> str:
    return "no build found" if build is None else f"build {build.build_key} is {build.state.value}"


send_dockerhub_build_notification = DockerHubBuildNotifier
