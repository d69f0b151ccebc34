"""Operator that sends the webhook Docker Hub does not send for failed and stuck builds."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_dockerhub.exceptions import WebhookDeliveryError
from airflow_dockerhub.settings import NOTIFY_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_dockerhub.hooks.webhook import WebhookHook

REQUIRED_FIELDS = ("event_id", "event", "payload")


class DockerHubWebhookOperator(BaseOperator):
    """
    Deliver one build alert (or another notice) as a webhook.

    The alert is a dictionary as the build monitor's evaluation step hands it out: ``event_id`` (stable
    for the same message), ``event`` (``build.failed``, ``build.cancelled``, ``build.queued_too_long``,
    ``build.building_too_long``, ``build.resolved``, ``build.reminder``, ``build.test`` or
    ``build.grouped``), ``payload`` (the JSON body, already in the target's format), and optionally
    ``target`` (the connection to send to, instead of ``webhook_conn_id``) and ``test``; other keys
    describe the alert for people and are ignored here. A receiver answering 5xx, 408 or 429, or not at
    all, fails the task and the alert stays undelivered, to be sent again; any other 4xx is a refusal
    that another attempt cannot change, returned with ``"refused": true`` so it is reported once.

    .. code-block:: python

        DockerHubWebhookOperator.partial(task_id="deliver_alert").expand(alert=evaluate_output)

    :param alert: the alert to deliver.
    :param webhook_conn_id: the connection whose host holds the notification URL.
    """

    # The alert is not templated: build fields come from Docker Hub and must not be read as Jinja.
    template_fields: Sequence[str] = ("webhook_conn_id",)
    ui_color = "#e3f1fc"

    def __init__(
        self, *, alert: dict[str, Any], webhook_conn_id: str = NOTIFY_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.alert = alert
        self.webhook_conn_id = webhook_conn_id

    @cached_property
    def hook(self) -> WebhookHook:
        """The hook of the alert's own ``target``, else of ``webhook_conn_id``."""
        # Imported here: DAG files import this operator, and parsing them must stay quick.
        from airflow_dockerhub.hooks.webhook import WebhookHook

        return WebhookHook(webhook_conn_id=self.alert.get("target") or self.webhook_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Post the alert; a refusal that another attempt cannot change is returned, not raised."""
        missing = [name for name in REQUIRED_FIELDS if not self.alert.get(name)]
        if missing:
            raise ValueError(f"The alert handed to {self.task_id} lacks {', '.join(missing)}")

        try:
            status = self.hook.deliver(
                self.alert["payload"],
                self.alert["event"],
                self.alert["event_id"],
                test=bool(self.alert.get("test")),
            )
        except WebhookDeliveryError as error:
            if not _refused_for_good(error.status_code):
                raise
            # Sending it again would get the same answer: the record notes the refusal, and the run
            # reports it once, instead of failing every cycle from now on.
            self.log.error("Refused for good, not sent again: %s", error)
            return {
                "event_id": self.alert["event_id"],
                "target": self.hook.webhook_conn_id,
                "status_code": error.status_code,
                "refused": True,
            }
        return {
            "event_id": self.alert["event_id"],
            "target": self.hook.webhook_conn_id,
            "status_code": status,
        }


def _refused_for_good(status_code: int | None) -> bool:
    """Tell whether an answer is a refusal that another attempt cannot change: a 4xx but 408 and 429."""
    return status_code is not None and 400 <= status_code < 500 and status_code not in (408, 429)
