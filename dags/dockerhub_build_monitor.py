"""Airflow DAG file for the Docker Hub build monitor; the DAG itself lives in the installed package."""

from __future__ import annotations

from airflow_dockerhub.dags.build_monitor import create_build_monitor_dag

dag = create_build_monitor_dag()
