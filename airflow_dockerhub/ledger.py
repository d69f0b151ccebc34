"""The alert record: which alerts went to which target, and which were resolved, so each is sent once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_dockerhub.builds import parse_timestamp
from airflow_dockerhub.freshness import TAG_KINDS

#: How long past the "ignore older builds" window an entry is kept. Builds older than the window never
#: alert again, so their entries are dead weight once the window is safely behind them.
RETENTION_MARGIN = timedelta(days=1)

#: What every entry must say, for the monitor to match it with builds.
REQUIRED_KEYS = ("repository", "tag", "build", "kind")

#: Entries written before targets existed name no target; they were delivered to this connection.
FIRST_TARGET = "dockerhub_notify"


@dataclass
class AlertRecord:
    """
    Delivered alerts, keyed by event id.

    Each entry says which repository, tag, build and kind it was, when the build was last updated,
    and per target (a connection id) when the alert, its reminders and its resolved notice were
    delivered, so a person reading the stored record can tell what it holds::

        {"repository": "acme/app", "tag": "latest", "build": "bxyz", "kind": "failed",
         "build_updated": "...", "delivered": {"dockerhub_notify": "..."},
         "reminders": {"dockerhub_notify": {"count": 1, "at": "..."}},
         "resolved_at": null, "resolved": {}}

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
                "delete it to start a new record (alerts still due are then sent again)"
            )
        entries = {}
        for event_id, value in stored.items():
            entry = dict(value)
            missing = [key for key in REQUIRED_KEYS if not isinstance(entry.get(key), str)]
            if missing:
                raise ValueError(
                    f"The alert record in {setting} has an entry {event_id!r} without {', '.join(missing)}; "
                    "fix or delete that entry"
                )
            if "delivered" not in entry:
                entry["delivered"] = {FIRST_TARGET: entry.pop("delivered_at", None)}
            entries[str(event_id)] = entry
        return cls(entries)

    def was_delivered(self, event_id: str, target: str) -> bool:
        """Tell whether an alert reached a target."""
        return target in self.entries.get(event_id, {}).get("delivered", {})

    def mark_delivered(self, alert: Mapping[str, Any], target: str, delivered_at: datetime) -> bool:
        """
        Note that an alert reached a target.

        :param alert: the alert as the monitor describes it (``event_id``, ``repository``, ``tag``,
            ``build``, ``kind``, ``build_updated``).
        :param target: the connection id of the target.
        :param delivered_at: when the target accepted it.
        :return: whether this was news.
        """
        entry = self._entry(alert)
        news = target not in entry["delivered"]
        entry["delivered"].setdefault(target, delivered_at.isoformat())
        return news

    def _entry(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        return self.entries.setdefault(
            alert["event_id"],
            {
                "repository": alert["repository"],
                "tag": alert["tag"],
                "build": alert["build"],
                "kind": alert["kind"],
                "build_updated": alert.get("build_updated"),
                "delivered": {},
                "reminders": {},
                "resolved_at": None,
                "resolved": {},
            },
        )

    def mark_retry_requested(
        self, alert: Mapping[str, Any], requested_at: datetime, status_code: int, refused: bool
    ) -> None:
        """
        Note that a rebuild of the alert's failed build was requested, and how Docker Hub answered.

        :param alert: the alert as the monitor describes it.
        :param requested_at: when the request was sent.
        :param status_code: Docker Hub's answer.
        :param refused: whether the answer refused the request for good.
        """
        entry = self._entry(alert)
        if (entry.get("retry") or {}).get("requested_at") == requested_at.isoformat():
            # Already noted: the same results applied again (a rerun) must not reset what followed.
            return
        entry["retry"] = {
            "requested_at": requested_at.isoformat(),
            "status_code": status_code,
            "outcome": "refused" if refused else None,
            "notified": {},
        }

    def mark_retry_outcome(self, event_id: str, outcome: str) -> None:
        """Note whether a requested rebuild happened (``honored``) or not (``not_honored``)."""
        retry = self.entries.get(event_id, {}).get("retry")
        if retry is not None and not retry.get("outcome"):
            retry["outcome"] = outcome

    def mark_retry_notified(self, event_id: str, target: str, at: datetime) -> None:
        """Note that a target was told a rebuild was refused or never started."""
        retry = self.entries.get(event_id, {}).get("retry")
        if retry is not None:
            retry.setdefault("notified", {})[target] = at.isoformat()

    def unresolved(self) -> dict[str, dict[str, Any]]:
        """Return the entries whose tag has not built successfully since."""
        return {event_id: entry for event_id, entry in self.entries.items() if not entry.get("resolved_at")}

    def mark_resolved(self, event_id: str, at: datetime) -> None:
        """Note that a later build of the alerted tag succeeded; reminders stop."""
        entry = self.entries.get(event_id)
        if entry is not None and not entry.get("resolved_at"):
            entry["resolved_at"] = at.isoformat()

    def mark_resolved_delivered(self, event_id: str, target: str, at: datetime) -> None:
        """Note that a target received the resolved notice of an alert."""
        entry = self.entries.get(event_id)
        if entry is not None:
            entry.setdefault("resolved", {})[target] = at.isoformat()

    def mark_reminded(self, event_id: str, target: str, at: datetime, number: int | None = None) -> None:
        """
        Note that a target received a reminder of an alert.

        :param number: which reminder it was; noting the same one twice changes nothing. ``None``
            counts one more.
        """
        entry = self.entries.get(event_id)
        if entry is None:
            return
        previous = entry.setdefault("reminders", {}).get(target, {})
        count = previous.get("count", 0)
        if number is not None and number <= count:
            return
        entry["reminders"][target] = {"count": number or count + 1, "at": at.isoformat()}

    def last_contact(self, event_id: str, target: str) -> tuple[int, datetime | None]:
        """Return how many reminders a target got for an alert, and when it last heard of it."""
        entry = self.entries.get(event_id, {})
        reminder = entry.get("reminders", {}).get(target, {})
        moment = parse_timestamp(reminder.get("at")) or parse_timestamp(
            entry.get("delivered", {}).get(target)
        )
        return reminder.get("count", 0), moment

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
        """Give the record as it is stored, entries in the order they were first delivered."""
        return dict(sorted(self.entries.items(), key=_first_delivery))


def _first_delivery(item: tuple[str, Mapping[str, Any]]) -> str:
    return min((str(at or "") for at in item[1].get("delivered", {}).values()), default="")


def _entry_moment(entry: Mapping[str, Any]) -> datetime | None:
    if entry.get("kind") in TAG_KINDS:
        # A tag stays stale or missing for as long as nobody pushes it; forgetting the alert meanwhile
        # would send it again. Once resolved, it ages like a build alert.
        return parse_timestamp(entry.get("resolved_at"))
    delivered = [parse_timestamp(at) for at in entry.get("delivered", {}).values()]
    return parse_timestamp(entry.get("build_updated")) or max((d for d in delivered if d), default=None)
