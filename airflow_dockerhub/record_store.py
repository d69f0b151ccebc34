"""Keep the alert record in an Airflow variable, where every worker and a person can see it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from airflow.sdk import Variable

from airflow_dockerhub.health import MonitorHealth
from airflow_dockerhub.ledger import AlertRecord
from airflow_dockerhub.polling import PollState
from airflow_dockerhub.settings import ALERT_RECORD_VARIABLE, HEALTH_VARIABLE, POLL_STATE_VARIABLE

DESCRIPTION = "Alerts delivered by the Docker Hub build monitor; delete to start over."
POLL_STATE_DESCRIPTION = (
    "Cached listings and reading turns of the Docker Hub build monitor; deleting it costs requests only."
)
HEALTH_DESCRIPTION = "Namespaces the Docker Hub build monitor cannot read, rejected logins, and who was told."

#: How many times a change is written again when another writer's save keeps replacing it.
SAVE_ATTEMPTS = 5

#: How long after a save the record is read back a second time, unless ``[dockerhub]
#: record_settle_seconds`` says otherwise. A writer that read the record before
#: the save and needs longer than this to save its own version can still replace the change unseen:
#: that goes only when the record moves to a store with an atomic compare-and-set, which Airflow
#: variables do not have. Reading, merging and saving the record takes a task milliseconds.
SETTLE_SECONDS = 2.0

log = logging.getLogger(__name__)


def record_settle_seconds() -> float:
    """Read ``[dockerhub] record_settle_seconds``: how long after a save the record is checked again."""
    from airflow.configuration import conf

    seconds = conf.getfloat("dockerhub", "record_settle_seconds", fallback=SETTLE_SECONDS)
    if seconds < 0:
        raise ValueError(f"[dockerhub] record_settle_seconds must not be negative, got {seconds}")
    return seconds


def load_record() -> AlertRecord:
    """
    Read the alert record, or start an empty one when none is stored.

    :raise ValueError: naming the variable, when its value is not a record.
    """
    raw = Variable.get(ALERT_RECORD_VARIABLE, default=None)
    try:
        stored = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    except ValueError:
        raise ValueError(
            f"The {ALERT_RECORD_VARIABLE} variable is not JSON; delete it to start a new record"
        ) from None
    return AlertRecord.from_stored(stored, f"the {ALERT_RECORD_VARIABLE} variable")


def fingerprint(record: AlertRecord) -> str:
    """Describe a record's content, to tell whether it changed since it was loaded."""
    return json.dumps(record.to_stored(), sort_keys=True)


def save_record(record: AlertRecord) -> None:
    """Store the alert record."""
    Variable.set(ALERT_RECORD_VARIABLE, record.to_stored(), description=DESCRIPTION, serialize_json=True)


def update_record(
    change: Callable[[AlertRecord], object],
    attempts: int = SAVE_ATTEMPTS,
    settle_seconds: float | None = None,
) -> AlertRecord:
    """
    Apply a change to the stored record so that it stays applied when another task saves meanwhile.

    A variable offers a task no transaction to hold, and the monitor, the build notifier and a run
    cleared in the UI may all write the record. So the change must be idempotent (applying it to a
    record that already has it changes nothing). After each save the record is read back at once and
    again ``settle_seconds`` later, and the change applied again; when that changes something,
    another writer's save replaced this one, and the merged record is saved again. The second look
    catches a writer that read the record before this save and saved its own version just after the
    first look. Nothing is written, and nothing waited for, when the change is already there.

    :param change: marks to add to a record, in place.
    :param attempts: how many saves to try before giving up.
    :param settle_seconds: how long after a save the record is read back a second time; by default
        ``[dockerhub] record_settle_seconds``, else 2.
    :return: the record as last read, with the change applied.
    :raise RuntimeError: naming the variable, when other writers kept replacing the change.
    """
    saves = 0
    looks: list[float] = []
    while True:
        record = load_record()
        before = fingerprint(record)
        change(record)
        if fingerprint(record) != before:
            if saves == attempts:
                raise RuntimeError(
                    f"Other tasks kept replacing the {ALERT_RECORD_VARIABLE} variable; "
                    f"{attempts} saves did not stick"
                )
            if saves:
                log.warning("Another task saved %s at the same time; saving again", ALERT_RECORD_VARIABLE)
            save_record(record)
            saves += 1
            looks = [record_settle_seconds() if settle_seconds is None else settle_seconds]
            continue
        if not looks:
            return record
        time.sleep(looks.pop(0))


def load_health() -> MonitorHealth:
    """
    Read the monitor's own problems, or start with none when none are stored.

    :raise ValueError: naming the variable, when its value cannot be read.
    """
    raw = Variable.get(HEALTH_VARIABLE, default=None)
    try:
        stored = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    except ValueError:
        raise ValueError(f"The {HEALTH_VARIABLE} variable is not JSON; delete it to start over") from None
    return MonitorHealth.from_stored(stored, f"The {HEALTH_VARIABLE} variable")


def save_health(health: MonitorHealth) -> None:
    """Store the monitor's own problems; only the monitor's record step writes them."""
    Variable.set(HEALTH_VARIABLE, health.to_stored(), description=HEALTH_DESCRIPTION, serialize_json=True)


def load_poll_state() -> PollState:
    """Read what earlier cycles learned about reading Docker Hub; an unreadable value starts over."""
    raw = Variable.get(POLL_STATE_VARIABLE, default=None)
    try:
        stored = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    except ValueError:
        log.warning("The %s variable is not JSON; starting over", POLL_STATE_VARIABLE)
        stored = None
    return PollState.from_stored(stored, f"the {POLL_STATE_VARIABLE} variable")


def save_poll_state(state: PollState) -> None:
    """Store what this cycle learned about reading Docker Hub; only the monitor's fetch step writes it."""
    Variable.set(
        POLL_STATE_VARIABLE, state.to_stored(), description=POLL_STATE_DESCRIPTION, serialize_json=True
    )
