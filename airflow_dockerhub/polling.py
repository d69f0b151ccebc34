"""
Which repositories a cycle reads, when Docker Hub's rate limit does not allow reading all of them.

Repositories with a build queued or running are read every cycle, and so are those with a recent
failure, as long as they take at most half of what is left; the others take turns, never read and
least recently read first, so that every repository is read within a bounded
number of cycles. What the choice needs from earlier cycles is kept in :class:`PollState`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_dockerhub.builds import Build, BuildState, parse_timestamp

#: How long a namespace's list of automated repositories is reused while its size stays the same.
LISTING_TTL = timedelta(days=1)
#: Requests kept out of a cycle's budget for the unexpected: a token renewal, a second history source.
BUDGET_RESERVE = 5
#: Why a repository is read every cycle: a build queued or running, or a recent failure.
ACTIVE = "active"
FAILING = "failing"


@dataclass
class PollState:
    """
    What the monitor remembers between cycles about reading Docker Hub, as stored (plain JSON).

    ``namespaces`` maps a namespace to ``listed_at`` (when it was last listed in full), ``count`` (the
    listing's size then), ``automated`` (names of its repositories with automated builds) and
    ``checked`` (name to whether it has automated builds, for listings that do not say).
    ``repositories`` maps ``namespace/name`` to ``read_at`` (when its history was last read),
    ``watch`` (``active`` when its last reading showed a build queued or running, ``failing`` for a
    recent failure, else null), ``source`` (the history source that answered) and ``gone`` (every
    source answered 404 or 410). A namespace whose histories ever had builds is marked
    ``had_builds``, so that its histories vanishing reads as Docker Hub retiring its builds.

    :param namespaces: per namespace, its cached listing.
    :param repositories: per repository, what its last reading showed.
    """

    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, stored: Any, setting: str) -> PollState:
        """
        Read the stored state; anything unreadable starts over, since it only saves requests.

        :param stored: the decoded stored value, or ``None``.
        :param setting: where it came from (unused: a bad value is simply replaced).
        """
        if not isinstance(stored, Mapping):
            return cls()
        namespaces = stored.get("namespaces")
        repositories = stored.get("repositories")
        return cls(
            {str(k): dict(v) for k, v in namespaces.items() if isinstance(v, Mapping)}
            if isinstance(namespaces, Mapping)
            else {},
            {str(k): dict(v) for k, v in repositories.items() if isinstance(v, Mapping)}
            if isinstance(repositories, Mapping)
            else {},
        )

    def to_stored(self) -> dict[str, Any]:
        """Give the state as it is stored."""
        return {"namespaces": self.namespaces, "repositories": self.repositories}

    def cached_listing(self, namespace: str, count: int | None, now: datetime) -> list[str] | None:
        """
        Return the namespace's automated repositories from the last full listing, if still good.

        :param count: the size the listing reports now; a different size means repositories were
            added or removed, so the cache is not used.
        :param now: the current moment.
        """
        cached = self.namespaces.get(namespace)
        if not cached or count is None or cached.get("count") != count:
            return None
        listed_at = parse_timestamp(cached.get("listed_at"))
        if listed_at is None or now - listed_at > LISTING_TTL:
            return None
        return list(cached.get("automated") or [])

    def remember_listing(self, namespace: str, count: int, automated: Sequence[str], now: datetime) -> None:
        """Keep a full listing of a namespace: its size and its repositories with automated builds."""
        self.namespaces[namespace] = {
            **self.namespaces.get(namespace, {}),
            "listed_at": now.isoformat(),
            "count": count,
            "automated": list(automated),
        }

    def was_checked(self, namespace: str, name: str) -> bool | None:
        """Tell whether a repository the listing does not describe has automated builds, if known."""
        return (self.namespaces.get(namespace) or {}).get("checked", {}).get(name)

    def remember_check(self, namespace: str, name: str, automated: bool) -> None:
        """Note whether a repository the listing does not describe has automated builds."""
        self.namespaces.setdefault(namespace, {}).setdefault("checked", {})[name] = automated

    def remember_read(
        self,
        repo_name: str,
        builds: Iterable[Build],
        source: str | None,
        now: datetime,
        max_age: timedelta,
        gone: bool = False,
    ) -> None:
        """
        Note what a repository's history showed.

        :param builds: the newest build of each of its tags.
        :param source: the history source that answered, ``None`` when neither had builds.
        :param max_age: builds last updated longer ago than this no longer alert.
        :param gone: whether every history source answered 404 or 410.
        """
        builds = list(builds)
        # A source remembered from before counts too: state stored before this mark existed.
        had_builds = bool(source and builds) or bool((self.repositories.get(repo_name) or {}).get("source"))
        reasons = {_watch_reason(build, now, max_age) for build in builds}
        self.repositories[repo_name] = {
            "read_at": now.isoformat(),
            "watch": ACTIVE if ACTIVE in reasons else FAILING if FAILING in reasons else None,
            "source": source,
            "gone": gone,
        }
        if had_builds:
            self.namespaces.setdefault(repo_name.split("/", 1)[0], {})["had_builds"] = True

    def builds_retired(self, namespace: str, automated: Sequence[str]) -> bool:
        """
        Tell whether a namespace's build histories are all gone, though it had automated builds.

        Every automated repository's last reading, in this cycle or in its last turn, must have found
        every history source answering 404 or 410; a repository not read yet keeps the answer open.

        :param namespace: the namespace.
        :param automated: its automated repositories, as ``namespace/name``.
        """
        if not automated or not (self.namespaces.get(namespace) or {}).get("had_builds"):
            return False
        return all((self.repositories.get(repo_name) or {}).get("gone") for repo_name in automated)

    def forget_missing(self, namespace: str, present: Iterable[str]) -> None:
        """Drop repositories of a namespace that its listing no longer has."""
        keep = {f"{namespace}/{name}" for name in present}
        for repo_name in [r for r in self.repositories if r.startswith(f"{namespace}/") and r not in keep]:
            del self.repositories[repo_name]


def _watch_reason(build: Build, now: datetime, max_age: timedelta) -> str | None:
    """Tell why a build calls for reading its repository every cycle: moving, or a recent failure."""
    # An unknown state is most likely a build moving through a phase Docker Hub added.
    if build.state in (BuildState.QUEUED, BuildState.BUILDING, BuildState.UNKNOWN):
        return ACTIVE
    updated = build.last_updated or build.created
    recent = updated is not None and now - updated <= max_age
    return FAILING if recent and build.state in (BuildState.FAILED, BuildState.CANCELLED) else None


@dataclass(frozen=True)
class ReadPlan:
    """
    The repositories a cycle reads, in order, and what waits for a later cycle.

    :param read: ``namespace/name`` to read now, watched ones first.
    :param deferred: repositories left for later cycles.
    :param watched: how many of ``read`` are read every cycle.
    :param sweep_cycles: how many cycles it takes, at this size and budget, to read every repository.
    :param sweep_bound: how many cycles a sweep can take at most while the builds in progress stay as
        many: even if failures took their whole half, the turns still read this fast.
    """

    read: list[str]
    deferred: list[str]
    watched: int
    sweep_cycles: int
    sweep_bound: int = 1


def plan_reads(state: PollState, repositories: Sequence[str], budget: int | None) -> ReadPlan:
    """
    Choose the repositories to read in one cycle.

    :param state: what earlier cycles saw.
    :param repositories: every automated repository, as ``namespace/name``.
    :param budget: history reads the cycle may make; ``None`` reads them all.
    """
    active, failing, rest = [], [], []
    for repo_name in repositories:
        watch = (state.repositories.get(repo_name) or {}).get("watch")
        # Stored before reasons were told apart: true meant a build in progress or a failure.
        (active if watch in (ACTIVE, True) else failing if watch == FAILING else rest).append(repo_name)
    if budget is None or len(active) + len(failing) + len(rest) <= budget:
        return ReadPlan(active + failing + rest, [], len(active) + len(failing), 1, 1)

    def least_recently_read(names: list[str]) -> list[str]:
        # Never read first; the name breaks ties, so turns are the same in every run.
        return sorted(names, key=lambda r: ((state.repositories.get(r) or {}).get("read_at") or "", r))

    read = active[:budget]
    room = budget - len(read)
    not_moving = len(failing) + len(rest)
    # A failed build is final: what comes next is a new build, which the turns find too. So
    # failures take at most half of what moving builds leave, and the turns never starve, however
    # many repositories fail at once.
    failing = least_recently_read(failing)
    every_cycle = failing[: room // 2]
    read += every_cycle
    rest = least_recently_read(rest + failing[room // 2 :])
    turns = budget - len(read)
    read += rest[:turns]
    deferred = active[budget:] + rest[turns:]
    sweep = math.ceil(len(rest) / turns) if turns else 0
    # Failures take at most half the room, so at least the other half goes to turns.
    bound = math.ceil(not_moving / math.ceil(room / 2)) if room else 0
    return ReadPlan(read, deferred, min(len(active), budget) + len(every_cycle), sweep, bound)
