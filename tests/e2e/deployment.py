"""One Airflow 3 deployment of the installed wheel, with the emulator and a receiver, all on loopback."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import requests

from airflow_dockerhub.emulator.demo import DEMO_NAMESPACE, DEMO_SECRET, DEMO_TRIGGER_TOKENS, DEMO_USER
from tests.distribution import clean_environment, run
from tests.e2e.airflow_api import AirflowApi, HubAdmin, Receiver
from tests.e2e.processes import ProcessGroup, free_port, wait_until

#: The four long-running Airflow 3 components, each started on its own as a deployment runs them.
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "e2e-admin"


class Deployment:
    """
    Start the emulator, then Airflow's components from ``venv``, configured the way an operator would.

    Connections and variables are given as ``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_*`` environment
    variables, as ``scripts/demo`` does; everything Airflow keeps lives under ``home``.

    :param database: ``sqlite`` or ``postgresql``, the name tests and artifacts know the deployment by.
    :param database_url: the metadata database; SQLite in ``home`` when ``None``.
    :param parallelism: task instances the LocalExecutor runs at once.
    """

    def __init__(
        self,
        venv: Path,
        home: Path,
        processes: ProcessGroup,
        *,
        database: str,
        database_url: str | None,
        parallelism: int,
    ) -> None:
        self.database = database
        self.venv = venv
        self.home = home
        self.processes = processes
        self.hub_url = f"http://127.0.0.1:{free_port()}"
        self.receiver_url = f"http://127.0.0.1:{free_port()}"
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.admin_password = secrets.token_urlsafe(16)
        self.receiver_user = "e2e-receiver"
        self.receiver_password = secrets.token_urlsafe(16)
        self.dags_folder = home / "dags"
        self.env = self._environment(database_url or f"sqlite:///{home / 'airflow.db'}", parallelism)
        self.hub = HubAdmin(self.hub_url)
        self.receiver = Receiver(self.receiver_url)
        self.api: AirflowApi | None = None

    def _environment(self, database_url: str, parallelism: int) -> dict[str, str]:
        env = clean_environment(self.venv, self.home)
        hub = self.hub_url
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: self.admin_password}))
        env.update(
            {
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                # Shared by every component, so tokens one signs the others accept.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                # New DAG files are seen in seconds rather than the default five minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DOCKERHUB__REBUILD_POKE_INTERVAL_SECONDS": "2",
                "AIRFLOW__DOCKERHUB__DELIVERY_RETRY_DELAY_SECONDS": "2",
                "AIRFLOW_CONN_DOCKERHUB_DEFAULT": json.dumps(
                    {
                        "conn_type": "dockerhub",
                        "host": self.hub_url,
                        "login": DEMO_USER,
                        "password": DEMO_SECRET,
                    }
                ),
                "AIRFLOW_CONN_DOCKERHUB_NOTIFY": json.dumps(
                    {
                        "conn_type": "generic",
                        "host": f"{self.receiver_url}/hooks/dockerhub",
                        "login": self.receiver_user,
                        "password": self.receiver_password,
                        # So a successful rebuild tells the receiver the alert of its tag is over.
                        "extra": {"send_resolved": True},
                    }
                ),
                "AIRFLOW_VAR_DOCKERHUB_NAMESPACES": DEMO_NAMESPACE,
                "AIRFLOW_VAR_DOCKERHUB_BUILD_TRIGGER_SECRETS": json.dumps(
                    {
                        f"{DEMO_NAMESPACE}/{name}": f"{hub}/u/{DEMO_NAMESPACE}/{name}/trigger/{token}/"
                        for name, token in DEMO_TRIGGER_TOKENS.items()
                    }
                ),
            }
        )
        return env

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` command of the deployment to its end and return its output."""
        return run(
            [self.venv / "bin" / "airflow", *args], timeout=timeout, env=self.env, cwd=self.home
        ).stdout

    def start(self) -> None:
        python = str(self.venv / "bin" / "python")
        hub_port, receiver_port = (url.rsplit(":", 1)[1] for url in (self.hub_url, self.receiver_url))
        self.processes.start(
            "emulator",
            [
                python,
                "-m",
                "airflow_dockerhub.emulator",
                "--port",
                hub_port,
                "--receiver-port",
                receiver_port,
                "--receiver-user",
                self.receiver_user,
                "--receiver-password",
                self.receiver_password,
            ],
            env=self.env,
            cwd=self.home,
        )
        run(
            [python, "-m", "airflow_dockerhub.bundled_dags", str(self.dags_folder)], timeout=120, env=self.env
        )
        self.airflow("db", "migrate", timeout=600)
        for component in COMPONENTS:
            self.processes.start(
                component, [str(self.venv / "bin" / "airflow"), component], env=self.env, cwd=self.home
            )

        wait_until(self._receiver_up, timeout=60, what="the emulator and its receiver")
        wait_until(self._api_up, timeout=240, what="Airflow's api-server")
        self.api = AirflowApi(self.url, ADMIN_USER, self.admin_password)
        wait_until(self._dags_parsed, timeout=240, what="the bundled DAGs in the api-server")

    def _receiver_up(self) -> bool:
        self.processes.check_alive()
        return bool(requests.get(f"{self.hub_url}/_emulator/settings", timeout=5).ok) and isinstance(
            self.receiver.received(), list
        )

    def _api_up(self) -> bool:
        self.processes.check_alive()
        health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=10)
        return health.ok

    def _dags_parsed(self) -> bool:
        self.processes.check_alive()
        dags = self.api.get("/dags", dag_id_pattern="dockerhub")["dags"]
        return {dag["dag_id"] for dag in dags} >= {"dockerhub_build_monitor", "dockerhub_rebuild"}

    def health(self) -> dict:
        """Return the api-server's view of the scheduler, triggerer and dag-processor."""
        return requests.get(f"{self.url}/api/v2/monitor/health", timeout=10).json()
