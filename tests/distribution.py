"""Build the package's distributions and install the wheel into a virtual environment of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run(args, *, timeout, **kwargs) -> subprocess.CompletedProcess:
    """Run a command to its end and fail the test, showing the ends of its output, when it fails."""
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


def build_distributions(out: Path, *, wheel_only: bool = False) -> None:
    """
    Build the sdist and the wheel made from it into ``out``, or only the wheel.

    Building the wheel from the sdist is what a packaging check wants; a suite that only installs
    the wheel can skip the detour.
    """
    only = ["--wheel"] if wheel_only else []
    run([sys.executable, "-m", "build", *only, "--outdir", str(out), str(PROJECT)], timeout=600)


def clean_environment(venv: Path, airflow_home: Path) -> dict[str, str]:
    """
    Return this process's environment without its Airflow, Python and virtual environment settings.

    Commands run with it find ``venv`` first on the path and keep their Airflow state in
    ``airflow_home``, so nothing of the test session's own Airflow leaks into them.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "__PYVENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["AIRFLOW_HOME"] = str(airflow_home)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def install_wheel(
    venv: Path, wheel: Path, *, env: dict[str, str], cwd: Path, extra: tuple[str, ...] = ()
) -> Path:
    """
    Make ``venv`` and install the wheel into it with pip alone, with Airflow at this session's release.

    Pinning Airflow to the release this suite runs with makes each CI leg check its own release.

    :param extra: further requirements, such as a database driver.
    :return: the environment's Python.
    """
    run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    python = venv / "bin" / "python"
    airflow = f"apache-airflow=={metadata.version('apache-airflow')}"
    run([python, "-m", "pip", "install", str(wheel), airflow, *extra], timeout=900, env=env, cwd=cwd)
    return python
