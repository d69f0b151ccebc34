"""The benchmark script, in its quick form: its figures are complete and the ones that cannot vary hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"
POLLERS = {"monitor", "sequential-first-page", "sequential-all"}
SETTINGS = {"latency", "rate-limited"}


@pytest.fixture(scope="module")
def report():
    # A process of its own, as the script starts processes and servers of its own; no connection or
    # variable of the caller's environment may reach it.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_quick_run_measures_every_poller_in_both_settings_at_100_repositories(report):
    assert {"machine", "parse", "results", "targets"} <= report.keys()
    assert {"date", "platform", "cpus", "python", "airflow"} <= report["machine"].keys()
    results = report["results"]
    assert {(r["setting"], r["poller"]) for r in results} == {(s, p) for s in SETTINGS for p in POLLERS}
    for result in results:
        assert result["measured"] is True
        assert result["size"] == 100
        assert result["cycles_run"] == 2
        assert len(result["rows"]) == 2
        assert result["requests"] > 0
        assert all(row["requests"] > 0 for row in result["rows"])
        assert result["peak_rss_kib"] > 0
        assert result["first_cycle_seconds"] > 0
        assert result["floor_seconds"] > 0


def test_the_monitor_gets_no_429_under_the_rate_limit(report):
    monitor = next(
        r for r in report["results"] if r["setting"] == "rate-limited" and r["poller"] == "monitor"
    )

    assert monitor["rate_limited"] == 0
    assert monitor["concurrency"] >= 1
    target = next(t for t in report["targets"] if "zero 429s" in t["target"])
    assert target["met"] is True


def test_injected_failures_are_detected_by_the_monitor(report):
    for result in (r for r in report["results"] if r["poller"] == "monitor"):
        assert result["injected"] > 0
        assert result["detected"] == result["injected"]
        # Repositories with a queued build are read in the first cycle and fail before the second.
        assert result["active_injected"] > 0
        assert result["active_detected"] == result["active_injected"]
        assert result["latency_p95"] is not None
        assert result["errors"] == 0


def test_parse_time_is_a_positive_number_and_every_target_has_a_verdict(report):
    parse = report["parse"]
    assert parse["dag_beyond_airflow_ms"] > 0
    assert parse["airflow_import_ms"] > 0
    assert parse["dag_beyond_airflow_cpu_ms"] > 0
    assert report["targets"]
    for target in report["targets"]:
        assert target["met"] in (True, False, None)
        assert target["detail"]
