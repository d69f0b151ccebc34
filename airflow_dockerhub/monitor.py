"""The steps of one monitor cycle, apart from Airflow: read Docker Hub, judge builds, keep the record."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_dockerhub.alerts import Alert, AlertKind, due_alerts, latest_per_tag
from airflow_dockerhub.builds import Build, BuildState, parse_timestamp
from airflow_dockerhub.exceptions import CycleTimeSpent, DockerHubError, DockerHubLoginError
from airflow_dockerhub.formats import Message, render, render_health, render_tag
from airflow_dockerhub.freshness import (
    FRESH,
    FRESH_EVENT,
    TAG_KINDS,
    FreshnessRule,
    TagNotice,
    TagPush,
    TagState,
    judge,
    rule_repositories,
    rules_from_xcom,
    rules_to_xcom,
)
from airflow_dockerhub.health import RETIREMENT_ADVICE
from airflow_dockerhub.notices import REMINDER_EVENT, RESOLVED_EVENT, RETRY_EVENTS, Notice
from airflow_dockerhub.pacing import DEFAULT_RESERVE
from airflow_dockerhub.polling import BUDGET_RESERVE, PollState, plan_reads
from airflow_dockerhub.retries import rebuilds_due, retry_outcomes

if TYPE_CHECKING:
    from airflow_dockerhub.build_triggers import BuildTrigger
    from airflow_dockerhub.health import HealthNotice, MonitorHealth
    from airflow_dockerhub.hooks.dockerhub import DockerHubHook
    from airflow_dockerhub.ledger import AlertRecord
    from airflow_dockerhub.settings import MonitorSettings
    from airflow_dockerhub.targets import TargetSettings

log = logging.getLogger(__name__)

#: Pages of one listing read at most, whatever its count says.
MAX_PAGES = 1000


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
    :param unreadable: namespaces that could not be read at all, with the error: the listing failed,
        or every automated repository's history did.
    :param readable: namespaces that were read.
    :param login_rejected: when Docker Hub rejected the connection's login (or it is blocked after
        a rejection), ``docker_id``, ``reason`` (what the run's failure says, with what to do) and
        ``error`` (Docker Hub's own answer, for the monitor's alert); nothing was read then.
    :param login_worked: whether Docker Hub was read with accepted credentials, or anonymously.
    :param watched: repositories read every cycle (a build moving, a recent failure, new ones).
    :param repositories_deferred: automated repositories left for a later cycle by the rate limit.
    :param sweep_cycles: cycles it takes to read every repository at the current size and budget.
    :param sweep_bound: cycles a sweep takes at most, however many repositories start failing.
    :param requests: requests sent to Docker Hub in this cycle.
    :param tag_states: how many tags' newest build is in each state, counted before :meth:`keep_only`.
    :param freshness_rules: the freshness rules of this cycle, as
        :func:`~airflow_dockerhub.freshness.rules_to_xcom` writes them.
    :param tags: per repository with a freshness rule whose tags were read, the tags that match one of
        its rules (``name``, ``pushed_at``); a repository whose tags could not be read is absent.
    :param tags_complete: per repository in ``tags``, whether its listing held every tag.
    :param tags_absent: per repository whose listing was cut short, the tags a rule names that Docker
        Hub said, when asked for each, it does not have.
    :param retired: namespaces that had automated builds and whose every build history now answers
        404 or 410, with those answers.
    """

    builds: list[Build] = field(default_factory=list)
    repositories_seen: int = 0
    repositories_polled: int = 0
    skipped_not_automated: int = 0
    skipped_no_history: int = 0
    errors: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    readable: list[str] = field(default_factory=list)
    login_rejected: dict[str, str] | None = None
    login_worked: bool = False
    watched: int = 0
    repositories_deferred: int = 0
    sweep_cycles: int = 1
    sweep_bound: int = 1
    requests: int = 0
    tag_states: dict[str, int] = field(default_factory=dict)
    freshness_rules: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tags_complete: dict[str, bool] = field(default_factory=dict)
    tags_absent: dict[str, list[str]] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)

    def keep_only(self, keep: Callable[[Build], bool]) -> None:
        """
        Drop builds evaluation has no use for, after counting the tags' states.

        :param keep: whether a build is needed.
        """
        self.tag_states = {
            state.value: count for state, count in Counter(b.state for b in self.builds).items()
        }
        self.builds = [build for build in self.builds if keep(build)]

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
            "unreadable": dict(self.unreadable),
            "readable": list(self.readable),
            "login_rejected": self.login_rejected,
            "login_worked": self.login_worked,
            "watched": self.watched,
            "repositories_deferred": self.repositories_deferred,
            "sweep_cycles": self.sweep_cycles,
            "sweep_bound": self.sweep_bound,
            "requests": self.requests,
            "tag_states": dict(self.tag_states),
            "freshness_rules": list(self.freshness_rules),
            "tags": {name: list(tags) for name, tags in self.tags.items()},
            "tags_complete": dict(self.tags_complete),
            "tags_absent": {name: list(tags) for name, tags in self.tags_absent.items()},
            "retired": dict(self.retired),
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
            unreadable=dict(value.get("unreadable") or {}),
            readable=list(value.get("readable") or []),
            login_rejected=value.get("login_rejected"),
            login_worked=bool(value.get("login_worked")),
            watched=value.get("watched", 0),
            repositories_deferred=value.get("repositories_deferred", 0),
            sweep_cycles=value.get("sweep_cycles", 1),
            sweep_bound=value.get("sweep_bound", 1),
            requests=value.get("requests", 0),
            tag_states=dict(value.get("tag_states") or {}),
            freshness_rules=list(value.get("freshness_rules") or []),
            tags={name: list(tags) for name, tags in (value.get("tags") or {}).items()},
            tags_complete=dict(value.get("tags_complete") or {}),
            tags_absent={name: list(tags) for name, tags in (value.get("tags_absent") or {}).items()},
            retired=dict(value.get("retired") or {}),
        )

    def tag_states_now(self, now: datetime) -> list[TagState]:
        """Judge every freshness rule against the tags read; rules whose tags were not read are left out."""
        states = []
        for rule in rules_from_xcom(self.freshness_rules):
            listed = self.tags.get(rule.repository)
            tags = None if listed is None else [TagPush.from_xcom(tag) for tag in listed]
            complete = self.tags_complete.get(rule.repository, True) or (
                not rule.is_pattern and rule.tag in self.tags_absent.get(rule.repository, [])
            )
            state = judge(rule, tags, now, complete)
            if state is not None:
                states.append(state)
        return states


#: History reads in flight at once. Measured against the emulator at 50 ms round trips (see the
#: README's benchmark): 16 reaches the floor of 1,000 repositories within 1.3 times; more adds
#: connections without shortening a cycle that the rate limit paces anyway.
DEFAULT_CONCURRENCY = 16
#: The time between two cycles, which the rate-limit budget and the time to read are measured in.
DEFAULT_CYCLE_SECONDS = 300.0
#: Share of the cycle spent reading at most, so that evaluation and delivery finish before the next.
READ_SHARE = 0.8


def fetch_snapshot(
    hook: DockerHubHook,
    namespaces: Iterable[str],
    poll_state: PollState | None = None,
    *,
    now: datetime | None = None,
    max_age: timedelta = timedelta(hours=24),
    concurrency: int = DEFAULT_CONCURRENCY,
    cycle_seconds: float = DEFAULT_CYCLE_SECONDS,
    freshness: Sequence[FreshnessRule] = (),
) -> Snapshot:
    """
    Read the build history of the automated repositories in the namespaces, as many as a cycle allows.

    Histories are read ``concurrency`` at a time over the hook's pooled connections, paced by Docker
    Hub's rate-limit headers. When the rate limit allows fewer reads per cycle than there are
    repositories, :func:`~airflow_dockerhub.polling.plan_reads` chooses: watched repositories every
    cycle, the others in turns. A namespace or repository that cannot be read is noted in
    ``errors`` and the others are still read; a login Docker Hub rejects stops everything, since
    trying again per repository would lock the account.

    :param hook: the Docker Hub hook to read with.
    :param namespaces: the namespaces to read.
    :param poll_state: what earlier cycles learned (cached listings, turns, history sources);
        updated in place. ``None`` reads everything and remembers nothing.
    :param now: the moment of the cycle (aware); default now.
    :param max_age: builds last updated longer ago no longer alert, so they need no watching.
    :param concurrency: history reads in flight at once.
    :param cycle_seconds: the time between two cycles: what the rate limit's budget is counted over,
        and 80 % of it the longest the reads may take.
    :param freshness: tag freshness rules; the tags of their repositories, and only theirs, are read
        before the histories, and their requests count against the same budget.
    """
    from datetime import timezone

    now = now or datetime.now(timezone.utc)
    state = poll_state if poll_state is not None else PollState()
    hook.remember_history_sources(
        {name: seen["source"] for name, seen in state.repositories.items() if seen.get("source")}
    )
    hook.deadline = hook.pacer.clock.now() + cycle_seconds * READ_SHARE
    # Requests already in flight when the window's count comes back are spent too; the pacer must keep
    # that many in hand, or the last of each window run into a 429.
    hook.pacer.reserve = max(hook.pacer.reserve, concurrency + DEFAULT_RESERVE)
    snapshot = Snapshot()
    automated: list[str] = []
    by_namespace: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="dockerhub-read") as pool:
        for namespace in namespaces:
            try:
                names = _automated_repositories(hook, namespace, state, now, snapshot, pool)
            except DockerHubLoginError:
                raise
            except DockerHubError as error:
                log.error("Cannot list the repositories of %s: %s", namespace, error)
                snapshot.errors.append(f"{namespace}: {error}")
                snapshot.unreadable[namespace] = f"cannot list its repositories: {error}"
                continue
            automated += [f"{namespace}/{name}" for name in names]
            by_namespace[namespace] = [f"{namespace}/{name}" for name in names]

        snapshot.freshness_rules = rules_to_xcom(freshness)
        _read_tags(hook, freshness, snapshot, pool)

        # The rest of the cycle, and each window's reserve, are left to the build notifier, the
        # sensor and people sharing the account.
        budget = hook.pacer.cycle_budget(cycle_seconds * READ_SHARE)
        if budget is not None:
            budget = max(budget - hook.requests_sent - BUDGET_RESERVE, 0)
        plan = plan_reads(state, automated, budget)
        snapshot.watched, snapshot.sweep_cycles, snapshot.sweep_bound = (
            plan.watched,
            plan.sweep_cycles,
            plan.sweep_bound,
        )
        snapshot.repositories_deferred = len(plan.deferred)
        if plan.deferred:
            log.info(
                "Docker Hub's rate limit allows %s history reads this cycle for %s automated "
                "repositories: %s watched ones every cycle, the other %s in turns; a full sweep takes %s "
                "(at most %s however many start failing)",
                budget,
                len(automated),
                plan.watched,
                len(automated) - plan.watched,
                f"{plan.sweep_cycles} cycles" if plan.sweep_cycles else "forever at this budget",
                plan.sweep_bound or "forever",
            )
        results = pool.map(lambda repo_name: _read_history(hook, repo_name), plan.read)
        per_namespace: dict[str, list[bool]] = {}
        waited_out: dict[str, int] = {}
        answers: dict[str, set[str]] = {}
        for repo_name, outcome in zip(plan.read, results):
            namespace = repo_name.split("/", 1)[0]
            if isinstance(outcome, CycleTimeSpent):
                snapshot.repositories_deferred += 1
                waited_out[namespace] = waited_out.get(namespace, 0) + 1
                continue
            if isinstance(outcome, DockerHubLoginError):
                raise outcome
            if isinstance(outcome, DockerHubError):
                log.error("Cannot read the build history of %s: %s", repo_name, outcome)
                snapshot.errors.append(f"{repo_name}: {outcome}")
                per_namespace.setdefault(namespace, []).append(False)
                continue
            per_namespace.setdefault(namespace, []).append(True)
            source, builds, gone = outcome
            state.remember_read(repo_name, builds, source, now, max_age, gone=bool(gone))
            if gone:
                answers.setdefault(namespace, set()).update(gone.split(", "))
            if source is None:
                log.info("Skipping %s: automated, but neither build-history source has builds", repo_name)
                snapshot.skipped_no_history += 1
                continue
            snapshot.repositories_polled += 1
            snapshot.builds.extend(builds)
            for build in builds:
                if build.state is BuildState.UNKNOWN:
                    log.warning(
                        "Docker Hub describes build %s of %s:%s in a way not known here (%s): it "
                        "neither alerts nor resolves until that changes",
                        build.build_key,
                        repo_name,
                        build.tag,
                        {name: build.raw.get(name) for name in ("status", "state") if name in build.raw},
                    )

    for namespace in namespaces:
        if namespace in snapshot.unreadable:
            continue
        reads = per_namespace.get(namespace, [])
        if reads and not any(reads):
            snapshot.unreadable[namespace] = (
                f"no build history could be read ({len(reads)} repositories failed)"
            )
        elif not reads and waited_out.get(namespace):
            # Nothing failed, yet nothing was read: a cycle like that is no sign of health.
            reason = (
                f"no build history was read: Docker Hub's rate limit left no time for any of its "
                f"{waited_out[namespace]} repositories due this cycle"
            )
            log.error("%s: %s", namespace, reason)
            snapshot.errors.append(f"{namespace}: {reason}")
            snapshot.unreadable[namespace] = reason
        else:
            snapshot.readable.append(namespace)
            if state.builds_retired(namespace, by_namespace.get(namespace, [])):
                said = ", ".join(sorted(answers.get(namespace) or {"404"}))
                snapshot.retired[namespace] = f"every build history answered {said}"
                log.warning(
                    "Docker Hub has no build history left for any repository of %s: its automated builds "
                    "are retired. %s",
                    namespace,
                    RETIREMENT_ADVICE,
                )
    snapshot.requests = hook.requests_sent
    snapshot.login_worked = True
    return snapshot


def _automated_repositories(
    hook: DockerHubHook,
    namespace: str,
    state: PollState,
    now: datetime,
    snapshot: Snapshot,
    pool: ThreadPoolExecutor,
) -> list[str]:
    """
    List a namespace's repositories with automated builds, from the cache while its size is unchanged.

    The first page tells the size; the other pages are then read side by side.
    """
    first = hook.listing_page(namespace, 1)
    if not isinstance(first, dict) or not isinstance(first.get("results"), list):
        raise DockerHubError(f"Docker Hub's listing of {namespace} has no 'results' list")
    count = first.get("count") if isinstance(first.get("count"), int) else None
    cached = state.cached_listing(namespace, count, now)
    if cached is not None:
        snapshot.repositories_seen += count or 0
        snapshot.skipped_not_automated += (count or 0) - len(cached)
        return cached

    entries = [entry for entry in first["results"] if isinstance(entry, dict)]
    if count is not None and count > len(entries) and first.get("next"):
        # A count that lies is not followed into thousands of empty pages.
        pages = range(2, min(math.ceil(count / max(len(entries), 1)), MAX_PAGES) + 1)
        for page in pool.map(lambda number: hook.listing_page(namespace, number, within_count=True), pages):
            entries += [entry for entry in page.get("results") or [] if isinstance(entry, dict)]
    elif first.get("next"):
        # No usable count: follow the links one page after another.
        entries = list(hook.list_repositories(namespace))

    names = []
    for entry in entries:
        name = entry.get("name")
        if not name:
            continue
        known = entry.get("is_automated")
        if known is None:
            known = state.was_checked(namespace, name)
        if known is None:
            known = hook.is_automated(namespace, entry)
            state.remember_check(namespace, name, known)
        if known:
            names.append(name)
    names = sorted(set(names))
    snapshot.repositories_seen += len(entries)
    snapshot.skipped_not_automated += len(entries) - len(names)
    state.remember_listing(namespace, len(entries) if count is None else count, names, now)
    state.forget_missing(namespace, names)
    return names


def _read_history(
    hook: DockerHubHook, repo_name: str
) -> tuple[str | None, list[Build], str] | DockerHubError:
    """
    Read one repository's newest build per tag; an error is returned, to be sorted out in order.

    The third value is what every history source answered when all said they no longer exist, and
    empty otherwise.
    """
    namespace, name = repo_name.split("/", 1)
    try:
        read = hook.read_build_history(namespace, name)
    except DockerHubError as error:
        return error
    # Only the newest build of each tag matters; dropping the rest here keeps big namespaces light.
    return read.source, latest_per_tag(read.builds), read.answer if read.gone else ""


def _read_tags(
    hook: DockerHubHook, rules: Sequence[FreshnessRule], snapshot: Snapshot, pool: ThreadPoolExecutor
) -> None:
    """
    Read the tags of every repository with a freshness rule, side by side, keeping those a rule matches.

    A repository whose tags cannot be read is a read error of this cycle, never a verdict: its rules
    neither alert nor resolve until a later cycle reads it.
    """

    def read(repo_name: str) -> tuple[list[dict[str, Any]], bool, list[str]] | DockerHubError:
        namespace, name = repo_name.split("/", 1)
        try:
            listed, complete = hook.list_tags(namespace, name)
            absent = []
            if not complete:
                # A tag no longer pushed sinks below the newest pushes, out of a cut-short listing:
                # the very tag a rule is there to catch. A tag a rule names is asked for by name.
                seen = {item.get("name") for item in listed}
                for tag in sorted({r.tag for r in rules if r.repository == repo_name and not r.is_pattern}):
                    if tag in seen:
                        continue
                    found = hook.get_tag(namespace, name, tag)
                    if found is None:
                        absent.append(tag)
                    else:
                        listed.append(found)
            return listed, complete, absent
        except DockerHubLoginError:
            raise
        except DockerHubError as error:
            return error

    repositories = rule_repositories(rules)
    for repo_name, outcome in zip(repositories, pool.map(read, repositories)):
        if isinstance(outcome, CycleTimeSpent):
            snapshot.errors.append(f"{repo_name} tags: not read, the cycle's time was spent")
            continue
        if isinstance(outcome, DockerHubError):
            log.error("Cannot read the tags of %s: %s", repo_name, outcome)
            snapshot.errors.append(f"{repo_name} tags: {outcome}")
            continue
        listed, complete, absent = outcome
        if absent:
            snapshot.tags_absent[repo_name] = absent
        own_rules = [rule for rule in rules if rule.repository == repo_name]
        pushes = [TagPush.from_hub(item) for item in listed]
        snapshot.tags[repo_name] = [
            push.to_xcom() for push in pushes if any(rule.matches(push.name) for rule in own_rules)
        ]
        snapshot.tags_complete[repo_name] = complete


def summary_table(snapshot: Snapshot, alerts_due: int, now: datetime | None = None) -> str:
    """
    Format the short table that closes the fetch step's log, and what to do about retired builds.

    :param snapshot: what the fetch saw.
    :param alerts_due: how many builds are in a state that alerts (delivered before or not).
    :param now: the moment tags are judged at; default now.
    """
    from datetime import timezone

    judged = snapshot.tag_states_now(now or datetime.now(timezone.utc))
    verdicts = Counter(state.verdict for state in judged)
    states = snapshot.tag_states or {s.value: n for s, n in Counter(b.state for b in snapshot.builds).items()}
    rows = [
        ("repositories seen", snapshot.repositories_seen),
        ("repositories polled", snapshot.repositories_polled),
        ("  of them watched every cycle", snapshot.watched),
        ("left for a later cycle", snapshot.repositories_deferred),
        ("cycles per full sweep", snapshot.sweep_cycles),
        ("  at most, if many fail", snapshot.sweep_bound),
        ("skipped, not automated", snapshot.skipped_not_automated),
        ("skipped, no build history", snapshot.skipped_no_history),
        *((f"tags whose newest build is {state.value}", states.get(state.value, 0)) for state in BuildState),
        ("alerts due", alerts_due),
        ("tag freshness rules", len(snapshot.freshness_rules)),
        ("  fresh", verdicts.get(FRESH, 0)),
        ("  stale", verdicts.get("stale", 0)),
        ("  missing", verdicts.get("missing", 0)),
        ("  not read this cycle", len(snapshot.freshness_rules) - len(judged)),
        ("namespaces with retired builds", len(snapshot.retired)),
        ("read errors", len(snapshot.errors)),
        ("requests to Docker Hub", snapshot.requests),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {count:>6}" for label, count in rows]
    for namespace, answer in sorted(snapshot.retired.items()):
        lines.append(
            f"Automated builds of {namespace} are retired ({answer}); build failures can no longer be "
            f"seen. {RETIREMENT_ADVICE}"
        )
    return "\n".join(lines)


def alert_summary(alert: Alert) -> dict[str, Any]:
    """
    Describe one alert as the record keeps it, in plain JSON values.

    :param alert: the alert.
    """
    build = alert.build
    return {
        "event_id": alert.event_id,
        "kind": alert.kind.value,
        "repository": build.repo_name,
        "tag": build.tag,
        "build": build.build_key,
        "build_updated": build.last_updated.isoformat() if build.last_updated else None,
    }


@dataclass
class CyclePlan:
    """
    What one cycle will send, and what the record must learn once it is sent.

    Every field holds plain JSON values, so the plan travels between tasks as XCom.

    :param deliveries: one entry per message and target: ``event_id`` (the message id, stable across
        attempts), ``event``, ``payload``, ``target``, ``notice_ids``, ``test`` and ``label``.
    :param notices: notice id to ``{"type": "alert" | "resolved" | "reminder" | "test", "alert_id"}``.
    :param alerts: alert id to the alert as the record keeps it.
    :param resolved: ids of alerts whose tag built successfully since.
    :param already_delivered: due alerts every target already has.
    :param rebuilds: failed builds to rebuild now, as :func:`~airflow_dockerhub.retries.rebuilds_due`
        lists them.
    :param retry_outcomes: alert id to what became of its rebuild request, settled this cycle.
    :param health: the monitor's own problems after this cycle, as
        :class:`~airflow_dockerhub.health.MonitorHealth` stores them; ``None`` leaves them alone.
    """

    deliveries: list[dict[str, Any]] = field(default_factory=list)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)
    already_delivered: int = 0
    rebuilds: list[dict[str, Any]] = field(default_factory=list)
    retry_outcomes: dict[str, str] = field(default_factory=dict)
    health: dict[str, dict[str, Any]] | None = None

    def add_health_messages(self, target: str, notices: Sequence[HealthNotice], message_format) -> None:
        """Plan the delivery of notices about the monitor's own problems to a target, in its format."""
        for notice in notices:
            self.notices[notice.notice_id] = {
                "type": "health",
                "problem": notice.problem,
                "recovered": notice.recovered,
            }
            message = render_health(message_format, notice)
            self._deliver(
                message, target, f"{target}: {notice.subject} {notice.event.removeprefix('monitor.')}"
            )

    def add_tag_messages(
        self, target: str, notices: Sequence[TagNotice], message_format, now: datetime
    ) -> None:
        """Plan the delivery of notices about tags' freshness to a target, in its format."""
        for notice in notices:
            alert = notice.event != FRESH_EVENT
            self.notices[notice.notice_id] = {
                "type": "alert" if alert else "resolved",
                "alert_id": notice.alert_ids[0],
                "alert_ids": list(notice.alert_ids),
                "number": 0,
            }
            rule = notice.state.rule
            label = f"{target}: {rule.repository}:{notice.state.tag or rule.tag} {notice.event.removeprefix('tag.')}"
            self._deliver(render_tag(message_format, notice, now), target, label)

    def add_messages(self, target: str, notices: Sequence[Notice], messages: Sequence[Message]) -> None:
        """Plan the delivery of a target's messages about builds, noting the notices they carry."""
        kinds = {RESOLVED_EVENT: "resolved", REMINDER_EVENT: "reminder"}
        kinds.update(dict.fromkeys(RETRY_EVENTS.values(), "retry"))
        for notice in notices:
            kind = "test" if notice.test else kinds.get(notice.event, "alert")
            self.notices[notice.notice_id] = {
                "type": kind,
                "alert_id": notice.alert_id,
                "alert_ids": list(notice.alert_ids),
                "number": notice.number,
            }
        for message in messages:
            self._deliver(message, target, _label(message, notices, target))

    def _deliver(self, message: Message, target: str, label: str) -> None:
        self.deliveries.append(
            {
                "event_id": message.message_id,
                "event": message.event,
                "payload": message.body,
                "target": target,
                "notice_ids": list(message.notice_ids),
                "test": message.test,
                "label": label,
            }
        )


def _label(message: Message, notices: Sequence[Notice], target: str) -> str:
    if len(message.notice_ids) > 1:
        return f"{target}: {len(message.notice_ids)} notices"
    notice = next(n for n in notices if n.notice_id == message.notice_ids[0])
    return f"{target}: {notice.build.repo_name}:{notice.build.tag} {notice.event.removeprefix('build.')}"


def plan_cycle(
    snapshot: Snapshot,
    record: AlertRecord,
    now: datetime,
    settings: MonitorSettings,
    targets: Sequence[TargetSettings],
    triggers: Mapping[str, BuildTrigger] | None = None,
    health: MonitorHealth | None = None,
) -> CyclePlan:
    """
    Decide everything one cycle does: alerts each target lacks, resolved notices, reminders, rebuilds.

    A tag counts as resolved only when the snapshot holds its newest build and that build succeeded:
    a tag that could not be read this cycle is neither alerted nor resolved. Nothing here waits for a
    rebuild: whether one happened is read from the history in later cycles.

    :param snapshot: what the fetch saw.
    :param record: the alerts delivered so far.
    :param now: the moment of evaluation (aware).
    :param settings: thresholds, reminder interval, incident threshold and rebuild policy.
    :param targets: where notices go and how each wants them.
    :param triggers: repositories to their remote build triggers; none means no rebuilds.
    :param health: the monitor's own problems so far; updated in place with what this snapshot
        shows, and told to targets that have not heard of them. ``None`` skips this.
    """
    plan = CyclePlan()
    if health is not None:
        rejected = snapshot.login_rejected
        health.observe(
            now,
            snapshot.unreadable,
            snapshot.readable,
            (rejected["docker_id"], rejected.get("error") or rejected["reason"]) if rejected else None,
            snapshot.login_worked,
            snapshot.retired,
        )
        plan.health = health.to_stored()
    due = due_alerts(snapshot.builds, now, settings.thresholds)
    plan.alerts = {alert.event_id: alert_summary(alert) for alert in due}
    newest = {(build.repo_name, build.tag): build for build in latest_per_tag(snapshot.builds)}

    successes = {}
    for event_id, entry in record.entries.items():
        if entry["kind"] in TAG_KINDS:
            continue
        build = newest.get((entry["repository"], entry["tag"]))
        if build is not None and build.state is BuildState.SUCCESS:
            successes[event_id] = build
            if not entry.get("resolved_at"):
                plan.resolved.append(event_id)

    # An incident is many repositories failing now, not failures already announced hours ago.
    failing = {
        alert.build.repo_name
        for alert in due
        if alert.kind is AlertKind.FAILED and alert.event_id not in record.entries
    }
    incident = bool(settings.incident_threshold) and len(failing) >= settings.incident_threshold
    if incident:
        log.warning(
            "%s repositories failing at once, possibly a Docker Hub incident: rebuilds pause", len(failing)
        )
    plan.rebuilds = rebuilds_due(due, record.entries, triggers or {}, settings.retry_policy, now, incident)
    plan.retry_outcomes = retry_outcomes(record.entries, newest, settings.retry_policy, now)
    retry_problems = _retry_problems(record, plan.retry_outcomes, newest)

    tag_states = snapshot.tag_states_now(now)
    tag_alerts = [state for state in tag_states if state.alert_kind is not None]
    plan.alerts.update({state.event_id: state.summary() for state in tag_alerts})
    fresh_again = _tag_resolutions(snapshot, tag_states, record, now, plan)

    plan.already_delivered = sum(
        all(record.was_delivered(alert.event_id, target.conn_id) for target in targets) for alert in due
    )
    for target in targets:
        notices = [Notice.for_alert(a) for a in due if not record.was_delivered(a.event_id, target.conn_id)]
        if target.send_resolved:
            notices += resolved_notices(successes, record, target.conn_id)
        notices += _reminders(due, record, target.conn_id, now, settings.reminder_hours)
        notices += [
            notice
            for notice in retry_problems
            if target.conn_id not in record.entries[notice.alert_id]["retry"].get("notified", {})
        ]
        messages = render(target.message_format, notices, now, settings.incident_threshold)
        plan.add_messages(target.conn_id, notices, messages)
        tag_notices = [
            TagNotice.alert(state)
            for state in tag_alerts
            if not record.was_delivered(state.event_id, target.conn_id)
        ]
        if target.send_resolved:
            tag_notices += _fresh_notices(fresh_again, record, target.conn_id)
        plan.add_tag_messages(target.conn_id, tag_notices, target.message_format, now)
        if health is not None:
            plan.add_health_messages(
                target.conn_id,
                health.notices(target.conn_id, settings.unreadable_cycles, target.send_resolved),
                target.message_format,
            )
    return plan


#: How long after a tag alert was resolved a target that missed the fresh notice still gets it.
FRESH_NOTICE_WINDOW = timedelta(days=1)


def _tag_resolutions(
    snapshot: Snapshot, states: Sequence[TagState], record: AlertRecord, now: datetime, plan: CyclePlan
) -> dict[str, TagState]:
    """
    Settle the recorded tag alerts against this cycle's verdicts.

    An alert whose rule is fresh again is resolved; one replaced by a newer alert of its rule (a
    later push gone stale too, a missing tag back but late) is closed without a notice, as is one
    whose rule was removed. A rule whose tags could not be read settles nothing.

    :return: alert id to the fresh state, for alerts whose targets may be told the tag is fresh
        again (resolved now, or lately and not yet told everywhere).
    """
    by_rule = {(state.rule.repository, state.rule.tag): state for state in states}
    rules = {(rule.repository, rule.tag) for rule in rules_from_xcom(snapshot.freshness_rules)}
    fresh: dict[str, TagState] = {}
    for event_id, entry in record.entries.items():
        if entry["kind"] not in TAG_KINDS:
            continue
        key = (entry["repository"], entry["tag"])
        state = by_rule.get(key)
        resolved_at = parse_timestamp(entry.get("resolved_at"))
        orphaned = key not in rules and snapshot.login_worked
        settled = state is not None and (state.verdict == FRESH or state.event_id != event_id)
        if resolved_at is None and (orphaned or settled):
            plan.resolved.append(event_id)
        recent = resolved_at is None or now - resolved_at <= FRESH_NOTICE_WINDOW
        if state is not None and state.verdict == FRESH and recent:
            fresh[event_id] = state
    return fresh


def _fresh_notices(fresh: Mapping[str, TagState], record: AlertRecord, target: str) -> list[TagNotice]:
    """Tell a target that tags it was alerted about are pushed again: one notice per rule."""
    pending: dict[tuple[str, str], list[str]] = {}
    for event_id, state in fresh.items():
        entry = record.entries.get(event_id, {})
        if record.was_delivered(event_id, target) and target not in entry.get("resolved", {}):
            pending.setdefault((state.rule.repository, state.rule.tag), []).append(event_id)
    return [TagNotice.fresh(fresh[ids[0]], ids) for ids in pending.values()]


def resolved_notices(successes: Mapping[str, Build], record: AlertRecord, target: str) -> list[Notice]:
    """
    Tell a target that alerted tags built successfully: one notice per tag, for all its alerts.

    Only alerts the target got, and was not yet told are over, are covered.

    :param successes: alert id to the successful build that now is the newest of the alert's tag.
    :param record: the alert record.
    :param target: the target's connection id.
    """
    pending: dict[tuple[str, str, str], list[str]] = {}
    for event_id, build in successes.items():
        entry = record.entries.get(event_id, {})
        if record.was_delivered(event_id, target) and target not in entry.get("resolved", {}):
            pending.setdefault((build.repo_name, build.tag, build.build_key), []).append(event_id)
    return [Notice.resolved(alert_ids, successes[alert_ids[0]]) for alert_ids in pending.values()]


def _retry_problems(
    record: AlertRecord, settled: Mapping[str, str], newest: Mapping[tuple[str, str], Build]
) -> list[Notice]:
    """Tell of rebuilds refused or never started, while the failed build is still the newest of its tag."""
    problems = []
    for event_id, entry in record.entries.items():
        outcome = settled.get(event_id) or (entry.get("retry") or {}).get("outcome")
        build = newest.get((entry["repository"], entry["tag"]))
        if outcome in RETRY_EVENTS and build is not None and build.build_key == entry["build"]:
            problems.append(Notice.retry_problem(event_id, build, outcome))
    return problems


def _reminders(
    due: Sequence[Alert], record: AlertRecord, target: str, now: datetime, every_hours: float
) -> list[Notice]:
    if not every_hours:
        return []
    reminders = []
    for alert in due:
        if alert.kind not in (AlertKind.FAILED, AlertKind.CANCELLED) or not record.was_delivered(
            alert.event_id, target
        ):
            continue
        count, last = record.last_contact(alert.event_id, target)
        if last is not None and now - last >= timedelta(hours=every_hours):
            reminders.append(Notice.reminder(alert, count + 1))
    return reminders


def plan_test_alert(
    repository: str, now: datetime, run_id: str, targets: Sequence[TargetSettings]
) -> CyclePlan:
    """
    Plan a test alert: a made-up failed build of a repository, to every target, marked as a test.

    :param repository: ``namespace/repository``, optionally ``:tag`` (default ``latest``).
    :param now: the moment of the test.
    :param run_id: the run sending it; each run's test is a new message.
    :param targets: where it goes.
    :raise ValueError: when the repository is not ``namespace/repository``.
    """
    repo_name, _, tag = repository.strip().partition(":")
    namespace, _, name = repo_name.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(
            f"The test_alert_repository param must be namespace/repository[:tag], got {repository!r}"
        )
    notice = Notice.test_failure(namespace, name, tag or "latest", now, run_id)
    plan = CyclePlan()
    for target in targets:
        plan.add_messages(target.conn_id, [notice], render(target.message_format, [notice], now))
    return plan


def delivered_before(
    record: AlertRecord, health: MonitorHealth, delivery: Mapping[str, Any], notices: Mapping[str, Any]
) -> bool:
    """
    Tell whether the record says a message's target already has everything the message carries.

    A delivery cleared in the UI, or a run planned before another run delivered the same notices,
    must not send them again.

    :param record: the alert record as stored now.
    :param health: the monitor's own problems as stored now.
    :param delivery: one delivery of a :class:`CyclePlan`.
    :param notices: the plan's notices, by id.
    """
    target = delivery["target"]
    told = []
    for notice_id in delivery.get("notice_ids") or []:
        notice = notices.get(notice_id) or {}
        kind, alert_id = notice.get("type"), notice.get("alert_id")
        entry = record.entries.get(alert_id or "", {})
        if kind == "alert":
            told.append(record.was_delivered(alert_id, target))
        elif kind == "resolved":
            ids = notice.get("alert_ids") or [alert_id]
            told.append(all(target in record.entries.get(i, {}).get("resolved", {}) for i in ids))
        elif kind == "reminder":
            count = entry.get("reminders", {}).get(target, {}).get("count", 0)
            told.append(bool(notice.get("number")) and count >= notice["number"])
        elif kind == "retry":
            told.append(target in (entry.get("retry") or {}).get("notified", {}))
        elif kind == "health":
            told.append(health.was_told(notice["problem"], target, notice["recovered"]))
        else:
            told.append(False)
    return bool(told) and all(told)


def apply_results(
    record: AlertRecord,
    plan: CyclePlan,
    results: Iterable[Mapping[str, Any] | None],
    now: datetime,
    max_age: timedelta,
    rebuild_results: Iterable[Mapping[str, Any] | None] = (),
    health: MonitorHealth | None = None,
) -> tuple[int, int, list[dict[str, Any]]]:
    """
    Write what was delivered and requested into the record, and forget entries too old to matter.

    :param record: the record to update.
    :param plan: the cycle's plan.
    :param results: what the delivery tasks returned (``event_id`` and ``target``); failed
        deliveries return nothing.
    :param rebuild_results: what the rebuild requests returned (``retry_id``, ``status_code``,
        ``requested_at``). A 4xx is a refusal for good; any other answer, or none (status 0), waits
        for a new build like a 2xx does.
    :param now: the current moment (aware).
    :param max_age: the window within which builds are looked at.
    :param health: the monitor's own problems, to note which targets were told; ``None`` skips them.
    :return: how many alerts reached a target for the first time, how many old entries were dropped,
        and the deliveries that did not succeed; those a target refused for good carry ``refused`` (the
        status) and are recorded as handled, so they are not sent again.
    """
    results = [r for r in results if r and r.get("event_id")]
    done = {(r["event_id"], r.get("target")) for r in results}
    refusals = {(r["event_id"], r.get("target")): r.get("status_code") for r in results if r.get("refused")}
    added = 0
    undelivered = []
    for delivery in plan.deliveries:
        target = delivery["target"]
        key = (delivery["event_id"], target)
        if key not in done:
            undelivered.append(delivery)
            continue
        if key in refusals:
            # Noted as handled, so it is not sent again, and reported once by the caller.
            undelivered.append({**delivery, "refused": refusals[key]})
        for notice_id in delivery["notice_ids"]:
            notice = plan.notices.get(notice_id, {})
            if notice.get("type") == "alert":
                added += record.mark_delivered(plan.alerts[notice["alert_id"]], target, now)
                if key in refusals:
                    record.entries[notice["alert_id"]].setdefault("refused", {})[target] = refusals[key]
            elif notice.get("type") == "resolved":
                for alert_id in notice.get("alert_ids") or [notice["alert_id"]]:
                    record.mark_resolved(alert_id, now)
                    record.mark_resolved_delivered(alert_id, target, now)
            elif notice.get("type") == "reminder":
                record.mark_reminded(notice["alert_id"], target, now, notice.get("number") or None)
            elif notice.get("type") == "retry":
                record.mark_retry_notified(notice["alert_id"], target, now)
            elif notice.get("type") == "health" and health is not None:
                health.mark_told(notice["problem"], target, notice["recovered"], now)
    for event_id in plan.resolved:
        record.mark_resolved(event_id, now)
    for event_id, outcome in plan.retry_outcomes.items():
        record.mark_retry_outcome(event_id, outcome)
    for result in rebuild_results:
        if result and result.get("retry_id") in plan.alerts:
            status = int(result["status_code"])
            requested_at = parse_timestamp(result.get("requested_at")) or now
            record.mark_retry_requested(
                plan.alerts[result["retry_id"]],
                requested_at,
                status,
                refused=400 <= status < 500 and status != 429,
            )
    pruned = record.prune(now, max_age)
    return added, pruned, undelivered
