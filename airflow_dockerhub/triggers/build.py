"""Trigger that waits, in the triggerer, until a Docker Hub build reaches a final state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_dockerhub.builds import parse_timestamp
from airflow_dockerhub.exceptions import DockerHubError, DockerHubLoginError, DockerHubNotFoundError
from airflow_dockerhub.hooks.dockerhub import DockerHubHook

if TYPE_CHECKING:
    from airflow_dockerhub.builds import Build


def split_repository(repository: str) -> tuple[str, str]:
    """
    Split ``namespace/name`` into the namespace and the repository name.

    :param repository: the repository as written in the DAG.
    :raise ValueError: when it is not one namespace and one name separated by a slash.
    """
    namespace, slash, name = str(repository).strip().partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise ValueError(f"repository must be written namespace/name, got {repository!r}")
    return namespace, name


def describe_target(repository: str, tag: str | None = None, build_code: str | None = None) -> str:
    """
    Name the build being waited for, the way log lines and errors print it.

    :param repository: ``namespace/name``.
    :param tag: the Docker tag, if only one tag counts.
    :param build_code: the build code, if only one build counts.
    """
    target = f"{repository}:{tag}" if tag else repository
    return f"build {build_code} of {target}" if build_code else f"latest build of {target}"


def build_summary(build: Build) -> dict[str, Any]:
    """
    Describe a build in plain JSON values, as the sensor returns it and the trigger's event carries it.

    :param build: the build read from Docker Hub.
    """
    return {
        "repository": build.repo_name,
        "namespace": build.namespace,
        "name": build.repository,
        "tag": build.tag,
        "build_code": build.build_key,
        "state": build.state.value,
        "created": build.created.isoformat() if build.created else None,
        "last_updated": build.last_updated.isoformat() if build.last_updated else None,
        "build": dict(build.raw),
    }


class DockerHubBuildTrigger(BaseTrigger):
    """
    Read a repository's build history until the build waited for reaches a final state.

    Exactly one event is fired: ``{"status": "success" | "failed" | "cancelled", "build": <summary>}``
    (see :func:`build_summary`), or ``{"status": "error", "message": ...}`` when Docker Hub rejects the
    connection's login or does not know the repository. Other Docker Hub errors are taken as passing and read through at the next poll.
    The trigger only reads, so the triggerer may run it more than once without harm.

    :param repository: ``namespace/name``.
    :param tag: only builds of this Docker tag count.
    :param build_code: only the build with this code counts.
    :param created_after: ISO 8601 moment; only builds created at or after it count.
    :param dockerhub_conn_id: the Docker Hub connection.
    :param poke_interval: seconds between two reads of the build history.
    """

    def __init__(
        self,
        repository: str,
        tag: str | None = None,
        build_code: str | None = None,
        dockerhub_conn_id: str = DockerHubHook.default_conn_name,
        poke_interval: float = 60.0,
        created_after: str | None = None,
    ) -> None:
        super().__init__()
        self.repository = repository
        self.tag = tag
        self.build_code = build_code
        self.created_after = created_after
        self.dockerhub_conn_id = dockerhub_conn_id
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the plain values the triggerer rebuilds this trigger from."""
        return (
            "airflow_dockerhub.triggers.build.DockerHubBuildTrigger",
            {
                "repository": self.repository,
                "tag": self.tag,
                "build_code": self.build_code,
                "created_after": self.created_after,
                "dockerhub_conn_id": self.dockerhub_conn_id,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll Docker Hub until the build is final, then yield its one event."""
        namespace, name = split_repository(self.repository)
        target = describe_target(self.repository, self.tag, self.build_code)
        connection = await BaseHook.aget_connection(self.dockerhub_conn_id)
        hook = DockerHubHook(self.dockerhub_conn_id, connection=connection)

        while True:
            try:
                # requests blocks; in a thread it leaves the event loop free for the other triggers.
                build = await asyncio.to_thread(
                    hook.latest_build,
                    namespace,
                    name,
                    tag=self.tag,
                    build_code=self.build_code,
                    created_after=parse_timestamp(self.created_after),
                )
            except (DockerHubLoginError, DockerHubNotFoundError) as error:
                # Neither goes away by polling: a rejected login only gets closer to locking the account.
                yield TriggerEvent({"status": "error", "message": str(error)})
                return
            except DockerHubError as error:
                self.log.warning("Could not read the %s, reading again later: %s", target, error)
            else:
                if build is not None and build.state.is_final:
                    self.log.info(
                        "The %s (%s) reached the final state %s", target, build.build_key, build.state.value
                    )
                    yield TriggerEvent({"status": build.state.value, "build": build_summary(build)})
                    return
                self.log.info("The %s is %s", target, build.state.value if build else "not there yet")

            await asyncio.sleep(self.poke_interval)
