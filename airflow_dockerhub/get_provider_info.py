"""What Airflow learns about this provider through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_dockerhub import __version__

#: How the ``dockerhub`` connection form names its fields, in the words Docker Hub uses.
CONNECTION_FORM: dict[str, Any] = {
    "hidden_fields": ["schema", "port"],
    "relabeling": {
        "host": "API URL",
        "login": "Docker ID",
        "password": "Personal or organization access token",
    },
    "placeholders": {
        "host": "https://hub.docker.com",
        "login": "Docker ID or organization name (leave empty for public repositories)",
        "password": "dckr_pat_... or dckr_oat_...",
        "extra": '{"timeout": [10, 30], "verify": true}',
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider, its hook and its connection form to Airflow."""
    return {
        "package-name": "airflow-provider-dockerhub",
        "name": "Docker Hub",
        "description": "Watch Docker Hub automated builds and send the webhook Docker Hub does not send "
        "when a build fails or hangs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Docker Hub",
                "external-doc-url": "https://docs.docker.com/docker-hub/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Docker Hub",
                "python-modules": ["airflow_dockerhub.hooks.dockerhub", "airflow_dockerhub.hooks.webhook"],
            }
        ],
        "operators": [
            {
                "integration-name": "Docker Hub",
                "python-modules": [
                    "airflow_dockerhub.operators.webhook",
                    "airflow_dockerhub.operators.build_trigger",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Docker Hub", "python-modules": ["airflow_dockerhub.sensors.build"]}
        ],
        "triggers": [
            {"integration-name": "Docker Hub", "python-modules": ["airflow_dockerhub.triggers.build"]}
        ],
        "notifications": ["airflow_dockerhub.notifications.build.DockerHubBuildNotifier"],
        "connection-types": [
            {
                "connection-type": "dockerhub",
                "hook-class-name": "airflow_dockerhub.hooks.dockerhub.DockerHubHook",
                "hook-name": "Docker Hub",
                "ui-field-behaviour": {
                    key.replace("_", "-"): value for key, value in CONNECTION_FORM.items()
                },
            }
        ],
    }
