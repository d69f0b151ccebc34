"""The monitor's settings: their names, defaults, and how raw values are read and checked."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_dockerhub.alerts import Thresholds
    from airflow_dockerhub.retries import RetryPolicy

NAMESPACES_VARIABLE = "dockerhub_namespaces"
QUEUED_THRESHOLD_VARIABLE = "dockerhub_queued_threshold_minutes"
BUILDING_THRESHOLD_VARIABLE = "dockerhub_building_threshold_minutes"
MAX_BUILD_AGE_VARIABLE = "dockerhub_max_build_age_hours"
ALERT_RECORD_VARIABLE = "dockerhub_alert_record"
NOTIFY_TARGETS_VARIABLE = "dockerhub_notify_targets"
REMINDER_INTERVAL_VARIABLE = "dockerhub_reminder_interval_hours"
INCIDENT_THRESHOLD_VARIABLE = "dockerhub_incident_threshold"
BUILD_TRIGGERS_VARIABLE = "dockerhub_build_trigger_secrets"
LOGIN_BLOCK_VARIABLE = "dockerhub_login_block"
RETRY_LIMIT_VARIABLE = "dockerhub_retry_limit"
RETRY_WINDOW_VARIABLE = "dockerhub_retry_window_hours"
RETRY_CONFIRM_VARIABLE = "dockerhub_retry_confirm_minutes"
UNREADABLE_CYCLES_VARIABLE = "dockerhub_unreadable_alert_cycles"
#: Per repository and tag (or pattern), how often a push is expected: see :mod:`airflow_dockerhub.freshness`.
FRESHNESS_RULES_VARIABLE = "dockerhub_freshness_rules"
#: Written by the monitor: namespaces it cannot read and rejected credentials, and who was told.
HEALTH_VARIABLE = "dockerhub_monitor_health"
#: Written by the monitor: cached listings, which repositories were read when, their history source.
POLL_STATE_VARIABLE = "dockerhub_poll_state"

#: How many notices to one chat target in one cycle become a single grouped message, and how many
#: failing repositories in one cycle look like a Docker Hub incident, during which rebuilds pause.
DEFAULT_INCIDENT_THRESHOLD = 5

#: How often the monitor runs unless ``[dockerhub] monitor_schedule`` says otherwise: Docker Hub's
#: rate limit and the thresholds' resolution are both measured in minutes.
DEFAULT_MONITOR_SCHEDULE = "*/5 * * * *"
#: The configuration option (and its environment variable) read when the DAG file is parsed.
MONITOR_SCHEDULE_OPTION = "[dockerhub] monitor_schedule (AIRFLOW__DOCKERHUB__MONITOR_SCHEDULE)"
#: Airflow's cron presets, which the option accepts besides cron expressions.
_CRON_PRESETS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

DOCKERHUB_CONN_ID = "dockerhub_default"
NOTIFY_CONN_ID = "dockerhub_notify"
#: Optional: called after every healthy cycle, so a monitor that stops is noticed elsewhere.
HEARTBEAT_CONN_ID = "dockerhub_heartbeat"

# Docker IDs and organization names are lower-case letters, digits, '-' and '_'; older accounts may
# carry '.', and upper case is accepted because Docker Hub folds it.
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class MonitorSettings:
    """
    Everything one monitor run needs to know.

    :param namespaces: the Docker Hub namespaces to watch.
    :param thresholds: the limits builds are judged against.
    :param targets: the connection ids notices go to.
    :param reminder_hours: how often to remind of a build that stays failed; 0 sends no reminders.
    :param retry_policy: how failed builds are rebuilt.
    :param incident_threshold: how many notices to one chat target make one grouped message, and how
        many failing repositories pause rebuilds; 0 turns both off.
    :param unreadable_cycles: after how many unreadable cycles in a row a namespace is alerted;
        0 never alerts.
    """

    namespaces: tuple[str, ...]
    thresholds: Thresholds
    targets: tuple[str, ...] = (NOTIFY_CONN_ID,)
    reminder_hours: float = 0
    incident_threshold: int = DEFAULT_INCIDENT_THRESHOLD
    retry_policy: RetryPolicy = field(default_factory=lambda: _default_retry_policy())
    unreadable_cycles: int = 3


def _default_retry_policy() -> RetryPolicy:
    # Imported late: DAG files import this module for the setting names, and parsing must stay quick.
    from airflow_dockerhub.retries import RetryPolicy

    return RetryPolicy()


def parse_namespaces(value: Any, setting: str) -> tuple[str, ...]:
    """
    Read a comma-separated list of namespaces, such as ``"acme, acme-labs"``.

    :param value: the raw value (a string, or a list of strings).
    :param setting: where the value came from, named in the error.
    :raise ValueError: when no namespace is given or one is not a valid Docker Hub name.
    """
    if value is None:
        raise ValueError(
            f"{setting} is not set; set it to one or more Docker Hub namespaces, comma-separated"
        )
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    namespaces = [str(item).strip() for item in items if str(item).strip()]
    if not namespaces:
        raise ValueError(f"{setting} is empty; set it to one or more Docker Hub namespaces, comma-separated")
    invalid = [name for name in namespaces if not _NAMESPACE.match(name)]
    if invalid:
        raise ValueError(f"{setting} holds names that are not Docker Hub namespaces: {', '.join(invalid)}")
    return tuple(dict.fromkeys(name.lower() for name in namespaces))


def parse_positive_number(value: Any, setting: str, default: float) -> float:
    """
    Read a positive number, or fall back to a default when nothing is set.

    :param value: the raw value: a number, a numeric string, ``None`` or ``""``.
    :param setting: where the value came from, named in the error.
    :param default: the value used when nothing is set.
    :raise ValueError: when the value is not a positive number.
    """
    return _parse_number(value, setting, default, allow_zero=False)


def parse_non_negative_number(value: Any, setting: str, default: float) -> float:
    """
    Read a number of zero or more, where zero means "off", or fall back to a default when nothing is set.

    :param value: the raw value: a number, a numeric string, ``None`` or ``""``.
    :param setting: where the value came from, named in the error.
    :param default: the value used when nothing is set.
    :raise ValueError: when the value is not a number of zero or more.
    """
    return _parse_number(value, setting, default, allow_zero=True)


def parse_count(value: Any, setting: str, default: int) -> int:
    """
    Read a whole number of zero or more, where zero means "off", or fall back to a default.

    :param value: the raw value.
    :param setting: where the value came from, named in the error.
    :param default: the value used when nothing is set.
    :raise ValueError: when the value is not a whole number of zero or more.
    """
    number = _parse_number(value, setting, default, allow_zero=True)
    if number != int(number):
        raise ValueError(f"{setting} must be a whole number, got {value!r}")
    return int(number)


def _parse_number(value: Any, setting: str, default: float, allow_zero: bool) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    wanted = "zero or more" if allow_zero else "a positive number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{setting} must be {wanted}, got {value!r}") from None
    in_range = number >= 0 if allow_zero else number > 0
    if isinstance(value, bool) or not in_range or number == float("inf"):
        raise ValueError(f"{setting} must be {wanted}, got {value!r}")
    return number


def parse_conn_ids(value: Any, setting: str, default: str) -> tuple[str, ...]:
    """
    Read a comma-separated list of connection ids.

    :param value: the raw value; ``None`` or empty gives the default.
    :param setting: where the value came from, named in the error.
    :param default: the connection id used when nothing is set.
    :raise ValueError: when an id holds characters Airflow does not allow.
    """
    if value is None or not str(value).strip():
        return (default,)
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    conn_ids = [str(item).strip() for item in items if str(item).strip()]
    invalid = [conn_id for conn_id in conn_ids if not re.match(r"^[A-Za-z0-9_.-]+$", conn_id)]
    if invalid:
        raise ValueError(f"{setting} holds names that are not connection ids: {', '.join(invalid)}")
    return tuple(dict.fromkeys(conn_ids))


def parse_schedule(value: Any, setting: str = MONITOR_SCHEDULE_OPTION) -> str | None:
    """
    Read the monitor's schedule: a cron expression, one of Airflow's cron presets, or ``none``.

    It is read when the DAG file is parsed, so nothing here touches the database or the network.

    :param value: the raw value; ``None`` or empty gives the default, every five minutes.
    :param setting: where the value came from, named in the error.
    :return: the schedule for the DAG; ``None`` for ``none``, which runs the monitor only by hand.
    :raise ValueError: when the value is neither.
    """
    text = str(value).strip() if value is not None else ""
    if not text:
        return DEFAULT_MONITOR_SCHEDULE
    if text.lower() == "none":
        return None
    if text.lower() in _CRON_PRESETS:
        return text.lower()
    from croniter import croniter

    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"{setting} must be a cron expression of five fields such as '*/5 * * * *', one of "
            f"{', '.join(_CRON_PRESETS)}, or 'none', got {text!r}"
        )
    return text


#: How long a monitor run may take before Airflow stops it (its ``dagrun_timeout``).
MONITOR_RUN_TIMEOUT = timedelta(minutes=30)
#: The longest cycle a run plans its reading for. A run reads for 80 % of its cycle; 80 % of this is
#: 20 minutes, which leaves ten of the run's timeout to evaluate and deliver, however rare the runs.
MAX_CYCLE_SECONDS = 1500.0


def planned_cycle_seconds(schedule: str | None, cycle_seconds: float | None, default: float = 300.0) -> float:
    """
    Tell how long the cycle a monitor run plans its reading and its share of the rate limit for.

    :param schedule: the monitor's schedule, as :func:`parse_schedule` returns it.
    :param cycle_seconds: the cycle set explicitly, or ``None`` to take it from the schedule.
    :param default: the cycle when neither tells it.
    :return: the cycle, at most :data:`MAX_CYCLE_SECONDS`, so the run ends well within
        :data:`MONITOR_RUN_TIMEOUT`.
    """
    seconds = cycle_seconds if cycle_seconds is not None else schedule_cycle_seconds(schedule, default)
    return min(seconds, MAX_CYCLE_SECONDS)


def schedule_cycle_seconds(schedule: str | None, default: float) -> float:
    """
    Tell the time between two scheduled runs, the shortest gap over the next day of runs.

    :param schedule: a schedule as :func:`parse_schedule` returns it.
    :param default: the answer for no schedule, or one whose runs cannot be told.
    """
    if not schedule:
        return default
    from datetime import datetime, timezone

    from croniter import croniter

    try:
        runs = croniter(schedule, datetime(2026, 1, 5, tzinfo=timezone.utc))
        moments = [runs.get_next(float) for _ in range(289)]
    except (ValueError, KeyError):
        return default
    return min(later - earlier for earlier, later in itertools.pairwise(moments))
