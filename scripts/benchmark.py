"""
Benchmark one monitor fetch cycle at scale against the emulated Docker Hub, next to a plain sequential poller.

Run it with ``scripts/benchmark``. For 100, 1,000 and 5,000 automated repositories (10,000 with
``--with-10k``) and two settings (50 ms round trips; 50 ms round trips under Docker Hub's rate limit of
180 requests a minute), it runs several five-minute cycles of ``fetch_snapshot`` and of a sequential
poller like the original one, each in a process of its own so that its peak memory is its own. Failed
builds are injected between cycles, and a failure counts as detected in the first cycle whose result
holds it. Everything stays on 127.0.0.1.

The emulator's clock stands still and the benchmark moves it: five minutes before every cycle, and,
under the rate limit, by every wait of the monitor's pacer, which sleeps on that clock instead of the
real one. Waiting out Docker Hub's windows thus costs no wall time, while the windows, budgets and
sweeps are the ones a real five-minute schedule would meet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
DAG_FILE = PROJECT / "dags" / "dockerhub_build_monitor.py"

NAMESPACE = "bench"
#: The emulated round trip of every Docker Hub request.
ROUND_TRIP = 0.05
#: Docker Hub's rate limit on these API calls: 180 requests per 60-second window.
RATE_LIMIT = 180
RATE_WINDOW = 60.0
#: The monitor's schedule: one cycle every five minutes.
CYCLE_SECONDS = 300.0
#: The first cycle's simulated moment. In the past on purpose: a Retry-After epoch on the simulated clock
#: is then always behind the real clock, so urllib3 never sleeps on one for real.
START = datetime(2025, 1, 6, 12, 0, tzinfo=timezone.utc)
#: ``populate`` makes the newest build of every this-many-th repository fail.
FAILING_EVERY = 10

SIZES = (100, 1000, 5000)
BIG_SIZE = 10_000
#: Cycles per measurement; failures are injected before cycles 2 to CYCLES.
CYCLES = 6
QUICK_CYCLES = 2
#: Fewer cycles at 10,000 repositories, whose cycles take longest.
BIG_CYCLES = 4
#: A sequential poller reading every repository takes a minute a cycle at 1,000 repositories; it reads
#: all of them every cycle, so a few cycles say as much as six.
FULL_SEQUENTIAL_CYCLES = 3
#: The sequential poller reading every repository is measured up to this size unless asked to go on.
FULL_SEQUENTIAL_MAX = 5000
#: Above this size it takes over four minutes a cycle, and two cycles (the second one finding the
#: failures injected before it) say what it does.
FULL_SEQUENTIAL_LONG = 1000
FULL_SEQUENTIAL_LONG_CYCLES = 2
#: New failures per cycle in repositories without a build in progress...
FAILURES_PER_CYCLE = 8
#: ... and repositories with a build queued from the start, each failing once the poller has seen it.
ACTIVE_REPOSITORIES = 4
#: Cycles after the injections, at most, for the monitor to find what it has not found yet.
EXTRA_CYCLES = 80
#: The seed choosing which repositories fail, so every run and every poller meets the same failures.
SEED = 20250106
#: Repetitions of the DAG parse-time measurement; the median is reported.
PARSE_REPEATS = 5
#: Longest a measurement may take before it is given up.
CHILD_TIMEOUT = 3600
#: Longest one HTTP request of the benchmark itself may take.
HTTP_TIMEOUT = 30.0

MONITOR = "monitor"
SEQUENTIAL_FIRST_PAGE = "sequential-first-page"
SEQUENTIAL_ALL = "sequential-all"
POLLERS = (MONITOR, SEQUENTIAL_FIRST_PAGE, SEQUENTIAL_ALL)
NO_LIMIT = "latency"
RATE_LIMITED = "rate-limited"
SETTING_LABELS = {NO_LIMIT: "50 ms", RATE_LIMITED: "50 ms, 180/min"}
POLLER_LABELS = {MONITOR: "monitor", SEQUENTIAL_FIRST_PAGE: "seq, 1st page", SEQUENTIAL_ALL: "seq, all"}

# Docker Hub's legacy numeric statuses of a failed and of a queued build.
FAILED_STATUS = -1
QUEUED_STATUS = 0


# The fetching process


class Emulator:
    """
    Drive the emulated Docker Hub through its ``/_emulator/`` admin routes, which are neither counted nor paced.

    :param url: the emulator's base URL.
    """

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.session.request(
            method, f"{self.url}/_emulator/{path}", json=body, timeout=HTTP_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    def set_clock(self, moment: datetime) -> None:
        """Freeze the emulator's clock at ``moment``; an absolute moment keeps both sides in exact agreement."""
        self._call("POST", "clock", {"now": moment.isoformat()})

    def add_build(self, name: str, status: int, minutes_ago: float) -> dict[str, Any]:
        """Add a build of ``latest`` to a repository; return it as the history lists it."""
        return self._call(
            "POST",
            f"namespaces/{NAMESPACE}/repositories/{name}/builds",
            {"status": status, "created_minutes_ago": minutes_ago},
        )

    def stats(self) -> dict[str, int]:
        return self._call("GET", "stats")

    def reset_stats(self) -> None:
        self._call("DELETE", "stats")


class SimulatedClock:
    """
    The pacer's clock during one monitor cycle: the emulator's frozen time, moved forward by every wait.

    Only the pacer moves the emulator's clock during a cycle, so the copy kept here is exact and reading
    it costs no request. The pacer sleeps holding its lock, so two sleeps never overlap.

    :param emulator: the emulator whose clock this is.
    :param moment: the cycle's moment, where the emulator's clock stands now.
    """

    def __init__(self, emulator: Emulator, moment: datetime) -> None:
        self.emulator = emulator
        self.moment = moment

    def now(self) -> float:
        return self.moment.timestamp()

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=max(seconds, 0.0))
        self.emulator.set_clock(self.moment)


@dataclass
class CycleResult:
    """
    What one cycle of a poller saw.

    :param keys: build codes of every build it has read, to match injected failures against.
    :param end: the simulated moment the cycle ended at, which the next cycle may not start before.
    :param details: figures only this kind of poller has.
    """

    keys: set[str]
    end: datetime
    details: dict[str, Any] = field(default_factory=dict)


class MonitorPoller:
    """
    The monitor's fetch: a new hook every cycle, as each Airflow run makes one, and one carried poll state.

    :param emulator: the emulator, whose clock the pacer waits on.
    """

    def __init__(self, emulator: Emulator) -> None:
        from airflow_dockerhub.hooks.dockerhub import DockerHubHook
        from airflow_dockerhub.monitor import DEFAULT_CONCURRENCY
        from airflow_dockerhub.polling import PollState

        self.emulator = emulator
        self.concurrency = DEFAULT_CONCURRENCY
        self.poll_state = PollState()
        # Look the connection up and build a session once, without a request: what that loads (the
        # task SDK, the secrets backends, the configuration) is then in the size measured before fetching.
        warm = DockerHubHook(dockerhub_conn_id="dockerhub_default")
        warm.session.close()
        if warm.base_url != emulator.url:
            raise RuntimeError(f"The Docker Hub connection points at {warm.base_url}, not the emulator")

    def cycle(self, moment: datetime) -> CycleResult:
        from airflow_dockerhub.hooks.dockerhub import DockerHubHook
        from airflow_dockerhub.monitor import fetch_snapshot
        from airflow_dockerhub.pacing import Clock, RatePacer

        # The same simulated clock without a rate limit too: no header asks for a wait then, so it
        # never moves, and the only difference between the settings is the limit itself.
        clock = SimulatedClock(self.emulator, moment)
        pacer = RatePacer(reserve=self.concurrency + 2, clock=Clock(now=clock.now, sleep=clock.sleep))
        hook = DockerHubHook(dockerhub_conn_id="dockerhub_default", pacer=pacer)
        try:
            snapshot = fetch_snapshot(
                hook,
                [NAMESPACE],
                self.poll_state,
                now=moment,
                concurrency=self.concurrency,
                cycle_seconds=CYCLE_SECONDS,
            )
        finally:
            hook.session.close()
        return CycleResult(
            keys={build.build_key for build in snapshot.builds},
            end=clock.moment,
            details={
                "client_requests": snapshot.requests,
                "polled": snapshot.repositories_polled,
                "deferred": snapshot.repositories_deferred,
                "watched": snapshot.watched,
                "sweep_cycles": snapshot.sweep_cycles,
                # The longest a sweep can take however many repositories start failing, where the
                # monitor announces it.
                "sweep_bound": getattr(snapshot, "sweep_bound", None),
                "errors": len(snapshot.errors),
                "first_error": snapshot.errors[0] if snapshot.errors else None,
                "simulated_wait": pacer.waited,
            },
        )


class SequentialPoller:
    """
    A plain poller like the original: list, then read every history one after another, no pacing.

    It does not honour a 429 either: the answer is counted by the emulator and the repository goes
    unread. With no pacer of its own, its simulated time is the real time its requests take, so under
    the rate limit its requests fall into the windows they would fall into for real.

    :param emulator: the emulator, whose clock follows the poller's real time under the rate limit.
    :param every_page: follow ``next`` through the whole listing; the original read the first page only.
    :param follow_clock: move the emulator's clock with real time; only the rate limit looks at it.
    """

    #: Seconds of real time between two moves of the emulator's clock: the windows are a minute long.
    CLOCK_STEP = 1.0

    def __init__(self, emulator: Emulator, *, every_page: bool, follow_clock: bool) -> None:
        import requests

        self.emulator = emulator
        self.every_page = every_page
        self.follow_clock = follow_clock
        self.concurrency = 1
        self.session = requests.Session()

    def cycle(self, moment: datetime) -> CycleResult:
        started = last_move = time.monotonic()

        def keep_time() -> None:
            nonlocal last_move
            if self.follow_clock and time.monotonic() - last_move >= self.CLOCK_STEP:
                last_move = time.monotonic()
                self.emulator.set_clock(moment + timedelta(seconds=last_move - started))

        names: list[str] = []
        url: str | None = f"{self.emulator.url}/v2/repositories/{NAMESPACE}/?page_size=100"
        # Bounded by the largest namespace measured; the emulator never loops its links anyway.
        for _ in range(BIG_SIZE // 100 + 1):
            if url is None:
                break
            keep_time()
            response = self.session.get(url, timeout=HTTP_TIMEOUT)
            if response.status_code != 200:
                break
            page = response.json()
            # Every populated repository is automated, so the original's check would keep them all.
            names += [entry["name"] for entry in page["results"]]
            url = page.get("next") if self.every_page else None

        builds: list[dict[str, Any]] = []
        for name in names:
            keep_time()
            response = self.session.get(
                f"{self.emulator.url}/v2/repositories/{NAMESPACE}/{name}/buildhistory/?page_size=100",
                timeout=HTTP_TIMEOUT,
            )
            if response.status_code == 200:
                builds += response.json()["results"]
        end = moment + timedelta(seconds=time.monotonic() - started) if self.follow_clock else moment
        return CycleResult(
            keys={str(build.get("build_code")) for build in builds}, end=end, details={"listed": len(names)}
        )


def repository_name(index: int) -> str:
    # The names HubState.populate gives.
    return f"repo-{index:05d}"


def injection_plan(size: int, cycles: int) -> tuple[list[str], dict[int, list[str]]]:
    """
    Choose the repositories that get a build queued from the start, and the ones that fail before each cycle.

    Every measurement of a size uses the same plan, so all pollers meet the same failures.

    :param size: repositories in the namespace.
    :param cycles: the cycles of the measurement; failures go in before cycles 2 to ``cycles``.
    :return: the active repositories, and the repositories failing before each cycle.
    """

    def healthy(index: int) -> bool:
        return index % FAILING_EVERY != FAILING_EVERY - 1

    # Spread over the namespace, so that an active repository is not always among the first read.
    active_indexes = []
    for part in range(ACTIVE_REPOSITORIES):
        index = size * (2 * part + 1) // (2 * ACTIVE_REPOSITORIES)
        active_indexes.append(index if healthy(index) else index - 1)
    candidates = [i for i in range(size) if healthy(i) and i not in active_indexes]
    wanted = min(len(candidates), FAILURES_PER_CYCLE * max(cycles - 1, 0))
    chosen = random.Random(SEED + size).sample(candidates, wanted)
    per_cycle = {
        cycle: [
            repository_name(i) for i in sorted(chosen[k * FAILURES_PER_CYCLE : (k + 1) * FAILURES_PER_CYCLE])
        ]
        for k, cycle in enumerate(range(2, cycles + 1))
    }
    return [repository_name(i) for i in active_indexes], per_cycle


@dataclass
class Injected:
    """One failed build put into the emulator, and when the poller found it."""

    repository: str
    cycle: int
    active: bool
    #: What the monitor announced in the cycle before, which its log told the operator to expect:
    #: ``sweep_cycles`` and, where it has one, ``sweep_bound``.
    announced: dict[str, int | None]
    detected: int | None = None


class Detections:
    """
    Inject failures and note the cycle each one is found in.

    A repository counts as active once the poller has read its queued build: only then can the poller
    know that it must look again soon, so its failure goes in the cycle after that.

    :param emulator: where failures are injected.
    :param active: repositories given a queued build before the first cycle.
    :param planned: repositories failing before each cycle.
    """

    def __init__(self, emulator: Emulator, active: Sequence[str], planned: dict[int, list[str]]) -> None:
        self.emulator = emulator
        self.planned = planned
        self.queued: dict[str, str] = {}
        self.active_seen: dict[str, int] = {}
        self.injected: dict[str, Injected] = {}
        self._active = list(active)

    def before_cycle(self, cycle: int, rng: random.Random, announced: dict[str, int | None]) -> None:
        """
        Queue the active repositories' builds before the first cycle, then inject what is due.

        :param announced: the sweep figures the monitor announced in the previous cycle, if any.
        """
        if cycle == 1:
            for name in self._active:
                self.queued[name] = self.emulator.add_build(name, QUEUED_STATUS, 1.0)["build_code"]
        done = {entry.repository for entry in self.injected.values() if entry.active}
        due = [(name, False) for name in self.planned.get(cycle, [])]
        due += [(name, True) for name in self.active_seen if name not in done]
        for name, active in due:
            # Created at some moment since the previous cycle, as a failure between two runs would be.
            build = self.emulator.add_build(name, FAILED_STATUS, rng.uniform(0.5, CYCLE_SECONDS / 60 - 0.5))
            self.injected[build["build_code"]] = Injected(name, cycle, active, announced)

    def after_cycle(self, cycle: int, keys: set[str]) -> None:
        for code, entry in self.injected.items():
            if entry.detected is None and code in keys:
                entry.detected = cycle
        for name, code in self.queued.items():
            if name not in self.active_seen and code in keys:
                self.active_seen[name] = cycle

    def pending(self) -> bool:
        """Tell whether a failure is still unfound, or an active repository seen but its failure not yet injected."""
        done = {entry.repository for entry in self.injected.values() if entry.active}
        return any(e.detected is None for e in self.injected.values()) or bool(set(self.active_seen) - done)

    def summary(self, cycles_run: int) -> dict[str, Any]:
        entries = list(self.injected.values())
        active = [e for e in entries if e.active]
        return {
            "injected": len(entries),
            "detected": sum(e.detected is not None for e in entries),
            "active_injected": len(active),
            "active_detected": sum(e.detected is not None for e in active),
            "active_seen": len(self.active_seen),
            **self._against_announced(entries, "sweep_cycles"),
            **self._against_announced(entries, "sweep_bound"),
            **latency_figures("latency_p50", entries, cycles_run, 0.50),
            **latency_figures("latency_p95", entries, cycles_run, 0.95),
            **latency_figures("active_latency_max", active, cycles_run, 1.0),
        }

    @staticmethod
    def _against_announced(entries: Sequence[Injected], key: str) -> dict[str, Any]:
        """
        Count the failures found later than the monitor's announcement when they went in.

        A failure never found counts as later. An announcement of 0 says the budget never reaches every
        repository, which no latency exceeds, so it is left out.
        """
        announced = [e for e in entries if e.announced.get(key)]
        return {
            f"{key}_at_injection": sorted({e.announced[key] for e in announced}),
            f"{key}_announced": len(announced),
            f"later_than_{key}": sum(
                e.detected is None or e.detected - e.cycle + 1 > e.announced[key] for e in announced
            ),
        }


def latency_figures(
    name: str, entries: Sequence[Injected], cycles_run: int, quantile: float
) -> dict[str, Any]:
    """
    Return a nearest-rank percentile of detection latency, in cycles, as a number and as text.

    Latency counts the cycle that found the failure: found by the very next cycle is 1. A failure not
    found by the last cycle has a latency above the cycles it was watched for, and nothing more is
    known. The percentile is then bounded from below by taking each such failure at its least possible
    latency, and from above by taking it as endless; when the two differ, the number is ``None`` and
    the text gives the bound, ``>k``.
    """
    if not entries:
        return {name: None, f"{name}_text": "-"}
    rank = max(1, math.ceil(quantile * len(entries))) - 1
    found = [e.detected - e.cycle + 1 if e.detected is not None else None for e in entries]
    upper = sorted(math.inf if latency is None else latency for latency in found)[rank]
    lower = sorted(
        cycles_run - e.cycle + 2 if latency is None else latency for e, latency in zip(entries, found)
    )[rank]
    if upper == lower:
        return {name: int(upper), f"{name}_text": str(int(upper))}
    return {name: None, f"{name}_text": f">{lower - 1}"}


def peak_rss_kib() -> int:
    """
    Return the most memory this process has held, in KiB.

    Linux keeps ``ru_maxrss`` across ``execve``: a child started by a process bigger than itself reports
    its parent's size. The peak of the child's own address space, ``VmHWM``, is read where there is one.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Bytes on macOS, KiB elsewhere.
    return peak // 1024 if sys.platform == "darwin" else peak


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """
    Run every cycle of one measurement in this process and return its figures.

    :param spec: ``url``, ``size``, ``poller``, ``setting``, ``cycles`` and ``max_cycles``.
    """
    emulator = Emulator(spec["url"])
    rate_limited = spec["setting"] == RATE_LIMITED
    if spec["poller"] == MONITOR:
        poller: MonitorPoller | SequentialPoller = MonitorPoller(emulator)
    else:
        poller = SequentialPoller(
            emulator, every_page=spec["poller"] == SEQUENTIAL_ALL, follow_clock=rate_limited
        )
    # Imports (Airflow's for the monitor) are most of the process; what fetching adds comes on top.
    baseline = peak_rss_kib()

    cycles = spec["cycles"]
    active, planned = injection_plan(spec["size"], cycles)
    detections = Detections(emulator, active, planned)
    rng = random.Random(SEED)
    moment = START
    rows: list[dict[str, Any]] = []
    for cycle in range(1, spec["max_cycles"] + 1):
        emulator.set_clock(moment)
        last = rows[-1] if rows else {}
        detections.before_cycle(cycle, rng, {key: last.get(key) for key in ("sweep_cycles", "sweep_bound")})
        emulator.reset_stats()
        started = time.perf_counter()
        result = poller.cycle(moment)
        wall = time.perf_counter() - started
        stats = emulator.stats()
        detections.after_cycle(cycle, result.keys)
        rows.append(
            {
                "cycle": cycle,
                "wall_seconds": wall,
                "requests": stats["requests"],
                "rate_limited": stats["rate_limited"],
                **result.details,
            }
        )
        # Five minutes to the next run, unless the pacer's waits already went past that.
        moment = max(moment + timedelta(seconds=CYCLE_SECONDS), result.end)
        if cycle >= cycles and not detections.pending():
            break
        sweep = result.details.get("sweep_cycles")
        if cycle >= cycles and sweep and cycle >= cycles + sweep + 2:
            # Past the sweep the monitor itself announced: what is not found by now counts as missed.
            break

    return {
        "concurrency": poller.concurrency,
        "cycles_run": len(rows),
        "rows": rows,
        "peak_rss_kib": peak_rss_kib(),
        "baseline_rss_kib": baseline,
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **detections.summary(len(rows)),
    }


# The benchmark's own process


def child_environment(url: str | None, airflow_home: str) -> dict[str, str]:
    """Return the environment of a child: no connection or variable of the caller, a scratch Airflow home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        {
            "AIRFLOW_HOME": airflow_home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DOCKERHUB__HTTP_BACKOFF_SECONDS": "0.05",
        }
    )
    if url is not None:
        # Anonymous: the populated repositories are public. An env connection needs no metadata database.
        env["AIRFLOW_CONN_DOCKERHUB_DEFAULT"] = json.dumps({"conn_type": "dockerhub", "host": url})
    return env


def measure(size: int, setting: str, poller: str, cycles: int, airflow_home: str) -> dict[str, Any]:
    """
    Serve a fresh emulated namespace of ``size`` repositories and run one poller against it in a child.

    :return: the child's figures, with the measurement's identity.
    """
    from airflow_dockerhub.emulator import HubState, create_hub_app, serve_in_thread

    state = HubState(now=START)
    state.populate(NAMESPACE, size, builds=3, failing_every=FAILING_EVERY, history="legacy")
    state.latency = ROUND_TRIP
    if setting == RATE_LIMITED:
        state.rate_limit = RATE_LIMIT
        state.rate_window = RATE_WINDOW
    # Sequential pollers read everything or nothing of a repository every cycle: waiting longer finds
    # nothing new. The monitor may read in turns, so it gets the cycles its sweep needs.
    max_cycles = cycles + EXTRA_CYCLES if poller == MONITOR else cycles
    spec = {"size": size, "setting": setting, "poller": poller, "cycles": cycles, "max_cycles": max_cycles}
    with serve_in_thread(create_hub_app(state)) as server:
        spec["url"] = server.url
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=child_environment(server.url, airflow_home),
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"The {poller} measurement at N={size} ({setting}) failed:\n{completed.stderr[-4000:]}"
        )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "size": size,
        "setting": setting,
        "poller": poller,
        "measured": True,
        **summarize(figures, size, poller),
    }


def summarize(figures: dict[str, Any], size: int, poller: str) -> dict[str, Any]:
    """Add the figures the table shows: first and steady cycle, floor, coverage, memory in MB."""
    rows = figures["rows"]
    # From the second cycle on the listing is cached and the pools are warm: the steady state.
    steady = rows[1:] or rows
    steady_requests = statistics.median(row["requests"] for row in steady)
    concurrency = figures["concurrency"]
    sweeps = [row["sweep_cycles"] for row in rows if "sweep_cycles" in row]
    bounds = [row["sweep_bound"] for row in rows if row.get("sweep_bound") is not None]
    return {
        **figures,
        "covers": min(size, 100) if poller == SEQUENTIAL_FIRST_PAGE else size,
        "first_cycle_seconds": rows[0]["wall_seconds"],
        "steady_cycle_seconds": statistics.median(row["wall_seconds"] for row in steady),
        "first_cycle_requests": rows[0]["requests"],
        "steady_cycle_requests": steady_requests,
        "requests": sum(row["requests"] for row in rows),
        "rate_limited": sum(row["rate_limited"] for row in rows),
        "floor_seconds": math.ceil(steady_requests / concurrency) * ROUND_TRIP,
        "peak_mb": figures["peak_rss_kib"] / 1024,
        "fetch_mb": (figures["peak_rss_kib"] - figures["baseline_rss_kib"]) / 1024,
        "sweep_cycles": sweeps[-1] if sweeps else None,
        "sweep_cycles_seen": sorted(set(sweeps)),
        "sweep_bound": bounds[-1] if bounds else None,
        "errors": sum(row.get("errors", 0) for row in rows),
    }


def parse_time(airflow_home: str) -> dict[str, Any]:
    """
    Time the DAG file beyond Airflow's own import: both in one fresh interpreter, the median of a few.

    Airflow is imported first and timed; the DAG file then runs in that same interpreter, as the DAG
    processor would run it with Airflow already loaded. Both are measured in wall time, which counts
    any wait on the network or a database the file should never make, and in CPU time of the process,
    which is what parsing costs the DAG processor whatever else the machine runs meanwhile.
    """
    program = (
        "import json, runpy, time\n"
        "started, started_cpu = time.perf_counter(), time.process_time()\n"
        "import airflow\n"
        "imported, imported_cpu = time.perf_counter(), time.process_time()\n"
        f"runpy.run_path({str(DAG_FILE)!r})\n"
        "parsed, parsed_cpu = time.perf_counter(), time.process_time()\n"
        "print(json.dumps({'airflow': imported - started, 'total': parsed - started,\n"
        "                  'airflow_cpu': imported_cpu - started_cpu, 'total_cpu': parsed_cpu - started_cpu}))\n"
    )
    runs = []
    for _ in range(PARSE_REPEATS):
        completed = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            env=child_environment(None, airflow_home),
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"Parsing {DAG_FILE.name} failed:\n{completed.stderr[-4000:]}")
        runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return {
        "repeats": PARSE_REPEATS,
        "airflow_import_ms": statistics.median(run["airflow"] for run in runs) * 1000,
        "dag_beyond_airflow_ms": statistics.median(run["total"] - run["airflow"] for run in runs) * 1000,
        "dag_beyond_airflow_cpu_ms": statistics.median(run["total_cpu"] - run["airflow_cpu"] for run in runs)
        * 1000,
        "runs_ms": [(run["total"] - run["airflow"]) * 1000 for run in runs],
    }


def plan_measurements(args: argparse.Namespace) -> Iterator[tuple[int, str, str, int, bool]]:
    """Yield each measurement: size, setting, poller, cycles, and whether it is run at all."""
    sizes = (100,) if args.quick else SIZES + ((BIG_SIZE,) if args.with_10k else ())
    for setting in (NO_LIMIT, RATE_LIMITED):
        for size in sizes:
            cycles = QUICK_CYCLES if args.quick else BIG_CYCLES if size >= BIG_SIZE else CYCLES
            for poller in POLLERS:
                run = True
                poller_cycles = cycles
                if poller == SEQUENTIAL_ALL:
                    poller_cycles = min(
                        cycles,
                        FULL_SEQUENTIAL_CYCLES
                        if size <= FULL_SEQUENTIAL_LONG
                        else FULL_SEQUENTIAL_LONG_CYCLES,
                    )
                    run = size <= FULL_SEQUENTIAL_MAX or args.full_sequential
                yield size, setting, poller, poller_cycles, run


def find(results: Iterable[dict[str, Any]], size: int, setting: str, poller: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in results
            if r["size"] == size and r["setting"] == setting and r["poller"] == poller and r["measured"]
        ),
        None,
    )


def span(values: Sequence[int]) -> str:
    """Write a few whole numbers as their range, ``9-13``, or as the one number they all are."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def sweep_text(result: dict[str, Any]) -> str:
    """Write the monitor's last sweep prediction, the range of them all and its bound, where it has one."""
    if not result["sweep_cycles_seen"]:
        return "-"
    text = f"{result['sweep_cycles']} ({span(result['sweep_cycles_seen'])})"
    return text if result["sweep_bound"] is None else f"{text} <={result['sweep_bound']}"


def check_targets(results: list[dict[str, Any]], parse: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge each target: met, not met, or not measured in this run (``met`` is then ``None``)."""
    targets: list[dict[str, Any]] = []

    def judge(name: str, met: bool | None, detail: str = "not measured in this run") -> None:
        targets.append({"target": name, "met": met, "detail": detail})

    fast = find(results, 1000, NO_LIMIT, MONITOR)
    slow = find(results, 1000, NO_LIMIT, SEQUENTIAL_ALL)
    name = "50 ms, N=1,000: steady cycle within 1.3x of the floor"
    if fast:
        ratio = fast["steady_cycle_seconds"] / fast["floor_seconds"]
        detail = (
            f"{fast['steady_cycle_seconds']:.2f} s = {ratio:.2f}x the {fast['floor_seconds']:.2f} s floor"
        )
        judge(name, ratio <= 1.3, detail)
    else:
        judge(name, None)
    name = "50 ms, N=1,000: at least 10x faster than the sequential poller (all repositories)"
    if fast and slow:
        speedup = slow["steady_cycle_seconds"] / fast["steady_cycle_seconds"]
        detail = (
            f"{slow['steady_cycle_seconds']:.1f} s / {fast['steady_cycle_seconds']:.2f} s = {speedup:.1f}x"
        )
        judge(name, speedup >= 10, detail)
    else:
        judge(name, None)

    limited = [
        r for r in results if r["measured"] and r["setting"] == RATE_LIMITED and r["poller"] == MONITOR
    ]
    name = "180/min: zero 429s for the monitor at every N"
    if limited:
        detail = ", ".join(f"N={r['size']:,}: {r['rate_limited']}" for r in limited)
        judge(name, all(r["rate_limited"] == 0 for r in limited), detail)
    else:
        judge(name, None)
    thousand = find(results, 1000, RATE_LIMITED, MONITOR)
    name = "180/min, N=1,000: p95 detection within 2 cycles"
    if thousand:
        p95 = thousand["latency_p95"]
        judge(name, p95 is not None and p95 <= 2, f"p95 {thousand['latency_p95_text']} cycles")
    else:
        judge(name, None)

    big = find(results, 5000, RATE_LIMITED, MONITOR)
    names = (
        "180/min, N=5,000: p95 detection within the sweep the monitor predicted in its last cycle",
        # What the log said when a failure went in is what an operator reads then; it can be shorter
        # than the last prediction, as repositories found failing join the ones read every cycle.
        "180/min, N=5,000: 95 % of failures found within the sweep announced when each went in",
        "180/min, N=5,000: active-repository failures within 1 cycle",
    )
    if big:
        p95, last = big["latency_p95"], big["sweep_cycles"]
        judge(
            names[0],
            p95 is not None and bool(last) and p95 <= last,
            f"p95 {big['latency_p95_text']} cycles, sweep {last} cycles",
        )
        # The bound, where the monitor announces one, is the promise; its plain prediction is shown too.
        key = "sweep_bound" if big["sweep_bound_announced"] else "sweep_cycles"
        late, counted, then = big[f"later_than_{key}"], big[f"{key}_announced"], big[f"{key}_at_injection"]
        plain = big["sweep_cycles_at_injection"]
        judge(
            names[1],
            bool(counted) and late <= 0.05 * counted,
            f"{late} of {counted} failures found later than the {key} announced when they went in "
            f"({span(then) if then else '-'} cycles); {big['later_than_sweep_cycles']} later than the "
            f"sweep_cycles then ({span(plain) if plain else '-'})",
        )
        judge(
            names[2],
            big["active_injected"] > 0 and big["active_latency_max"] == 1,
            f"max {big['active_latency_max_text']} over {big['active_injected']} failures",
        )
    else:
        for name in names:
            judge(name, None)

    growth = []
    for setting in (NO_LIMIT, RATE_LIMITED):
        small, large = find(results, 100, setting, MONITOR), find(results, 5000, setting, MONITOR)
        if small and large:
            growth.append((setting, large["peak_mb"] - small["peak_mb"]))
    name = "peak memory growth N=100 -> 5,000 under 50 MB"
    if growth:
        detail = ", ".join(f"{SETTING_LABELS[setting]}: {mb:+.1f} MB" for setting, mb in growth)
        judge(name, all(mb < 50 for _, mb in growth), detail)
    else:
        judge(name, None)
    judge(
        "DAG parse time beyond Airflow's import under 100 ms",
        parse["dag_beyond_airflow_ms"] < 100,
        f"{parse['dag_beyond_airflow_ms']:.0f} ms",
    )
    return targets


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "airflow": metadata.version("apache-airflow"),
    }


def table(report: dict[str, Any]) -> str:
    """Format the report as the header, one table and the targets."""
    meta = report["machine"]
    parse = report["parse"]
    concurrency = next(
        (r["concurrency"] for r in report["results"] if r["poller"] == MONITOR and r["measured"]), "?"
    )
    lines = [
        f"Date {meta['date']}; {meta['platform']} ({meta['processor']}), {meta['cpus']} CPUs",
        f"Python {meta['python']}, Airflow {meta['airflow']}; monitor concurrency {concurrency}",
        (
            f"Round trip {ROUND_TRIP * 1000:.0f} ms; cycles every {CYCLE_SECONDS:.0f} s of simulated time; "
            f"{FAILURES_PER_CYCLE} failures injected before each cycle from the 2nd, and {ACTIVE_REPOSITORIES} "
            "into repositories with a queued build once the poller has seen it"
        ),
        (
            f"DAG file beyond importing Airflow: {parse['dag_beyond_airflow_ms']:.0f} ms wall time, "
            f"{parse['dag_beyond_airflow_cpu_ms']:.0f} ms of CPU time "
            f"(median of {parse['repeats']}; importing Airflow itself {parse['airflow_import_ms']:.0f} ms)"
        ),
        "",
    ]
    header = (
        "setting",
        "N",
        "poller",
        "reads",
        "cycles",
        "1st s",
        "steady s",
        "floor s",
        "req 1st/steady",
        "429s",
        "peak MB (+fetch)",
        "p50/p95",
        "active max",
        "sweep",
    )
    body: list[tuple[str, ...]] = []
    skipped: set[int] = set()
    for r in report["results"]:
        identity = (SETTING_LABELS[r["setting"]], f"{r['size']:,}", POLLER_LABELS[r["poller"]])
        if not r["measured"]:
            # Said in one line under its setting and size, where the figures would be.
            skipped.add(len(body))
            body.append((*identity, *[""] * (len(header) - 3)))
            continue
        body.append(
            (
                *identity,
                f"{r['covers']:,}",
                str(r["cycles_run"]),
                f"{r['first_cycle_seconds']:.2f}",
                f"{r['steady_cycle_seconds']:.2f}",
                f"{r['floor_seconds']:.2f}",
                f"{r['first_cycle_requests']:,}/{r['steady_cycle_requests']:,.0f}",
                f"{r['rate_limited']:,}",
                f"{r['peak_mb']:.0f} ({r['fetch_mb']:+.0f})",
                f"{r['latency_p50_text']}/{r['latency_p95_text']}",
                r["active_latency_max_text"],
                sweep_text(r),
            )
        )
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    for index, row in enumerate((header, *body)):
        cells = [cell.ljust(widths[i]) if i < 3 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        if index - 1 in skipped:
            cells = [*cells[:3], f"not measured: above N={FULL_SEQUENTIAL_MAX:,} it needs --full-sequential"]
        lines.append("  ".join(cells).rstrip())
    lines += [
        "",
        "reads: repositories the poller reads at all (the original sequential poller lists the first page only);",
        "cycles: cycles run (the monitor runs on until every injected failure is found or its sweep is over);",
        "steady s: median wall time of cycles 2 on, listing cached; floor: ceil(requests / concurrency) x round trip;",
        "req, 429s: counted by the emulator (per cycle, over all cycles); peak MB: peak RSS of the fetching process,",
        "(+fetch) above its size after imports; p50/p95: detection latency in cycles (1 = found by the next cycle),",
        "'>k' = more than k, some failures never found; active max: worst latency for a repository with a queued",
        "build, '-' when the poller never read one; sweep: cycles to read every repository, as the monitor",
        "predicted in its last cycle (the range of its predictions over the run; <=: the most it announced a",
        "sweep can take however many repositories start failing).",
        "",
    ]
    # A cycle that could not read some history is faster than one that could: say so next to the times.
    for r in report["results"]:
        if r["measured"] and r.get("errors"):
            first = next(row["first_error"] for row in r["rows"] if row.get("first_error"))
            lines.append(
                f"Read errors of the monitor at N={r['size']:,}, {SETTING_LABELS[r['setting']]}: "
                f"{r['errors']}, the first: {first}"
            )
    lines.append("Targets:")
    for t in report["targets"]:
        verdict = "not measured" if t["met"] is None else "met" if t["met"] else "NOT MET"
        lines.append(f"  [{verdict}] {t['target']}: {t['detail']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--quick", action="store_true", help="only N=100 and 2 cycles, for tests")
    parser.add_argument("--with-10k", action="store_true", help="measure 10,000 repositories too")
    parser.add_argument(
        "--full-sequential",
        action="store_true",
        help=f"run the sequential poller over all repositories above N={FULL_SEQUENTIAL_MAX:,} too (slow)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="dockerhub-benchmark-") as airflow_home:
        parse = parse_time(airflow_home)
        for size, setting, poller, cycles, run in plan_measurements(args):
            if not run:
                results.append({"size": size, "setting": setting, "poller": poller, "measured": False})
                continue
            print(
                f"Measuring {POLLER_LABELS[poller]} at N={size:,}, {SETTING_LABELS[setting]}", file=sys.stderr
            )
            results.append(measure(size, setting, poller, cycles, airflow_home))
    report = {"machine": machine(), "parse": parse, "results": results}
    report["targets"] = check_targets(results, parse)
    print(json.dumps(report) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
