"""The identity the provider announces on the wire."""

from __future__ import annotations

from airflow_dockerhub import __version__

USER_AGENT = f"airflow-provider-dockerhub/{__version__}"
