"""Airflow provider that watches Docker Hub automated builds and alerts on failed and stuck ones."""

from __future__ import annotations

__version__ = "0.2.0"
