"""The steps of one monitor cycle, apart from Airflow: read Docker Hub, judge builds, keep the record."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_dockerhub.alerts import Alert, Thresholds, due_alerts, latest_per_tag
from airflow_dockerhub.builds import Build, BuildState
from airflow_dockerhub.exceptions import DockerHubError, DockerHubLoginError
from airflow_dockerhub.payloads import EVENT_NAMES, webhook_payload

if TYPE_CHECKING:
    from airflow_dockerhub.hooks.dockerhub import DockerHubHook
    from airflow_dockerhub.ledger import AlertRecord

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """
    What one fetch saw: the newest build of every tag, and what it could not see.

    :param builds: the newest build of every repository and tag.
    :param repositories_seen: repositories listed in the namespaces.
    :param repositories_polled: automated repositories whose history was read.
    :param skipped_not_automated: repositories without automated builds.
    :param skipped_no_history: automated repositories with no history in either source.
    :param errors: what could not be read, one line each.
    """

    builds: list[Build] = field(default_factory=list)
    repositories_seen: int = 0
    repositories_polled: int = 0
    skipped_not_automated: int = 0
    skipped_no_history: int = 0
    errors: list[str] = field(default_factory=list)

    def to_xcom(self) -> dict[str, Any]:
        """Turn the snapshot into plain JSON values; builds keep their raw fields and their source."""
        return {
            "builds": [
                {
                    "namespace": build.namespace,
                    "repository": build.repository,
                    "source": build.source,
                    "build": build.raw,
                }
                for build in self.builds
            ],
            "repositories_seen": self.repositories_seen,
            "repositories_polled": self.repositories_polled,
            "skipped_not_automated": self.skipped_not_automated,
            "skipped_no_history": self.skipped_no_history,
            "errors": list(self.errors),
        }

    @classmethod
    def from_xcom(cls, value: Mapping[str, Any]) -> Snapshot:
        """Read a snapshot back from :meth:`to_xcom`'s form."""
        builds = [
            Build.from_source(item["source"], item["namespace"], item["repository"], item["build"])
            for item in value.get("builds", [])
        ]
        return cls(
            builds=builds,
            repositories_seen=value.get("repositories_seen", 0),
            repositories_polled=value.get("repositories_polled", 0),
            skipped_not_automated=value.get("skipped_not_automated", 0),
            skipped_no_history=value.get("skipped_no_history", 0),
            errors=list(value.get("errors", [])),
        )


def fetch_snapshot(hook: DockerHubHook, namespaces: Iterable[str]) -> Snapshot:
    """
    Read the build history of every automated repository in the namespaces.

    A namespace or repository that cannot be read is noted in ``errors`` and the others are still
    read; a login Docker Hub rejects stops everything, since trying again per repository would lock
    the account.

    :param hook: the Docker Hub hook to read with.
    :param namespaces: the namespaces to read.
    """
    snapshot = Snapshot()
    for namespace in namespaces:
        try:
            repositories = list(hook.list_repositories(namespace))
        except DockerHubLoginError:
            raise
        except DockerHubError as error:
            log.error("Cannot list the repositories of %s: %s", namespace, error)
            snapshot.errors.append(f"{namespace}: {error}")
            continue

        snapshot.repositories_seen += len(repositories)
        for repository in repositories:
            _read_repository(hook, namespace, repository, snapshot)
    snapshot.builds = latest_per_tag(snapshot.builds)
    return snapshot


def _read_repository(
    hook: DockerHubHook, namespace: str, repository: dict[str, Any], snapshot: Snapshot
) -> None:
    name = repository.get("name")
    if not name:
        return
    try:
        if not hook.is_automated(namespace, repository):
            snapshot.skipped_not_automated += 1
            return
        history = hook.get_build_history(namespace, name)
    except DockerHubLoginError:
        raise
    except DockerHubError as error:
        log.error("Cannot read the build history of %s/%s: %s", namespace, name, error)
        snapshot.errors.append(f"{namespace}/{name}: {error}")
        return

    if history is None:
        log.info("Skipping %s/%s: automated, but neither build-history source has builds", namespace, name)
        snapshot.skipped_no_history += 1
        return
    snapshot.repositories_polled += 1
    snapshot.builds.extend(history[1])


def summary_table(snapshot: Snapshot, alerts_due: int) -> str:
    """
    Format the short table that closes the fetch step's log.

    :param snapshot: what the fetch saw.
    :param alerts_due: how many builds are in a state that alerts (delivered before or not).
    """
    states = Counter(build.state for build in snapshot.builds)
    rows = [
        ("repositories seen", snapshot.repositories_seen),
        ("repositories polled", snapshot.repositories_polled),
        ("skipped, not automated", snapshot.skipped_not_automated),
        ("skipped, no build history", snapshot.skipped_no_history),
        *((f"tags whose newest build is {state.value}", states.get(state, 0)) for state in BuildState),
        ("alerts due", alerts_due),
        ("read errors", len(snapshot.errors)),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {count:>6}" for label, count in rows)


def alert_summary(alert: Alert, detected_at: datetime) -> dict[str, Any]:
    """
    Describe one alert as delivery and the record need it, in plain JSON values.

    :param alert: the alert.
    :param detected_at: when the monitor noticed it; stamped into the payload.
    """
    build = alert.build
    return {
        "event_id": alert.event_id,
        "event": EVENT_NAMES[alert.kind],
        "kind": alert.kind.value,
        "repository": build.repo_name,
        "tag": build.tag,
        "build": build.build_key,
        "build_updated": build.last_updated.isoformat() if build.last_updated else None,
        "payload": webhook_payload(alert, detected_at),
    }


def undelivered_alerts(
    snapshot: Snapshot, record: AlertRecord, now: datetime, thresholds: Thresholds
) -> tuple[list[dict[str, Any]], int]:
    """
    List the alerts due now that the record does not hold as delivered.

    :param snapshot: what the fetch saw.
    :param record: the alerts delivered so far.
    :param now: the moment of evaluation (aware).
    :param thresholds: the limits builds are judged against.
    :return: the alerts to deliver, and how many due alerts were already delivered.
    """
    due = due_alerts(snapshot.builds, now, thresholds)
    fresh = [alert for alert in due if not record.was_delivered(alert.event_id)]
    return [alert_summary(alert, now) for alert in fresh], len(due) - len(fresh)


def record_deliveries(
    record: AlertRecord,
    alerts: Iterable[Mapping[str, Any]],
    results: Iterable[Mapping[str, Any] | None],
    now: datetime,
    max_age: timedelta,
) -> tuple[int, int, list[Mapping[str, Any]]]:
    """
    Add the alerts whose delivery succeeded to the record, and forget entries too old to matter.

    :param record: the record to update.
    :param alerts: the alerts handed to delivery.
    :param results: what the delivery tasks returned; failed deliveries return nothing.
    :param now: the current moment (aware).
    :param max_age: the window within which builds are looked at.
    :return: how many alerts were newly recorded, how many old entries were dropped, and the alerts
        that were not delivered.
    """
    delivered_ids = {result["event_id"] for result in results if result and result.get("event_id")}
    alerts = list(alerts)
    delivered = [alert for alert in alerts if alert["event_id"] in delivered_ids]
    undelivered = [alert for alert in alerts if alert["event_id"] not in delivered_ids]
    added = record.mark_delivered(delivered, now)
    pruned = record.prune(now, max_age)
    return added, pruned, undelivered
