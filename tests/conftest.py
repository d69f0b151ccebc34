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
for name in list(os.environ):
    if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
        del os.environ[name]


def load_fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fixture_json():
    return load_fixture
