"""Sensor that waits until a Docker Hub automated build has finished."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_dockerhub.builds import BuildState, parse_timestamp
from airflow_dockerhub.exceptions import DockerHubError, DockerHubLoginError, DockerHubNotFoundError
from airflow_dockerhub.hooks.dockerhub import DockerHubHook
from airflow_dockerhub.triggers.build import (
    DockerHubBuildTrigger,
    build_summary,
    describe_target,
    split_repository,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class DockerHubBuildSensor(BaseSensorOperator):
    """
    Wait until a Docker Hub automated build succeeds, and fail as soon as it fails or is cancelled.

    The build waited for is the newest one of the repository, the newest one of a tag, or the one with
    a given build code. On success the sensor returns the build summarised in plain JSON values:
    ``repository``, ``namespace``, ``name``, ``tag``, ``build_code``, ``state``, ``created``,
    ``last_updated`` and ``build`` (the fields as Docker Hub returned them).

    A failed or cancelled build fails the task without retries: poking again cannot change the outcome.
    A rejected login fails it the same way, since retried logins lock the Docker Hub account. Any other
    Docker Hub error counts as passing and the sensor pokes again.

    .. code-block:: python

        DockerHubBuildSensor(
            task_id="wait_for_build", repository="acme/app", tag="latest", poke_interval=120, mode="reschedule"
        )

    :param repository: ``namespace/name``.
    :param tag: only builds of this Docker tag count.
    :param build_code: only the build with this code counts.
    :param created_after: ISO 8601 moment; only builds created at or after it count, so a sensor placed
        after a rebuild request waits for the new build rather than reading the old failure.
    :param dockerhub_conn_id: the Docker Hub connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("repository", "tag", "build_code", "created_after")

    def __init__(
        self,
        *,
        repository: str,
        tag: str | None = None,
        build_code: str | None = None,
        created_after: str | None = None,
        dockerhub_conn_id: str = DockerHubHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repository = repository
        self.tag = tag
        self.build_code = build_code
        self.created_after = created_after
        self.dockerhub_conn_id = dockerhub_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> DockerHubHook:
        """The Docker Hub hook builds are read through."""
        return DockerHubHook(dockerhub_conn_id=self.dockerhub_conn_id)

    @property
    def target(self) -> str:
        """The build waited for, named the way log lines and errors print it."""
        return describe_target(self.repository, self.tag, self.build_code)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Read the build once; tell whether it succeeded, and raise if it ended any other way."""
        namespace, name = split_repository(self.repository)
        created_after = parse_timestamp(self.created_after)
        if self.created_after and created_after is None:
            raise AirflowFailException(
                f"created_after must be an ISO 8601 moment, got {self.created_after!r}"
            )
        try:
            build = self.hook.latest_build(
                namespace,
                name,
                tag=self.tag,
                build_code=self.build_code,
                created_after=created_after,
            )
        except DockerHubLoginError as error:
            raise AirflowFailException(str(error)) from error
        except DockerHubNotFoundError as error:
            raise AirflowFailException(f"Cannot read the {self.target}: {error}") from error
        except DockerHubError as error:
            self.log.warning("Could not read the %s, poking again later: %s", self.target, error)
            return False

        if build is None:
            self.log.info("The %s is not there yet", self.target)
            return False
        if not build.state.is_final:
            self.log.info("The %s (%s) is %s", self.target, build.build_key, build.state.value)
            return False

        summary = build_summary(build)
        if build.state is not BuildState.SUCCESS:
            raise AirflowFailException(_final_state_message(summary))
        self.log.info("The %s (%s) succeeded", self.target, build.build_key)
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def execute(self, context: Context) -> Any:
        """Poke once before deferring, if deferrable, so a finished build never waits in the triggerer."""
        if not self.deferrable:
            return super().execute(context)

        try:
            result = self.poke(context)
        except AirflowFailException as error:
            # The base class turns failures into skips for these flags; a first poke outside it must too.
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping: {error}") from error
            raise
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value

        self.defer(
            trigger=DockerHubBuildTrigger(
                repository=self.repository,
                tag=self.tag,
                build_code=self.build_code,
                created_after=self.created_after,
                dockerhub_conn_id=self.dockerhub_conn_id,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Finish the task with the trigger's event.

        :param context: the task context.
        :param event: the event of :class:`~airflow_dockerhub.triggers.build.DockerHubBuildTrigger`.
        :return: the build summary, when the build succeeded.
        """
        status = (event or {}).get("status")
        if status == BuildState.SUCCESS.value:
            self.log.info("The %s succeeded", self.target)
            return event["build"]
        if status in (BuildState.FAILED.value, BuildState.CANCELLED.value):
            raise AirflowFailException(_final_state_message(event["build"]))
        if status == "error":
            # A rejected login or an unknown repository does not change by retrying the task.
            raise AirflowFailException(event.get("message") or f"Waiting for the {self.target} failed")
        raise AirflowException(f"Waiting for the {self.target} ended with an unexpected event: {event!r}")


def _final_state_message(summary: dict[str, Any]) -> str:
    return (
        f"Docker Hub build {summary['build_code']} of {summary['repository']}, tag {summary['tag']}, "
        f"ended in state {summary['state']}"
    )
