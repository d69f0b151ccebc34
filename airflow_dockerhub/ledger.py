"""The alert record: which alerts were delivered, so each one is sent once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_dockerhub.builds import parse_timestamp

#: How long past the "ignore older builds" window an entry is kept. Builds older than the window never
#: alert again, so their entries are dead weight once the window is safely behind them.
RETENTION_MARGIN = timedelta(days=1)


@dataclass
class AlertRecord:
    """
    Delivered alerts, keyed by event id.

    Each entry says which repository, tag, build and kind it was, when the build was last updated and
    when the alert was delivered, so a person reading the stored record can tell what it holds.

    :param entries: event id to entry, as stored.
    """

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, stored: Any, setting: str) -> AlertRecord:
        """
        Read a record as stored (a JSON object), or start an empty one when nothing is stored.

        :param stored: the decoded stored value, or ``None``.
        :param setting: where the value came from, named in the error when it is unreadable.
        :raise ValueError: when the stored value is not a JSON object of objects.
        """
        if stored is None or stored == "":
            return cls()
        if not isinstance(stored, Mapping) or not all(isinstance(v, Mapping) for v in stored.values()):
            raise ValueError(
                f"The alert record in {setting} is not a JSON object of delivered alerts; "
                "delete it to start a new record (already delivered alerts may then be sent again)"
            )
        return cls({str(key): dict(value) for key, value in stored.items()})

    def was_delivered(self, event_id: str) -> bool:
        return event_id in self.entries

    def mark_delivered(self, alerts: Iterable[Mapping[str, Any]], delivered_at: datetime) -> int:
        """
        Add delivered alerts.

        :param alerts: alert summaries as the monitor hands them to delivery (``event_id``,
            ``repository``, ``tag``, ``build``, ``kind``, ``build_updated``).
        :param delivered_at: when the delivery was confirmed.
        :return: how many entries were new.
        """
        added = 0
        for alert in alerts:
            event_id = alert["event_id"]
            if event_id not in self.entries:
                added += 1
            self.entries[event_id] = {
                "repository": alert["repository"],
                "tag": alert["tag"],
                "build": alert["build"],
                "kind": alert["kind"],
                "build_updated": alert.get("build_updated"),
                "delivered_at": delivered_at.isoformat(),
            }
        return added

    def prune(self, now: datetime, max_age: timedelta) -> int:
        """
        Forget entries of builds too old to alert again.

        :param now: the current moment (aware).
        :param max_age: the window within which builds are looked at.
        :return: how many entries were dropped.
        """
        cutoff = now - max_age - RETENTION_MARGIN
        stale = [
            event_id
            for event_id, entry in self.entries.items()
            if (moment := _entry_moment(entry)) is not None and moment < cutoff
        ]
        for event_id in stale:
            del self.entries[event_id]
        return len(stale)

    def to_stored(self) -> dict[str, dict[str, Any]]:
        return dict(sorted(self.entries.items(), key=lambda item: item[1].get("delivered_at") or ""))


def _entry_moment(entry: Mapping[str, Any]) -> datetime | None:
    return parse_timestamp(entry.get("build_updated")) or parse_timestamp(entry.get("delivered_at"))
