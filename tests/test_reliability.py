"""The reliability suite: whole monitor cycles through Docker Hub and receiver faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reliability.py"


def test_no_alert_is_lost_sent_twice_or_leaks_a_secret_through_any_fault(tmp_path):
    # A process of its own: the script captures its own output and logs at the file-descriptor level,
    # which pytest's capturing would otherwise intercept.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert figures["faults"] == 20
    assert figures["expected"] >= 25
    assert figures["lost"] == []
    assert figures["duplicated"] == []
    assert figures["leaked"] == []
    assert figures["delivered"] == figures["expected"]
