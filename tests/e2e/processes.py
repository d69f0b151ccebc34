"""Start the processes of an end-to-end deployment in process groups of their own, and stop them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: How long a process gets to stop after SIGTERM before its whole group is killed.
STOP_GRACE_SECONDS = 20


def free_port() -> int:
    """Return a loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    """
    Poll ``condition`` until it returns something true, and return that.

    :raise AssertionError: naming ``what`` and the last error, when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            outcome = condition()
        except Exception as error:  # noqa: BLE001 - a service that is still starting may fail in any way
            last_error = error
        else:
            if outcome:
                return outcome
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; last error: {last_error!r}"
            )
        time.sleep(interval)


class ProcessGroup:
    """
    The long-running processes of one deployment, each logging to a file of its own.

    Every process starts in a new session, so stopping it stops whatever it started too (Airflow's
    components fork workers and supervisors).
    """

    def __init__(self, log_folder: Path) -> None:
        self.log_folder = log_folder
        self.processes: dict[str, subprocess.Popen] = {}

    def start(
        self, name: str, args: list[str], *, env: dict[str, str], cwd: Path, user: str | None = None
    ) -> None:
        """Start ``args`` as ``name``, as ``user`` when given (by ``runuser``, for a root test run)."""
        if user is not None:
            args = ["runuser", "-u", user, "--", *args]
        log = (self.log_folder / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def log(self, name: str) -> str:
        """Return what ``name`` wrote so far."""
        return (self.log_folder / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        """Fail naming any process that ended, with the end of its log."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited {process.returncode}:\n{self.log(name)[-3000:]}")

    def stop(self, name: str) -> None:
        """Stop one process and everything it started: SIGTERM to its group, SIGKILL when it lingers."""
        process = self.processes.pop(name)
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        # Children may outlive a leader that exited; the group id is the leader's pid.
        _signal_group(process, signal.SIGKILL)
        process.wait(STOP_GRACE_SECONDS)

    def stop_all(self) -> None:
        """Stop every process, the latest started first."""
        for name in reversed(list(self.processes)):
            self.stop(name)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
