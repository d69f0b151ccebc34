"""Airflow DAG file for the hand-started Docker Hub rebuild; the DAG itself lives in the installed package."""

from __future__ import annotations

from airflow_dockerhub.dags.rebuild import create_rebuild_dag

dag = create_rebuild_dag()
