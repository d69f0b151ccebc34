"""A throwaway PostgreSQL cluster on a loopback port, for Airflow's metadata database."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from tests.distribution import run
from tests.e2e.processes import ProcessGroup, free_port, wait_until

#: The account the server runs as when the tests run as root, which PostgreSQL refuses.
SERVER_USER = "postgres"


def find_server_binaries() -> Path | None:
    """Return the folder of the server binaries the tests use, or ``None`` when there is none."""
    found = shutil.which("initdb")
    candidates = [Path(os.path.realpath(found)).parent] if found else []
    # Debian's packages keep the server binaries off the path, one folder per major version.
    candidates += [Path(folder) for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "postgres", "pg_isready", "createdb")):
            return folder
    return None


class PostgresCluster:
    """
    Make a cluster in ``folder``, start it on a free loopback port and make a database ``airflow``.

    Only password logins over TCP on 127.0.0.1 are accepted; no Unix socket is made.
    """

    def __init__(self, binaries: Path, folder: Path, processes: ProcessGroup) -> None:
        self.binaries = binaries
        self.folder = folder
        self.processes = processes
        self.port = free_port()
        self.user = "airflow"
        self.password = secrets.token_urlsafe(16)
        self.run_as = SERVER_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of the ``airflow`` database."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/airflow"

    def start(self) -> None:
        """Make the cluster, start its server and wait until it takes logins, then make the database."""
        data = self.folder / "data"
        password_file = self.folder / "password"
        password_file.write_text(self.password)
        if self.run_as is not None:
            account = pwd.getpwnam(self.run_as)
            for path in (self.folder, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        run(
            [
                *prefix,
                self.binaries / "initdb",
                "--pgdata",
                data,
                "--username",
                self.user,
                "--pwfile",
                password_file,
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
            timeout=180,
        )
        password_file.unlink()
        server = [
            self.binaries / "postgres",
            "-D",
            data,
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            # Throwaway data: durability only costs time on a shared machine.
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        self.processes.start(
            "postgres", [str(arg) for arg in server], env=dict(os.environ), cwd=self.folder, user=self.run_as
        )
        wait_until(self._ready, timeout=60, what=f"PostgreSQL on 127.0.0.1:{self.port}")
        env = dict(os.environ, PGPASSWORD=self.password)
        run(
            [self.binaries / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "airflow"],
            timeout=60,
            env=env,
        )

    def _ready(self) -> bool:
        self.processes.check_alive()
        args = [self.binaries / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        return subprocess.run(args, capture_output=True, check=False, timeout=30).returncode == 0
