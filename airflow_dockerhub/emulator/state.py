"""In-memory Docker Hub state: repositories, their builds, users and issued tokens."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

#: How a repository's builds can be read: the legacy ``/buildhistory/`` endpoint, the audit-action
#: endpoint of the newer build service, or not at all.
HISTORY_KINDS = ("legacy", "audit", "none")

#: ``POST /v2/auth/token`` tokens expire after ten minutes on Docker Hub.
ACCESS_TOKEN_TTL = 600.0
#: ``POST /v2/users/login`` tokens were observed to carry a one-month ``exp``.
LOGIN_TOKEN_TTL = 30 * 24 * 3600.0

#: Run-time settings :meth:`HubState.configure` and ``POST /_emulator/settings`` change.
SETTINGS = ("latency", "rate_limit", "rate_window")
#: Docker Hub counts its rate limits per window; the emulator's default window is a minute.
DEFAULT_RATE_WINDOW = 60.0
#: Counters of :meth:`HubState.stats`.
STAT_NAMES = ("requests", "rate_limited", "faults", "dropped")

# Fixed so that uuids derived from build codes and repository names are the same in every run.
_UUID_ROOT = uuid.UUID("6f1c1d3e-2b7a-4d0c-9a56-0e8f5b1c2d3a")
_FIRST_BUILD_ID = 23028001

# Numeric build statuses used by the emulator itself; Docker Hub has more (1-9 and 11 are phases).
SUCCESS = 10
FAILED = -1
CANCELLED = -4
QUEUED = 0
BUILDING = 3


def format_timestamp(moment: datetime) -> str:
    """
    Format a moment as Docker Hub's v2 API does, in UTC with microseconds and ``Z``.

    :param moment: an aware datetime.
    """
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def derived_uuid(*parts: str) -> str:
    """
    Return a uuid that depends only on ``parts``, so emulated identifiers are reproducible.

    :param parts: strings naming the object the uuid stands for.
    """
    return str(uuid.uuid5(_UUID_ROOT, "/".join(parts)))


class UnknownRepositoryError(LookupError):
    """Raised when a repository that was never added is asked for."""


@dataclass(frozen=True)
class Build:
    """
    One automated build of a repository tag.

    :param id: numeric build id.
    :param tag: the Docker tag the build produces.
    :param status: Docker Hub's numeric build status (10 success, below 0 failed, 0 queued, ...).
    :param created: when the build was created.
    :param updated: when the build last changed.
    :param cause: what started the build, e.g. ``TRIGGERED_VIA_API``.
    :param build_code: the build's short code.
    """

    id: int
    tag: str
    status: int
    created: datetime
    updated: datetime
    cause: str | None
    build_code: str

    @property
    def uuid(self) -> str:
        return derived_uuid("build", self.build_code)

    def to_legacy(self) -> dict[str, Any]:
        """Return the build as an item of the legacy ``/buildhistory/`` listing."""
        return {
            "id": self.id,
            "status": self.status,
            "created_date": format_timestamp(self.created),
            "last_updated": format_timestamp(self.updated),
            "build_code": self.build_code,
            "dockertag_name": self.tag,
            "cause": self.cause,
        }


@dataclass(frozen=True)
class TagEvent:
    """
    A tag pushed or deleted other than by an automated build, as a CI pipeline pushing would.

    :param tag: the tag name.
    :param at: when it happened.
    :param deleted: whether the tag was deleted rather than pushed.
    """

    tag: str
    at: datetime
    deleted: bool = False


@dataclass(frozen=True)
class PublishedTag:
    """
    A tag the repository lists, with its last push.

    :param name: the tag name.
    :param pushed: when it was last pushed.
    :param digest: the digest of what was pushed last, derived from the push.
    """

    name: str
    pushed: datetime
    digest: str


@dataclass(frozen=True)
class Repository:
    """
    A repository and its builds, as one immutable snapshot.

    The state replaces the whole object on every change, so a snapshot handed to a request handler
    never changes under it.

    :param namespace: the user or organization owning the repository.
    :param name: the repository name.
    :param automated: whether automated builds are set up.
    :param private: whether anonymous callers are denied the repository.
    :param history: one of :data:`HISTORY_KINDS`.
    :param registered: when the repository was created.
    :param builds: the builds, in the order they were added.
    :param trigger_token: the remote build trigger token, if one is set.
    :param tag_events: tags pushed or deleted apart from builds, in the order they happened.
    """

    namespace: str
    name: str
    automated: bool
    private: bool
    history: str
    registered: datetime
    builds: tuple[Build, ...] = ()
    trigger_token: str | None = None
    tag_events: tuple[TagEvent, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def last_updated(self) -> datetime:
        # Docker Hub moves a repository's last_updated on a push, and only a successful build
        # pushes: a failed or stuck build leaves it where it was.
        pushes = (build.updated for build in self.builds if build.status == SUCCESS)
        return max(pushes, default=self.registered)

    @property
    def pull_count(self) -> int:
        # Each successful build counts as a handful of pulls, so ordering by pulls is meaningful.
        return 10 * sum(1 for build in self.builds if build.status == SUCCESS)

    def builds_newest_first(self) -> list[Build]:
        """Return the builds newest first, by creation time and then id."""
        return sorted(self.builds, key=lambda build: (build.created, build.id), reverse=True)

    def tags(self) -> list[str]:
        """Return the distinct tags built, in the order they were first built."""
        return list(dict.fromkeys(build.tag for build in sorted(self.builds, key=lambda b: b.created)))

    def published_tags(self) -> list[PublishedTag]:
        """
        Return the tags the repository lists, newest push first.

        A successful build pushes its tag when it finishes; pushes and deletions from elsewhere come
        from :attr:`tag_events`. Whatever happened last to a tag decides whether it is listed.
        """
        events = [(build.updated, build.tag, False) for build in self.builds if build.status == SUCCESS]
        events += [(event.at, event.tag, event.deleted) for event in self.tag_events]
        latest: dict[str, tuple[datetime, bool]] = {}
        for at, tag, deleted in sorted(events, key=lambda event: event[0]):
            latest[tag] = (at, deleted)
        published = [
            PublishedTag(
                tag, at, "sha256:" + hashlib.sha256(f"{self.full_name}:{tag}:{at}".encode()).hexdigest()
            )
            for tag, (at, deleted) in latest.items()
            if not deleted
        ]
        return sorted(published, key=lambda tag: (tag.pushed, tag.name), reverse=True)


@dataclass(frozen=True)
class Fault:
    """
    One answer queued by :meth:`HubState.fail_next` in place of the real one.

    :param path_prefix: only a request whose path starts with this gets the fault.
    :param status: the HTTP status answered.
    :param headers: extra response headers.
    :param body: the response body, sent as it is.
    :param delay: seconds to wait before answering.
    :param drop: close the connection without any answer instead.
    """

    path_prefix: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class RateLimitStatus:
    """
    Where a request left the rate limit window it was counted in.

    :param limit: requests allowed per window.
    :param remaining: requests still allowed in the window, never below 0.
    :param reset: when the window ends, in integer epoch seconds of the state's clock.
    :param exceeded: whether this request was over the limit and must be refused.
    """

    limit: int
    remaining: int
    reset: int
    exceeded: bool

    def headers(self) -> dict[str, str]:
        """Return the ``X-RateLimit-*`` headers Docker Hub sends with every answer under a limit."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


@dataclass(frozen=True)
class Admission:
    """
    How the emulator must answer one API request, decided when it arrives.

    :param latency: seconds to wait before answering, the emulated round trip.
    :param rate_limit: the rate limit window the request was counted in, or ``None`` without a limit.
    :param fault: the fault the request gets, or ``None`` for the real answer.
    """

    latency: float
    rate_limit: RateLimitStatus | None
    fault: Fault | None


class HubState:
    """
    Hold everything the emulated Docker Hub knows, safe to change while the server runs.

    The server answers requests in its own thread while tests add builds and flip flags, so every
    change goes through one lock and readers get immutable :class:`Repository` snapshots.

    Plain attributes tests may set or read: ``auth_token_endpoint_enabled`` (when false,
    ``POST /v2/auth/token`` answers 404 and clients must fall back to ``/v2/users/login``),
    ``legacy_listing_enabled`` (when false, ``GET /v2/repositories/{ns}/`` answers 404),
    ``max_page_size``, ``requests`` (``(method, path)`` of every API request received, including
    refused and faulted ones; appending is all a request costs) and ``triggers`` (one dict per remote
    trigger call).

    Run-time settings, checked when set (also through :meth:`configure`):

    * ``latency``: seconds added to every API answer (not to ``/_emulator/`` admin calls), slept
      without blocking, so requests in flight overlap as they would over a slow network; 0 by default.
    * ``rate_limit``: API requests allowed per window, like Docker Hub's; ``None`` (the default)
      means unlimited. Under a limit every API answer carries ``X-RateLimit-Limit``,
      ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (epoch seconds of the state's clock when
      the window ends), and a request past the limit gets 429 with ``Retry-After`` holding that
      epoch, as Docker Hub sends it.
    * ``rate_window``: the window's length in seconds, 60 by default. A window starts with the first
      request after the previous one ended, on the state's clock, so moving a frozen ``now`` past
      its end (or before its start) starts a new window. Setting either rate setting starts a new
      window too.

    :meth:`stats` counts requests received, rate limited and faulted; :meth:`fail_next` queues
    faults, including connections dropped without an answer; :meth:`populate` adds thousands of
    repositories at once. Listing a namespace and reading one repository never scan the other
    namespaces, and reading one repository's builds is independent of how many repositories exist.

    :param now: the state's clock, an aware datetime. When given, the clock stands still at that
        moment until ``now`` is set again, which keeps tests reproducible; when omitted, the clock
        follows real time.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._lock = threading.RLock()
        self._frozen_now = _as_utc(now) if now is not None else None
        self._repositories: dict[tuple[str, str], Repository] = {}
        # Each namespace's repository names, kept sorted, so a listing reads its namespace only.
        self._names: dict[str, list[str]] = {}
        self._trigger_tokens: dict[str, tuple[str, str]] = {}
        self._namespaces: set[str] = set()
        self._users: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._next_build_id = _FIRST_BUILD_ID

        # Namespace to the status its build histories answer once Docker Hub retired its builds.
        self._retired: dict[str, int] = {}

        self.auth_token_endpoint_enabled = True
        self.legacy_listing_enabled = True
        self.max_page_size = 100
        self.requests: list[tuple[str, str]] = []
        self.triggers: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._counts = dict.fromkeys(STAT_NAMES, 0)
        self._in_flight = 0
        #: The most API requests the emulator was answering at the same moment since the last
        #: :meth:`reset_stats`: how much a client really reads side by side.
        self.peak_in_flight = 0

        self._latency = 0.0
        self._rate_limit: int | None = None
        self._rate_window = DEFAULT_RATE_WINDOW
        self._window_start: datetime | None = None
        self._window_used = 0

    @property
    def now(self) -> datetime:
        if self._frozen_now is not None:
            return self._frozen_now
        return datetime.now(timezone.utc)

    @now.setter
    def now(self, value: datetime) -> None:
        self._frozen_now = _as_utc(value)

    def use_real_clock(self) -> None:
        """Let ``now`` follow real time from here on, undoing a fixed clock."""
        self._frozen_now = None

    def advance_clock(self, seconds: float) -> datetime:
        """
        Move the clock by ``seconds`` and freeze it there, whether it was frozen or real.

        :param seconds: how far to move; negative moves back.
        :return: the new ``now``.
        """
        with self._lock:
            self._frozen_now = self.now + timedelta(seconds=float(seconds))
            return self._frozen_now

    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        self.configure(latency=value)

    @property
    def rate_limit(self) -> int | None:
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, value: int | None) -> None:
        self.configure(rate_limit=value)

    @property
    def rate_window(self) -> float:
        return self._rate_window

    @rate_window.setter
    def rate_window(self, value: float) -> None:
        self.configure(rate_window=value)

    def settings(self) -> dict[str, Any]:
        """Return the run-time settings, named as in :data:`SETTINGS`."""
        with self._lock:
            return {
                "latency": self._latency,
                "rate_limit": self._rate_limit,
                "rate_window": self._rate_window,
            }

    def configure(self, **settings: Any) -> dict[str, Any]:
        """
        Change run-time settings, all of them or, if one is invalid, none.

        :param settings: any of ``latency`` (seconds, at least 0), ``rate_limit`` (requests per
            window, at least 0, or ``None`` for no limit) and ``rate_window`` (seconds, above 0).
        :return: every setting after the change, as :meth:`settings` returns them.
        :raise ValueError: for an unknown setting or a value out of range.
        """
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(f"Unknown settings {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
        checked = {name: _SETTING_CHECKS[name](value) for name, value in settings.items()}
        with self._lock:
            for name, value in checked.items():
                setattr(self, f"_{name}", value)
            if {"rate_limit", "rate_window"} & set(checked):
                # A new limit counts from zero rather than from requests made under the old one.
                self._window_start = None
            return self.settings()

    def add_repository(
        self,
        namespace: str,
        name: str,
        *,
        automated: bool = True,
        private: bool = False,
        history: str = "legacy",
    ) -> None:
        """
        Add a repository, creating its namespace if needed.

        :param namespace: the owning user or organization.
        :param name: the repository name.
        :param automated: whether automated builds are set up.
        :param private: hide the repository from anonymous callers.
        :param history: ``"legacy"`` (builds served by ``/buildhistory/``), ``"audit"`` (legacy
            endpoint answers 404, builds served by the audit-action endpoint) or ``"none"`` (both
            have nothing).
        :raise ValueError: if ``history`` is not one of those, or the repository already exists.
        """
        if history not in HISTORY_KINDS:
            raise ValueError(f"history must be one of {', '.join(HISTORY_KINDS)}, got {history!r}")
        with self._lock:
            if (namespace, name) in self._repositories:
                raise ValueError(f"Repository {namespace}/{name} already exists")
            self._namespaces.add(namespace)
            self._repositories[(namespace, name)] = Repository(
                namespace=namespace,
                name=name,
                automated=automated,
                private=private,
                history=history,
                registered=self.now - timedelta(days=365),
            )
            bisect.insort(self._names.setdefault(namespace, []), name)

    def populate(
        self,
        namespace: str,
        count: int,
        *,
        prefix: str = "repo-",
        start: int = 0,
        builds: int = 3,
        failing_every: int = 10,
        history: str = "legacy",
    ) -> list[str]:
        """
        Add ``count`` public automated repositories to ``namespace`` at once, each with a few builds.

        Meant for load tests: 10,000 repositories take well under a second. Names are ``prefix``
        and an index padded to five digits, so name order is index order and a later call with a
        higher ``start`` extends the same sequence. Each repository's builds of
        ``latest`` are an hour apart, the newest a few minutes old; all succeeded except the newest
        of every ``failing_every``-th repository, which failed, so a monitor has a few failures to
        find among many healthy repositories.

        :param namespace: the namespace, created if needed.
        :param count: how many repositories to add.
        :param prefix: the start of every name.
        :param start: the first index.
        :param builds: builds per repository.
        :param failing_every: make the newest build of every this-many-th repository fail; 0 for none.
        :param history: how the builds are served, one of :data:`HISTORY_KINDS`.
        :return: the names added, in order.
        :raise ValueError: for a negative count or number of builds, an unknown history, or a name
            already taken; nothing is added then.
        """
        if min(count, start, builds, failing_every) < 0:
            raise ValueError("count, start, builds and failing_every must not be negative")
        if history not in HISTORY_KINDS:
            raise ValueError(f"history must be one of {', '.join(HISTORY_KINDS)}, got {history!r}")
        names = [f"{prefix}{index:05d}" for index in range(start, start + count)]
        now = self.now
        registered = now - timedelta(days=365)
        with self._lock:
            taken = [name for name in names if (namespace, name) in self._repositories]
            if taken:
                raise ValueError(f"Repository {namespace}/{taken[0]} already exists")
            for index, name in enumerate(names):
                failing = failing_every and index % failing_every == failing_every - 1
                added: list[Build] = []
                for age in range(builds, 0, -1):
                    # Minutes past the hour vary by repository, so ordering by time is not by name.
                    created = now - timedelta(minutes=60 * (age - 1) + 5 + index % 50)
                    status = FAILED if failing and age == 1 else SUCCESS
                    added.append(self._new_build("latest", status, created, created + timedelta(minutes=4)))
                self._repositories[(namespace, name)] = Repository(
                    namespace=namespace,
                    name=name,
                    automated=True,
                    private=False,
                    history=history,
                    registered=registered,
                    builds=tuple(added),
                )
            self._namespaces.add(namespace)
            known = self._names.setdefault(namespace, [])
            known.extend(names)
            known.sort()
        return names

    def add_build(
        self,
        namespace: str,
        name: str,
        *,
        tag: str = "latest",
        status: int = -1,
        created_minutes_ago: float = 10.0,
        updated_minutes_ago: float | None = None,
        cause: str | None = "TRIGGERED_VIA_API",
        build_code: str | None = None,
        build_id: int | None = None,
    ) -> dict[str, Any]:
        """
        Append a build to a repository's history.

        Ids and build codes come from a counter unless given, so two states built by the same
        calls hold the same ids and codes.

        :param namespace: the repository's namespace.
        :param name: the repository name.
        :param tag: the Docker tag built.
        :param status: Docker Hub's numeric build status.
        :param created_minutes_ago: creation time, in minutes before the state's ``now``.
        :param updated_minutes_ago: last change, in minutes before ``now``; defaults to creation.
        :param cause: what started the build.
        :param build_code: the build code; derived from the id when omitted.
        :param build_id: the build id; the next counter value when omitted.
        :return: the build as a legacy ``/buildhistory/`` item.
        :raise UnknownRepositoryError: if the repository was never added.
        """
        now = self.now
        created = now - timedelta(minutes=float(created_minutes_ago))
        if updated_minutes_ago is None:
            updated = created
        else:
            updated = now - timedelta(minutes=float(updated_minutes_ago))

        with self._lock:
            repository = self._get(namespace, name)
            build = self._new_build(
                tag, int(status), created, updated, cause=cause, build_code=build_code, build_id=build_id
            )
            self._repositories[(namespace, name)] = replace(repository, builds=(*repository.builds, build))
        return build.to_legacy()

    def _new_build(
        self,
        tag: str,
        status: int,
        created: datetime,
        updated: datetime,
        *,
        cause: str | None = "TRIGGERED_VIA_API",
        build_code: str | None = None,
        build_id: int | None = None,
    ) -> Build:
        # Called with the lock held: the id counter is shared.
        if build_id is None:
            build_id = self._next_build_id
        # Keep later counter ids clear of any id chosen by the caller.
        self._next_build_id = max(self._next_build_id, build_id + 1)
        return Build(
            id=int(build_id),
            tag=tag,
            status=status,
            created=created,
            updated=updated,
            cause=cause,
            build_code=build_code or _build_code_for(build_id),
        )

    def push_tag(
        self, namespace: str, name: str, *, tag: str = "latest", pushed_minutes_ago: float = 0.0
    ) -> dict[str, Any]:
        """
        Push a tag from outside the automated builds, as a CI pipeline does.

        :param namespace: the repository's namespace.
        :param name: the repository name.
        :param tag: the tag pushed.
        :param pushed_minutes_ago: when, in minutes before the state's ``now``.
        :return: the tag as the tags endpoint lists it.
        :raise UnknownRepositoryError: if the repository was never added.
        :raise ValueError: for an empty tag name.
        """
        return self._tag_event(namespace, name, tag, float(pushed_minutes_ago), deleted=False)

    def delete_tag(self, namespace: str, name: str, *, tag: str) -> dict[str, Any]:
        """
        Delete a tag now; a later build or push of it brings it back.

        :param namespace: the repository's namespace.
        :param name: the repository name.
        :param tag: the tag deleted.
        :return: ``{"deleted": tag}``.
        :raise UnknownRepositoryError: if the repository was never added.
        """
        return self._tag_event(namespace, name, tag, 0.0, deleted=True)

    def _tag_event(
        self, namespace: str, name: str, tag: str, minutes_ago: float, *, deleted: bool
    ) -> dict[str, Any]:
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"tag must be a tag name, got {tag!r}")
        at = self.now - timedelta(minutes=minutes_ago)
        with self._lock:
            repository = self._get(namespace, name)
            event = TagEvent(tag.strip(), at, deleted)
            repository = replace(repository, tag_events=(*repository.tag_events, event))
            self._repositories[(namespace, name)] = repository
        if deleted:
            return {"deleted": tag}
        return {"name": tag, "tag_last_pushed": format_timestamp(at)}

    def retire_builds(self, namespace: str, status: int | None = 410) -> dict[str, Any]:
        """
        Make every build history of a namespace answer that it no longer exists.

        That is what Docker Hub is expected to answer once it retires automated builds; ``status``
        ``None`` brings the histories back.

        :param namespace: the namespace.
        :param status: 404 or 410, what both history endpoints answer for its repositories.
        :return: ``{"namespace": ..., "status": ...}``.
        :raise ValueError: for any other status.
        """
        if status is not None and status not in (404, 410):
            raise ValueError(f"status must be 404, 410 or null, got {status!r}")
        with self._lock:
            if status is None:
                self._retired.pop(namespace, None)
            else:
                self._retired[namespace] = int(status)
        return {"namespace": namespace, "status": status}

    def builds_retired(self, namespace: str) -> int | None:
        """Return what a namespace's build histories answer since its builds were retired, if they were."""
        with self._lock:
            return self._retired.get(namespace)

    def set_trigger(self, namespace: str, name: str, token: str) -> None:
        """
        Set the remote build trigger token of a repository.

        The token is accepted both in ``/u/{ns}/{repo}/trigger/{token}/`` and as the trigger uuid
        of ``/api/build/v1/source/{source}/trigger/{token}/call/``.

        :param namespace: the repository's namespace.
        :param name: the repository name.
        :param token: the trigger token, usually a uuid.
        """
        with self._lock:
            repository = self._get(namespace, name)
            self._repositories[(namespace, name)] = replace(repository, trigger_token=token)
            for changed in {repository.trigger_token, token} - {None}:
                self._index_trigger_token(changed)

    def _index_trigger_token(self, token: str) -> None:
        # Called with the lock held when a token changes, which is rare, so that a trigger call finds
        # its repository without a scan. Should two repositories share a token, the first added
        # answers it.
        first = next((key for key, repo in self._repositories.items() if repo.trigger_token == token), None)
        if first is None:
            self._trigger_tokens.pop(token, None)
        else:
            self._trigger_tokens[token] = first

    def add_user(self, username: str, secret: str) -> None:
        """
        Accept ``username`` with ``secret`` (a password or access token) on the auth endpoints.

        :param username: the Docker ID; its namespace comes into existence too.
        :param secret: the password or personal access token.
        """
        with self._lock:
            self._users[username] = secret
            self._namespaces.add(username)

    def authenticate(self, username: str, secret: str) -> bool:
        """
        Check credentials against the users added.

        :param username: the Docker ID.
        :param secret: the password or access token offered.
        """
        with self._lock:
            expected = self._users.get(username)
        return expected is not None and secrets.compare_digest(expected.encode(), secret.encode())

    def issue_token(self, username: str, *, ttl: float = ACCESS_TOKEN_TTL) -> str:
        """
        Issue a JWT-shaped bearer token for ``username`` and remember it as valid.

        The ``exp`` claim follows the real clock, not the state's ``now``, because clients compare
        it with theirs. A negative ``ttl`` issues a token that is already expired.

        :param username: the subject of the token.
        :param ttl: seconds until the token expires.
        """
        issued_at = time.time()
        expires_at = issued_at + ttl
        claims = {"sub": username, "iat": int(issued_at), "exp": int(expires_at), "jti": secrets.token_hex(8)}
        token = ".".join(
            (
                _b64url({"alg": "HS256", "typ": "JWT"}),
                _b64url(claims),
                base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
            )
        )
        with self._lock:
            self._tokens[token] = (username, expires_at)
        return token

    def issued_tokens(self) -> list[str]:
        """Return every bearer token issued and not revoked, expired ones included: secrets to look for."""
        with self._lock:
            return list(self._tokens)

    def revoke_tokens(self, username: str | None = None) -> int:
        """
        Forget the bearer tokens issued so far, as Docker Hub does when a token is revoked early.

        :param username: only this user's tokens; every user's when ``None``.
        :return: how many tokens were revoked.
        """
        with self._lock:
            revoked = [token for token, (owner, _) in self._tokens.items() if username in (None, owner)]
            for token in revoked:
                del self._tokens[token]
        return len(revoked)

    def token_owner(self, token: str) -> str | None:
        """
        Return the user a token was issued to, or ``None`` if it is unknown or expired.

        :param token: the bearer token presented.
        """
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def namespace_exists(self, namespace: str) -> bool:
        """
        Tell whether a namespace has a user or any repository.

        :param namespace: the namespace asked for.
        """
        with self._lock:
            return namespace in self._namespaces

    def repositories(self, namespace: str, caller: str | None) -> list[Repository] | None:
        """
        Return the repositories of a namespace that ``caller`` may see, by name.

        :param namespace: the namespace listed.
        :param caller: the authenticated user, or ``None`` for an anonymous request, which sees
            public repositories only.
        :return: the repositories, or ``None`` if the namespace does not exist.
        """
        with self._lock:
            if namespace not in self._namespaces:
                return None
            found = [self._repositories[(namespace, name)] for name in self._names.get(namespace, ())]
        return [repo for repo in found if caller or not repo.private]

    def repository(self, namespace: str, name: str, caller: str | None) -> Repository | None:
        """
        Return one repository if it exists and ``caller`` may see it.

        :param namespace: the repository's namespace.
        :param name: the repository name.
        :param caller: the authenticated user, or ``None`` for an anonymous request.
        """
        with self._lock:
            repository = self._repositories.get((namespace, name))
        if repository is None or (repository.private and not caller):
            return None
        return repository

    def trigger(
        self, token: str, body: dict[str, Any], *, url_form: str, repo_name: str | None = None
    ) -> tuple[Repository, list[dict[str, Any]]] | None:
        """
        Queue builds for a remote trigger call and record the call in :attr:`triggers`.

        The tag comes from ``docker_tag``, else ``source_name``; without either (``{"build": true}``
        or an empty body) every tag the repository has built is queued.

        :param token: the trigger token from the URL.
        :param body: the request body, parsed.
        :param url_form: ``"legacy"`` or ``"v1"``, the URL form the call used.
        :param repo_name: ``namespace/name`` from a legacy URL, which must match the token's repository.
        :return: the repository after queuing and the builds queued, or ``None`` for an unknown token.
        """
        with self._lock:
            key = self._trigger_tokens.get(token)
            repository = self._repositories[key] if key is not None else None
            if repository is None or (repo_name is not None and repo_name != repository.full_name):
                return None

            requested = body.get("docker_tag") or body.get("source_name")
            tags = [str(requested)] if requested else (repository.tags() or ["latest"])
            queued = [
                self.add_build(
                    repository.namespace, repository.name, tag=tag, status=QUEUED, created_minutes_ago=0
                )
                for tag in tags
            ]
            self.triggers.append(
                {
                    "repository": repository.full_name,
                    "url_form": url_form,
                    "tags": tags,
                    "body": body,
                    "time": format_timestamp(self.now),
                    "build_codes": [build["build_code"] for build in queued],
                }
            )
            return self._get(repository.namespace, repository.name), queued

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        path_prefix: str = "/",
        headers: dict[str, str] | None = None,
        body: str = '{"error": "Our service is temporarily unavailable. We\'ll be back soon!"}',
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """
        Answer the next ``count`` API requests under ``path_prefix`` with a fault instead of the real answer.

        :param count: how many requests fail.
        :param status: the status they get.
        :param path_prefix: only requests whose path starts with this fail.
        :param headers: extra response headers, such as ``Retry-After``.
        :param body: the response body, sent as it is.
        :param delay: seconds to wait before answering, to make clients time out.
        :param drop: close the connection without any answer, as a crashed proxy would; clients see
            a connection error. ``status``, ``headers`` and ``body`` are then unused.
        """
        fault = Fault(path_prefix, int(status), dict(headers or {}), body, float(delay), bool(drop))
        with self._lock:
            self._faults.extend([fault] * count)

    def take_fault(self, path: str) -> Fault | None:
        """Return the fault the next request to ``path`` must get, if one is pending, and use it up."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if path.startswith(fault.path_prefix):
                    del self._faults[index]
                    self._counts["faults"] += 1
                    self._counts["dropped"] += fault.drop
                    return fault
        return None

    def record_request(self, method: str, path: str) -> None:
        """
        Remember that a request was received.

        :param method: the HTTP method.
        :param path: the URL path, without the query string.
        """
        with self._lock:
            self.requests.append((method, path))
            self._counts["requests"] += 1

    def admit(self, method: str, path: str) -> Admission:
        """
        Record an API request and decide how it is answered: latency, rate limit, then faults.

        A request refused by the rate limit uses up no fault, as the limit is enforced in front of
        the service the faults stand for.

        :param method: the HTTP method.
        :param path: the URL path, without the query string.
        """
        with self._lock:
            self.record_request(method, path)
            rate_limit = self._count_against_rate_limit()
            if rate_limit is not None and rate_limit.exceeded:
                self._counts["rate_limited"] += 1
                return Admission(self._latency, rate_limit, None)
            return Admission(self._latency, rate_limit, self.take_fault(path))

    def stats(self) -> dict[str, int]:
        """
        Count what the emulator answered since it started or since :meth:`reset_stats`.

        :return: ``requests`` (API requests received), ``rate_limited`` (answered 429 by the rate
            limit), ``faults`` (given a queued fault) and ``dropped`` (the faults that dropped the
            connection).
        """
        with self._lock:
            return dict(self._counts)

    def reset_stats(self) -> dict[str, int]:
        """
        Zero the counters of :meth:`stats` and empty ``requests``.

        :return: the counters before they were zeroed.
        """
        with self._lock:
            before = dict(self._counts)
            self._counts = dict.fromkeys(STAT_NAMES, 0)
            self.requests.clear()
            self.peak_in_flight = self._in_flight
        return before

    def request_started(self) -> None:
        """Count an API request as being answered, for :attr:`peak_in_flight`."""
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def request_ended(self) -> None:
        """Count an API request as answered (or dropped)."""
        with self._lock:
            self._in_flight -= 1

    def _count_against_rate_limit(self) -> RateLimitStatus | None:
        # Called with the lock held.
        if self._rate_limit is None:
            return None
        now = self.now
        window = timedelta(seconds=self._rate_window)
        start = self._window_start
        if start is None or now < start or now >= start + window:
            start = self._window_start = now
            self._window_used = 0
        self._window_used += 1
        return RateLimitStatus(
            limit=self._rate_limit,
            remaining=max(self._rate_limit - self._window_used, 0),
            # Rounded up so that a client waiting until the reset finds the new window open.
            reset=math.ceil((start + window).timestamp()),
            exceeded=self._window_used > self._rate_limit,
        )

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state as JSON-ready data, for the admin endpoint."""
        with self._lock:
            repositories = sorted(self._repositories.values(), key=lambda repo: repo.full_name)
            namespaces = sorted(self._namespaces)
            triggers = list(self.triggers)
        return {
            "now": format_timestamp(self.now),
            "namespaces": namespaces,
            "repositories": [
                {
                    "namespace": repo.namespace,
                    "name": repo.name,
                    "automated": repo.automated,
                    "private": repo.private,
                    "history": repo.history,
                    "trigger_token": repo.trigger_token,
                    "builds": [build.to_legacy() for build in repo.builds_newest_first()],
                    "tags": {tag.name: format_timestamp(tag.pushed) for tag in repo.published_tags()},
                }
                for repo in repositories
            ],
            "triggers": triggers,
            "retired_builds": dict(self._retired),
        }

    def _get(self, namespace: str, name: str) -> Repository:
        try:
            return self._repositories[(namespace, name)]
        except KeyError:
            raise UnknownRepositoryError(f"Repository {namespace}/{name} does not exist") from None


def _check_latency(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"latency must be a number of seconds, at least 0, got {value!r}")
    return float(value)


def _check_rate_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"rate_limit must be a whole number of requests, at least 0, or None, got {value!r}")
    return value


def _check_rate_window(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"rate_window must be a number of seconds above 0, got {value!r}")
    return float(value)


_SETTING_CHECKS = {
    "latency": _check_latency,
    "rate_limit": _check_rate_limit,
    "rate_window": _check_rate_window,
}


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("The emulator's clock needs an aware datetime")
    return moment.astimezone(timezone.utc)


def _build_code_for(build_id: int) -> str:
    # Real build codes are about 23 lower-case letters and digits starting with "b".
    digest = base64.b32encode(hashlib.sha256(f"build-{build_id}".encode()).digest()).decode()
    return "b" + digest[:22].lower()


def _b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
