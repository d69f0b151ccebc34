"""
The end-to-end deployments: the wheel installed into a fresh virtual environment, and Airflow 3 run
from it against SQLite and then against PostgreSQL, each started once for every test that uses it.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests.distribution import PROJECT, build_distributions, clean_environment, install_wheel
from tests.e2e.deployment import Deployment
from tests.e2e.postgres import PostgresCluster, find_server_binaries
from tests.e2e.processes import ProcessGroup

#: Where screenshots and the logs of each deployment are left for a person to look at (git-ignored).
ARTIFACTS = PROJECT / "test-artifacts"
#: Task instances LocalExecutor runs at once: SQLite takes one writer at a time, PostgreSQL many.
PARALLELISM = {"sqlite": 2, "postgresql": 8}


@pytest.fixture(scope="session")
def airflow_venv(tmp_path_factory) -> Path:
    """Build the wheel and install it, with Airflow and its PostgreSQL drivers, into a fresh environment."""
    root = tmp_path_factory.mktemp("e2e-venv")
    build_distributions(root / "dist", wheel_only=True)
    [wheel] = (root / "dist").glob("*.whl")
    venv = root / "venv"
    work = root / "work"  # away from the checkout, so nothing of the source tree can be imported
    work.mkdir()
    install_wheel(
        venv,
        wheel,
        env=clean_environment(venv, root / "home"),
        cwd=work,
        extra=("psycopg2-binary", "asyncpg"),
    )
    return venv


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session", autouse=True)
def stop_on_sigterm():
    """
    Treat SIGTERM (a CI job's timeout, ``timeout``) like Ctrl-C, so the deployments are torn down.

    Python's default SIGTERM ends the process at once, leaving Airflow and PostgreSQL running.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session", params=sorted(PARALLELISM, reverse=True))
def deployment(request, airflow_venv, tmp_path_factory):
    """Run one deployment per metadata database; every process it started is stopped afterwards."""
    database = request.param
    home = tmp_path_factory.mktemp(f"e2e-{database}")
    logs = ARTIFACTS / "logs" / database
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    processes = ProcessGroup(logs)
    # PostgreSQL refuses to run as root, and pytest's temporary folders are root's alone.
    cluster_folder = Path(tempfile.mkdtemp(prefix="airflow-dockerhub-e2e-pg-"))
    try:
        database_url = None
        if database == "postgresql":
            binaries = find_server_binaries()
            if binaries is None:
                pytest.fail("PostgreSQL's server is not installed: apt-get install postgresql (.ci/run does)")
            cluster = PostgresCluster(binaries, cluster_folder, processes)
            cluster.start()
            database_url = cluster.url
        running = Deployment(
            airflow_venv,
            home,
            processes,
            database=database,
            database_url=database_url,
            parallelism=PARALLELISM[database],
        )
        running.start()
        yield running
    finally:
        processes.stop_all()
        shutil.rmtree(cluster_folder, ignore_errors=True)
