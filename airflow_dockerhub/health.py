"""The monitor watching itself: unreadable namespaces, rejected logins, retired builds, told once."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_dockerhub.builds import parse_timestamp

UNREADABLE_EVENT = "monitor.namespace_unreadable"
READABLE_EVENT = "monitor.namespace_readable"
CREDENTIALS_REJECTED_EVENT = "monitor.credentials_rejected"
CREDENTIALS_ACCEPTED_EVENT = "monitor.credentials_accepted"
BUILDS_RETIRED_EVENT = "monitor.builds_retired"

#: Cycles in a row a namespace may be unreadable before one alert says so. A single failed listing
#: is usually a Docker Hub hiccup that the next cycle does not see.
DEFAULT_UNREADABLE_CYCLES = 3

#: How long a problem that went away is remembered, so that a recovery notice that could not be
#: delivered at once is still sent, and only once.
KEEP_RECOVERED = timedelta(days=1)

NAMESPACE = "namespace"
CREDENTIALS = "credentials"
RETIRED = "retired"

#: What a team does once Docker Hub no longer keeps build histories.
RETIREMENT_ADVICE = (
    "Move the builds to another CI (GitHub Actions, GitLab CI, Bitbucket Pipelines, ...) that pushes "
    "to Docker Hub, and keep or add freshness rules (dockerhub_freshness_rules) so that the monitor "
    "still tells when images stop arriving; then unset dockerhub_namespaces, and only those tags are read."
)


@dataclass(frozen=True)
class HealthNotice:
    """
    One thing to tell the targets about the monitor itself.

    :param notice_id: identifies the notice; the same on every attempt to deliver it.
    :param event: the event name receivers route on.
    :param problem: the key of the problem in :class:`MonitorHealth`.
    :param kind: ``namespace``, ``credentials`` or ``retired``.
    :param subject: the namespace, or the Docker ID whose login was rejected.
    :param since: when the problem was first seen.
    :param cycles: in how many cycles in a row it was seen.
    :param error: the last error, without secrets.
    :param recovered: whether the notice says the problem is over.
    """

    notice_id: str
    event: str
    problem: str
    kind: str
    subject: str
    since: str
    cycles: int
    error: str
    recovered: bool = False

    @property
    def summary(self) -> str:
        """Say in one sentence what is wrong, or that it is over, and what to do."""
        if self.kind == RETIRED:
            return (
                f"Docker Hub no longer has build histories for the namespace {self.subject} "
                f"({_clause(self.error)}): its automated builds are retired, and build failures can no longer "
                f"be seen. {RETIREMENT_ADVICE}"
            )
        if self.kind == CREDENTIALS:
            if self.recovered:
                return f"Docker Hub accepts the credentials of {self.subject} again."
            return (
                f"Docker Hub rejected the credentials of {self.subject}: {_clause(self.error)}. The monitor "
                "reads nothing with them and tries no login for an hour, or until the connection's "
                "access token changes."
            )
        if self.recovered:
            return f"The Docker Hub namespace {self.subject} can be read again."
        return (
            f"The Docker Hub namespace {self.subject} could not be read in {self.cycles} cycles in a row "
            f"since {self.since}: {_clause(self.error)}. Its builds are not watched until it can be read again."
        )


def _clause(error: str) -> str:
    """Fit an error message inside a sentence: a server's own final stop would double the period."""
    return error.strip().rstrip(".!?;:")


@dataclass
class MonitorHealth:
    """
    Problems of the monitor itself, keyed by ``namespace:<name>``, ``retired:<name>`` or ``credentials``.

    Each problem says when it began, in how many cycles in a row it was seen, the last error, which
    targets were told (``alerted``) and, once it is over, when (``recovered_at``) and which targets
    were told that (``recovered``).

    :param problems: problem key to its state, as stored.
    """

    problems: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, stored: Any, setting: str) -> MonitorHealth:
        """
        Read the stored state, or start an empty one when nothing is stored.

        :param stored: the decoded stored value, or ``None``.
        :param setting: where it came from, named in the error.
        :raise ValueError: when the value is not a JSON object of objects.
        """
        if stored is None or stored == "":
            return cls()
        if not isinstance(stored, Mapping) or not all(isinstance(v, Mapping) for v in stored.values()):
            raise ValueError(f"{setting} is not a JSON object of monitor problems; delete it to start over")
        return cls({str(key): _with_defaults(value) for key, value in stored.items()})

    def to_stored(self) -> dict[str, dict[str, Any]]:
        """Give the problems as they are stored, sorted by key."""
        return {key: dict(value) for key, value in sorted(self.problems.items())}

    def observe(
        self,
        now: datetime,
        unreadable: Mapping[str, str] | None = None,
        readable: Iterable[str] = (),
        rejected: tuple[str, str] | None = None,
        login_worked: bool = False,
        retired: Mapping[str, str] | None = None,
    ) -> None:
        """
        Take in what one cycle saw.

        :param now: the moment of the cycle.
        :param unreadable: namespaces that could not be read, with the error.
        :param readable: namespaces that were read.
        :param rejected: the Docker ID and Docker Hub's reason, when the login was rejected.
        :param login_worked: whether the cycle read Docker Hub with accepted credentials, or with none.
        :param retired: namespaces whose every build history answered that it no longer exists, with
            what was answered. A readable namespace not among them has histories again: its
            retirement is forgotten without a notice, as nobody needs to act on it.
        """
        for namespace, error in (unreadable or {}).items():
            self._seen(f"{NAMESPACE}:{namespace}", NAMESPACE, namespace, error, now)
        readable = list(readable)
        for namespace in readable:
            self._over(f"{NAMESPACE}:{namespace}", now)
        for namespace, answer in (retired or {}).items():
            self._seen(f"{RETIRED}:{namespace}", RETIRED, namespace, answer, now)
        for namespace in readable:
            if namespace not in (retired or {}):
                self.problems.pop(f"{RETIRED}:{namespace}", None)
        if rejected is not None:
            self._seen(CREDENTIALS, CREDENTIALS, rejected[0], rejected[1], now)
        elif login_worked:
            self._over(CREDENTIALS, now)
        for key in [
            key
            for key, problem in self.problems.items()
            if (over := parse_timestamp(problem.get("recovered_at"))) and now - over > KEEP_RECOVERED
        ]:
            del self.problems[key]

    def _seen(self, key: str, kind: str, subject: str, error: str, now: datetime) -> None:
        problem = self.problems.get(key)
        if problem is None or problem.get("recovered_at") or problem.get("subject") != subject:
            problem = self.problems[key] = _with_defaults(
                {"kind": kind, "subject": subject, "since": now.isoformat()}
            )
        problem["cycles"] += 1
        problem["error"] = error

    def _over(self, key: str, now: datetime) -> None:
        problem = self.problems.get(key)
        if problem is None or problem.get("recovered_at"):
            return
        if problem["alerted"]:
            problem["recovered_at"] = now.isoformat()
        else:
            # Nobody was told of it, so there is nothing to take back.
            del self.problems[key]

    def notices(self, target: str, unreadable_cycles: int, send_resolved: bool) -> list[HealthNotice]:
        """
        Say what a target must be told now.

        That is problems it has not heard of and, when it wants resolved notices, problems it heard
        of that are over.

        :param target: the target's connection id.
        :param unreadable_cycles: after how many cycles in a row an unreadable namespace is told; a
            rejected login is told at once, since it stops everything.
        :param send_resolved: whether the target wants to hear that a problem is over.
        """
        notices = []
        for key, problem in self.problems.items():
            if problem.get("recovered_at"):
                if send_resolved and target in problem["alerted"] and target not in problem["recovered"]:
                    notices.append(_notice(key, problem, recovered=True))
                continue
            # A rejected login stops everything and a retirement is final: both are told at once.
            threshold = unreadable_cycles if problem["kind"] == NAMESPACE else 1
            if not threshold:
                continue
            if problem["cycles"] >= threshold and target not in problem["alerted"]:
                notices.append(_notice(key, problem, recovered=False))
        return notices

    def was_told(self, problem: str, target: str, recovered: bool) -> bool:
        """Tell whether a target was told of a problem, or that it is over."""
        state = self.problems.get(problem) or {}
        return target in state.get("recovered" if recovered else "alerted", {})

    def add_marks(self, other: MonitorHealth) -> None:
        """Take over who was told what from another copy of the same problems (same key and start)."""
        for key, problem in self.problems.items():
            theirs = other.problems.get(key)
            if theirs is not None and theirs.get("since") == problem.get("since"):
                for mark in ("alerted", "recovered"):
                    for target, at in theirs[mark].items():
                        problem[mark].setdefault(target, at)

    def mark_told(self, problem: str, target: str, recovered: bool, at: datetime) -> None:
        """Note that a target was told of a problem, or that it is over; noting it again changes nothing."""
        state = self.problems.get(problem)
        if state is not None:
            state["recovered" if recovered else "alerted"].setdefault(target, at.isoformat())


def _with_defaults(value: Mapping[str, Any]) -> dict[str, Any]:
    problem = {"cycles": 0, "error": "", "alerted": {}, "recovered_at": None, "recovered": {}}
    problem.update(value)
    problem["alerted"] = dict(problem["alerted"] or {})
    problem["recovered"] = dict(problem["recovered"] or {})
    return problem


def _notice(key: str, problem: Mapping[str, Any], recovered: bool) -> HealthNotice:
    credentials = problem["kind"] == CREDENTIALS
    if problem["kind"] == RETIRED:
        event = BUILDS_RETIRED_EVENT
    elif recovered:
        event = CREDENTIALS_ACCEPTED_EVENT if credentials else READABLE_EVENT
    else:
        event = CREDENTIALS_REJECTED_EVENT if credentials else UNREADABLE_EVENT
    return HealthNotice(
        notice_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dockerhub-monitor:{key}:{problem['since']}:{event}")),
        event=event,
        problem=key,
        kind=problem["kind"],
        subject=problem["subject"],
        since=problem["since"],
        cycles=problem["cycles"],
        error=problem["error"],
        recovered=recovered,
    )
