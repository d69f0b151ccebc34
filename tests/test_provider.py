from __future__ import annotations

import json
import os
import subprocess
import sys

from airflow_dockerhub import __version__
from airflow_dockerhub.get_provider_info import get_provider_info


def airflow_cli(*args):
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    return result.stdout


def test_airflow_lists_the_provider_with_its_version():
    providers = json.loads(airflow_cli("providers", "list", "--output", "json"))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-dockerhub"]
    assert ours and ours[0]["version"] == __version__


def test_the_dockerhub_connection_type_has_a_labelled_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hook = manager.hooks["dockerhub"]
    assert hook.hook_class_name == "airflow_dockerhub.hooks.dockerhub.DockerHubHook"
    assert hook.connection_id_attribute_name == "dockerhub_conn_id"

    behaviour = manager.field_behaviours["dockerhub"]
    relabeling = behaviour.get("relabeling")
    assert relabeling["login"] == "Docker ID"
    assert relabeling["password"] == "Personal or organization access token"
    assert relabeling["host"] == "API URL"
    assert behaviour["placeholders"]["host"] == "https://hub.docker.com"


def test_provider_info_names_the_distribution_exactly():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-dockerhub"
    [conn_type] = info["connection-types"]
    assert conn_type["connection-type"] == "dockerhub"
