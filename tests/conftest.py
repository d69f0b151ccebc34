"""Shared test set-up: an isolated Airflow home, made before anything imports Airflow."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Airflow reads its home and settings when first imported, so they are fixed here, before any test
# module imports it. Each test session gets its own home and SQLite metadata database.
_HOME = Path(tempfile.mkdtemp(prefix="airflow-dockerhub-tests-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DOCKERHUB__DELIVERY_RETRIES"] = "0"
os.environ["AIRFLOW__DOCKERHUB__HTTP_BACKOFF_SECONDS"] = "0.05"
# A record save is checked again this long after; the default, 2 s, would add up over hundreds of runs.
os.environ["AIRFLOW__DOCKERHUB__RECORD_SETTLE_SECONDS"] = "0.05"
for name in list(os.environ):
    if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
        del os.environ[name]


def load_fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fixture_json():
    return load_fixture


@pytest.fixture(scope="session")
def airflow_db():
    """Create the session's metadata database, once."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


@pytest.fixture
def load_test_dags(monkeypatch, airflow_db, tmp_path_factory):
    """
    Return a function that loads DAGs written by a test from a bundle of their own.

    dag.test() only runs a DAG that a bundle holds, and a DAG file in the project's dags folder would
    ship with it; a second local bundle, listed first so it is found first, keeps it in the test.
    """

    def load(name: str, source: str):
        folder = tmp_path_factory.mktemp(name)
        (folder / f"{name}.py").write_text(source)
        local = "airflow.dag_processing.bundles.local.LocalDagBundle"
        bundles = [
            {"name": name, "classpath": local, "kwargs": {"path": str(folder)}},
            {"name": "dags-folder", "classpath": local, "kwargs": {}},
        ]
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(folder))
        assert bag.import_errors == {}
        return bag.dags

    return load
