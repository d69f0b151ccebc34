"""Running the build monitor DAG in tests, and reading what it left in the metadata database."""

from __future__ import annotations

import json

from airflow_dockerhub.settings import (
    ALERT_RECORD_VARIABLE,
    HEALTH_VARIABLE,
    LOGIN_BLOCK_VARIABLE,
    POLL_STATE_VARIABLE,
)

DAG_ID = "dockerhub_build_monitor"


def reset_record():
    from airflow.models import Variable

    Variable.delete(ALERT_RECORD_VARIABLE)
    Variable.delete(LOGIN_BLOCK_VARIABLE)
    Variable.delete(HEALTH_VARIABLE)
    Variable.delete(POLL_STATE_VARIABLE)


def stored_record():
    from airflow.models import Variable

    return json.loads(Variable.get(ALERT_RECORD_VARIABLE, default_var="{}"))


def database_text():
    """Dump every row of the metadata database, to look for secrets that must not be stored."""
    from airflow import settings
    from sqlalchemy import inspect, text

    rows = []
    with settings.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows.extend(repr(row) for row in connection.execute(text(f'SELECT * FROM "{table}"')))
    return "\n".join(rows)


def run_monitor(**conf):
    return load_monitor_dag().test(run_conf=conf or None)


def load_monitor_dag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2 keeps it among the models
        from airflow.models.dagbag import DagBag

    bag = DagBag()
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]
