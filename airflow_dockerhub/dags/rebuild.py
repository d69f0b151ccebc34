"""The hand-started Docker Hub rebuild, as a DAG factory: rebuild a tag, wait for it, tell the outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.configuration import conf
from airflow.sdk import DAG, Param, TriggerRule, task

from airflow_dockerhub.operators.build_trigger import DockerHubBuildTriggerOperator
from airflow_dockerhub.sensors.build import DockerHubBuildSensor
from airflow_dockerhub.settings import DOCKERHUB_CONN_ID, NOTIFY_CONN_ID

DAG_ID = "dockerhub_rebuild"

#: Docker Hub cancels a build after four hours; half an hour more covers the time it waits in queue.
BUILD_TIMEOUT = timedelta(hours=4, minutes=30)

DOC = """
Rebuilds one tag of a Docker Hub repository through its remote build trigger (from the
`dockerhub_build_trigger_secrets` variable), waits in the triggerer for the new build to finish,
and tells the targets of `dockerhub_notify_targets` the outcome: the failure alert if the build
failed, or the resolved notice of earlier alerts of the tag if it succeeded.
"""


def create_rebuild_dag(dag_id: str = DAG_ID, dockerhub_conn_id: str = DOCKERHUB_CONN_ID) -> DAG:
    """
    Create the rebuild DAG, started by hand with the params ``repository`` and ``tag``.

    The sensor's poll interval comes from the Airflow configuration
    (``[dockerhub] rebuild_poke_interval_seconds``, default 60), which needs no database.

    :param dag_id: the DAG id.
    :param dockerhub_conn_id: the Docker Hub connection.
    """
    poke_interval = conf.getfloat("dockerhub", "rebuild_poke_interval_seconds", fallback=60.0)

    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        doc_md=DOC,
        tags=["dockerhub"],
        params={
            "repository": Param(
                type="string",
                pattern=r"^[^/\s]+/[^/\s]+$",
                description="The repository to rebuild, as namespace/repository.",
            ),
            "tag": Param("latest", type="string", minLength=1, description="The Docker tag to rebuild."),
        },
    ) as dag:
        requested = DockerHubBuildTriggerOperator(
            task_id="trigger_build",
            repository="{{ params.repository }}",
            tag="{{ params.tag }}",
            dockerhub_conn_id=dockerhub_conn_id,
        )
        waited = DockerHubBuildSensor(
            task_id="wait_for_build",
            repository="{{ params.repository }}",
            tag="{{ params.tag }}",
            created_after="{{ ti.xcom_pull(task_ids='trigger_build')['requested_at'] }}",
            dockerhub_conn_id=dockerhub_conn_id,
            deferrable=True,
            poke_interval=poke_interval,
            timeout=BUILD_TIMEOUT.total_seconds(),
        )

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def notify_outcome(params: dict[str, Any] | None = None, ti=None) -> dict[str, Any]:
            """Tell every target how the rebuild ended; fail the run when it did not succeed."""
            from airflow.sdk import Variable
            from airflow.sdk.exceptions import AirflowFailException

            from airflow_dockerhub.notifications.build import notify_build_outcome
            from airflow_dockerhub.settings import NOTIFY_TARGETS_VARIABLE, parse_conn_ids

            targets = parse_conn_ids(
                Variable.get(NOTIFY_TARGETS_VARIABLE, default=None),
                f"the {NOTIFY_TARGETS_VARIABLE} variable",
                NOTIFY_CONN_ID,
            )
            build = ti.xcom_pull(task_ids="wait_for_build")
            if ti.xcom_pull(task_ids="trigger_build") is None:
                raise AirflowFailException(
                    f"No rebuild of {params['repository']}:{params['tag']} was requested"
                )
            sent = notify_build_outcome(
                params["repository"], params["tag"], targets, dockerhub_conn_id, resolve=True
            )
            if build is None:
                raise AirflowFailException(
                    f"The rebuild of {params['repository']}:{params['tag']} did not succeed; {sent} notices sent"
                )
            return {"build_code": build["build_code"], "state": build["state"], "notices": sent}

        requested >> waited >> notify_outcome()
    return dag
