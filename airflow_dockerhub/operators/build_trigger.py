"""Operator that asks Docker Hub to rebuild one tag through a repository's remote build trigger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.log import mask_secret

from airflow_dockerhub.build_triggers import BuildTrigger, find_trigger, parse_trigger_table
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.settings import BUILD_TRIGGERS_VARIABLE

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_TRIGGERS_VARIABLE = BUILD_TRIGGERS_VARIABLE


class DockerHubBuildTriggerOperator(BaseOperator):
    """
    Rebuild one tag of a repository by calling its Docker Hub remote build trigger.

    The trigger URL is the only credential a rebuild needs, so it is kept out of templates, logs, errors
    and the returned value. It is best kept in the Airflow Variable ``triggers_variable``, a JSON object
    from ``namespace/repository`` (or ``namespace/repository:tag``, which wins) to the trigger URL, or
    to ``{"url": ..., "source_type": "Branch", "source_name": "main"}`` when the rebuild must name the
    source rather than the Docker tag.

    Docker Hub answering 2xx only means the request was accepted. A 4xx (unknown or revoked trigger)
    fails the task without retries, since asking again cannot succeed; a 5xx or an unreachable Docker
    Hub fails it with the task's retries. The task returns ``repository``, ``tag``, ``status_code`` and
    ``requested_at`` (ISO 8601, UTC), never the URL.

    :param repository: ``namespace/name``.
    :param tag: the Docker tag to rebuild.
    :param trigger_url: the trigger URL; when omitted it is looked up in ``triggers_variable``.
    :param triggers_variable: the Airflow Variable holding the lookup table of trigger URLs.
    :param dockerhub_conn_id: the Docker Hub connection, for its timeout and TLS settings.
    """

    # trigger_url stays out: a rendered template field is stored and shown in the UI.
    template_fields: Sequence[str] = ("repository", "tag")
    ui_color = "#e3f1fc"

    def __init__(
        self,
        *,
        repository: str,
        tag: str,
        trigger_url: str | None = None,
        triggers_variable: str = DEFAULT_TRIGGERS_VARIABLE,
        dockerhub_conn_id: str = DockerHubHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repository = repository
        self.tag = tag
        self.trigger_url = trigger_url
        self.triggers_variable = triggers_variable
        self.dockerhub_conn_id = dockerhub_conn_id

    @cached_property
    def hook(self) -> DockerHubHook:
        """The Docker Hub hook whose connection sets the timeout and TLS settings."""
        return DockerHubHook(dockerhub_conn_id=self.dockerhub_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Call the build trigger and report what Docker Hub answered, never the URL."""
        if self.trigger_url is not None:
            mask_secret(self.trigger_url)
        trigger = self._find_trigger()
        mask_secret(trigger.url)

        target = f"{self.repository}:{self.tag}"
        requested_at = datetime.now(timezone.utc).isoformat()
        response = self.hook.trigger_build(trigger, self.tag)
        status = response.status_code

        if 200 <= status < 300:
            self.log.info("Docker Hub accepted the rebuild of %s (%s)", target, status)
            return {
                "repository": self.repository,
                "tag": self.tag,
                "status_code": status,
                "requested_at": requested_at,
            }
        if 400 <= status < 500:
            raise AirflowFailException(
                f"Docker Hub refused to rebuild {target} ({status}); the build trigger is unknown, revoked "
                "or not allowed to build this tag, so check the trigger URL rather than retrying"
            )
        raise AirflowException(f"Docker Hub answered {status} to the rebuild of {target}")

    def _find_trigger(self) -> BuildTrigger:
        if self.trigger_url is not None:
            # Reading it as a one-entry table checks the URL and the repository the same way as the variable.
            table = parse_trigger_table({self.repository: self.trigger_url}, f"trigger_url of {self.task_id}")
            return table[self.repository]

        table = parse_trigger_table(
            Variable.get(self.triggers_variable, default=None), f"the {self.triggers_variable} variable"
        )
        trigger = find_trigger(table, self.repository, self.tag)
        if trigger is None:
            raise ValueError(
                f"The {self.triggers_variable} variable has no build trigger for {self.repository} "
                f"(nor for {self.repository}:{self.tag}); add one there or pass trigger_url"
            )
        return trigger
