"""Rebuilding failed builds: when to ask Docker Hub for a rebuild, and whether it happened."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_dockerhub.alerts import Alert, AlertKind
from airflow_dockerhub.build_triggers import BuildTrigger, find_trigger
from airflow_dockerhub.builds import Build, parse_timestamp

#: Docker Hub ignores a trigger call that comes within five minutes of the last one for a repository.
TRIGGER_SPACING = timedelta(minutes=5)


class RetryOutcome(str, enum.Enum):
    """What became of a rebuild request."""

    HONORED = "honored"
    NOT_HONORED = "not_honored"
    REFUSED = "refused"


@dataclass(frozen=True)
class RetryPolicy:
    """
    How eagerly failed builds are rebuilt.

    :param limit: rebuild requests per repository and tag within the window; 0 turns rebuilds off.
    :param window_hours: the window the limit counts in.
    :param confirm_minutes: how long a new build of the tag may take to appear before the request
        counts as not honored.
    """

    limit: int = 1
    window_hours: float = 24
    confirm_minutes: float = 30


def rebuilds_due(
    alerts: Sequence[Alert],
    record_entries: Mapping[str, Mapping[str, Any]],
    table: Mapping[str, BuildTrigger],
    policy: RetryPolicy,
    now: datetime,
    paused: bool,
) -> list[dict[str, Any]]:
    """
    List the failed builds to rebuild now.

    A failed build is rebuilt when its repository (or repository and tag) has a trigger, no rebuild
    was requested for it yet, the tag's requests within the window stay under the limit, the
    repository's last request is more than five minutes old, and no incident pauses rebuilds. Only the
    failed tag is rebuilt.

    :param alerts: the alerts due this cycle; only failures are rebuilt.
    :param record_entries: the alert record's entries, which hold past requests under ``retry``.
    :param table: repositories to their triggers.
    :param policy: limits.
    :param now: the current moment.
    :param paused: whether an incident pauses rebuilds this cycle.
    :return: one ``{"retry_id", "repository", "tag", "build"}`` per rebuild, ``retry_id`` being the
        alert's event id.
    """
    if paused or not policy.limit or not table:
        return []
    requests = list(_requests(record_entries.values()))
    due = []
    for alert in alerts:
        build = alert.build
        if not build.tag or alert.kind is not AlertKind.FAILED:
            continue
        if find_trigger(table, build.repo_name, build.tag) is None:
            continue
        if record_entries.get(alert.event_id, {}).get("retry"):
            continue
        window_start = now - timedelta(hours=policy.window_hours)
        same_tag = [
            at
            for repo, tag, at in requests
            if (repo, tag) == (build.repo_name, build.tag) and at > window_start
        ]
        same_repo = [at for repo, _, at in requests if repo == build.repo_name]
        if len(same_tag) >= policy.limit or (same_repo and now - max(same_repo) < TRIGGER_SPACING):
            continue
        due.append(
            {
                "retry_id": alert.event_id,
                "repository": build.repo_name,
                "tag": build.tag,
                "build": build.build_key,
            }
        )
        requests.append((build.repo_name, build.tag, now))
    return due


def retry_outcomes(
    record_entries: Mapping[str, Mapping[str, Any]],
    newest: Mapping[tuple[str, str], Build],
    policy: RetryPolicy,
    now: datetime,
) -> dict[str, str]:
    """
    Decide what became of pending rebuild requests.

    A request is honored once a build of the tag newer than the request shows up; a 2xx answer alone
    proves nothing. With none after ``confirm_minutes`` it is not honored. A tag the cycle could not
    read is left pending.

    :param record_entries: the alert record's entries.
    :param newest: the newest build of each ``(repository, tag)`` this cycle.
    :param policy: the confirmation time.
    :param now: the current moment.
    :return: event id to outcome, for requests settled this cycle.
    """
    settled = {}
    for event_id, entry in record_entries.items():
        retry = entry.get("retry") or {}
        requested = parse_timestamp(retry.get("requested_at"))
        if requested is None or retry.get("outcome"):
            continue
        build = newest.get((entry["repository"], entry["tag"]))
        if build is None:
            continue
        if (
            build.build_key != entry["build"]
            and build.created is not None
            and build.created >= requested - TRIGGER_SPACING
        ):
            settled[event_id] = RetryOutcome.HONORED.value
        elif now - requested > timedelta(minutes=policy.confirm_minutes):
            settled[event_id] = RetryOutcome.NOT_HONORED.value
    return settled


def _requests(entries: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str, datetime]]:
    for entry in entries:
        requested = parse_timestamp((entry.get("retry") or {}).get("requested_at"))
        if requested is not None:
            yield entry["repository"], entry["tag"], requested
