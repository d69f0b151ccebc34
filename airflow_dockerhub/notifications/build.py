"""Notifier that sends the monitor's notice about a build from any DAG's callbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from airflow_dockerhub.alerts import Alert, AlertKind
from airflow_dockerhub.builds import Build, BuildState
from airflow_dockerhub.freshness import TAG_KINDS
from airflow_dockerhub.notices import Notice
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
        """Tell the targets about the tag's newest build, through the alert record."""
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
    :raise Exception: the first target's failure, after recording what the others got.
    """
    from airflow_dockerhub.hooks.dockerhub import DockerHubHook
    from airflow_dockerhub.record_store import load_record, update_record

    namespace, _, name = repository.partition("/")
    if not namespace or not name:
        raise ValueError(f"repository must be namespace/repository, got {repository!r}")
    build = DockerHubHook(dockerhub_conn_id=dockerhub_conn_id).latest_build(namespace, name, tag=tag)
    now = datetime.now(timezone.utc)
    if build is None or _too_old(build, now):
        log.info("Nothing to tell about %s:%s: %s", repository, tag, _describe(build))
        return 0

    record = load_record()
    marks: list[Callable[[AlertRecord], object]] = []
    failure = None
    for conn_id in targets:
        # One target's trouble must not cost the others their record of what they already got.
        try:
            marks += _tell(conn_id, build, record, now, resolve)
        except Exception as error:  # noqa: BLE001 - raised again once the record is saved
            log.error("Could not notify %s about %s:%s: %s", conn_id, repository, tag, error)
            failure = failure or error
    # The monitor may save the record meanwhile; the marks are merged into what it saved.
    update_record(lambda stored: [mark(stored) for mark in marks])
    sent = len(marks)
    if failure is not None:
        raise failure
    if not sent:
        log.info("Nothing new to tell about %s:%s: %s", repository, tag, _describe(build))
    return sent


def _tell(
    conn_id: str, build: Build, record: AlertRecord, now: datetime, resolve: bool
) -> list[Callable[[AlertRecord], object]]:
    """Send one target what it has not been told about the build; return how to note it in a record."""
    from airflow_dockerhub.formats import render
    from airflow_dockerhub.hooks.webhook import WebhookHook
    from airflow_dockerhub.monitor import alert_summary, resolved_notices

    hook = WebhookHook(webhook_conn_id=conn_id)
    settings = hook.target_settings
    if build.state in ALERT_FOR_STATE:
        alert = Alert(ALERT_FOR_STATE[build.state], build)
        if record.was_delivered(alert.event_id, conn_id):
            return []
        for message in render(settings.message_format, [Notice.for_alert(alert)], now):
            hook.deliver(message.body, message.event, message.message_id)
        summary = alert_summary(alert)
        return [lambda stored: stored.mark_delivered(summary, conn_id, now)]

    if not (resolve and settings.send_resolved and build.state is BuildState.SUCCESS):
        return []
    successes = {
        event_id: build
        for event_id, entry in record.entries.items()
        if (entry.get("repository"), entry.get("tag")) == (build.repo_name, build.tag)
        and entry.get("kind") not in TAG_KINDS
    }
    notices = resolved_notices(successes, record, conn_id)
    for message in render(settings.message_format, notices, now):
        hook.deliver(message.body, message.event, message.message_id)

    def note_resolved(stored: AlertRecord, alert_ids: tuple[str, ...]) -> None:
        for alert_id in alert_ids:
            stored.mark_resolved(alert_id, now)
            stored.mark_resolved_delivered(alert_id, conn_id, now)

    return [lambda stored, ids=notice.alert_ids: note_resolved(stored, ids) for notice in notices]


def _too_old(build: Build, now: datetime) -> bool:
    """Apply the monitor's window, so an old failure is not announced again after the record forgot it."""
    from airflow.sdk import Variable

    from airflow_dockerhub.settings import MAX_BUILD_AGE_VARIABLE, parse_positive_number

    hours = parse_positive_number(
        Variable.get(MAX_BUILD_AGE_VARIABLE, default=None), f"the {MAX_BUILD_AGE_VARIABLE} variable", 24
    )
    updated = build.last_updated or build.created
    return updated is None or now - updated > timedelta(hours=hours)


def _describe(build: Build | None) -> str:
    return "no build found" if build is None else f"build {build.build_key} is {build.state.value}"


send_dockerhub_build_notification = DockerHubBuildNotifier
