"""Keep the alert record in an Airflow variable, where every worker and a person can see it."""

from __future__ import annotations

import json

from airflow.sdk import Variable

from airflow_dockerhub.ledger import AlertRecord
from airflow_dockerhub.settings import ALERT_RECORD_VARIABLE

DESCRIPTION = "Alerts delivered by the Docker Hub build monitor; delete to start over."


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
