"""In-memory Docker Hub state: repositories, their builds, users and issued tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

#: How a repository's builds can be read: the legacy ``/buildhistory/`` endpoint, the audit-action
#: endpoint of the newer build service, or not at all.
HISTORY_KINDS = ("legacy", "audit", "none")

#: ``POST /v2/auth/token`` tokens expire after ten minutes on Docker Hub.
ACCESS_TOKEN_TTL = 600.0
#: ``POST /v2/users/login`` tokens were observed to carry a one-month ``exp``.
LOGIN_TOKEN_TTL = 30 * 24 * 3600.0

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
    """

    namespace: str
    name: str
    automated: bool
    private: bool
    history: str
    registered: datetime
    builds: tuple[Build, ...] = ()
    trigger_token: str | None = None

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


class HubState:
    """
    Hold everything the emulated Docker Hub knows, safe to change while the server runs.

    The server answers requests in its own thread while tests add builds and flip flags, so every
    change goes through one lock and readers get immutable :class:`Repository` snapshots.

    Plain attributes tests may set or read: ``auth_token_endpoint_enabled`` (when false,
    ``POST /v2/auth/token`` answers 404 and clients must fall back to ``/v2/users/login``),
    ``legacy_listing_enabled`` (when false, ``GET /v2/repositories/{ns}/`` answers 404),
    ``max_page_size``, ``requests`` (``(method, path)`` of every API request served) and
    ``triggers`` (one dict per remote trigger call).

    :param now: the state's clock, an aware datetime. When given, the clock stands still at that
        moment until ``now`` is set again, which keeps tests reproducible; when omitted, the clock
        follows real time.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._lock = threading.RLock()
        self._frozen_now = _as_utc(now) if now is not None else None
        self._repositories: dict[tuple[str, str], Repository] = {}
        self._namespaces: set[str] = set()
        self._users: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._next_build_id = _FIRST_BUILD_ID

        self.auth_token_endpoint_enabled = True
        self.legacy_listing_enabled = True
        self.max_page_size = 100
        self.requests: list[tuple[str, str]] = []
        self.triggers: list[dict[str, Any]] = []
        self._faults: list[tuple[str, int, dict[str, str], str, float]] = []

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
            if build_id is None:
                build_id = self._next_build_id
            # Keep later counter ids clear of any id chosen by the caller.
            self._next_build_id = max(self._next_build_id, build_id + 1)
            build = Build(
                id=int(build_id),
                tag=tag,
                status=int(status),
                created=created,
                updated=updated,
                cause=cause,
                build_code=build_code or _build_code_for(build_id),
            )
            self._repositories[(namespace, name)] = replace(repository, builds=(*repository.builds, build))
        return build.to_legacy()

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
            found = [repo for (ns, _), repo in self._repositories.items() if ns == namespace]
        return sorted((repo for repo in found if caller or not repo.private), key=lambda repo: repo.name)

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
            repository = next(
                (repo for repo in self._repositories.values() if repo.trigger_token == token), None
            )
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
    ) -> None:
        """
        Answer the next ``count`` API requests under ``path_prefix`` with a fault instead of the real answer.

        :param count: how many requests fail.
        :param status: the status they get.
        :param path_prefix: only requests whose path starts with this fail.
        :param headers: extra response headers, such as ``Retry-After``.
        :param body: the response body, sent as it is.
        :param delay: seconds to wait before answering, to make clients time out.
        """
        with self._lock:
            self._faults.extend([(path_prefix, status, dict(headers or {}), body, float(delay))] * count)

    def take_fault(self, path: str) -> tuple[int, dict[str, str], str, float] | None:
        """Return the fault the next request to ``path`` must get, if one is pending, and use it up."""
        with self._lock:
            for index, (prefix, status, headers, body, delay) in enumerate(self._faults):
                if path.startswith(prefix):
                    del self._faults[index]
                    return status, headers, body, delay
        return None

    def record_request(self, method: str, path: str) -> None:
        """
        Remember that a request was served.

        :param method: the HTTP method.
        :param path: the URL path, without the query string.
        """
        with self._lock:
            self.requests.append((method, path))

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
                }
                for repo in repositories
            ],
            "triggers": triggers,
        }

    def _get(self, namespace: str, name: str) -> Repository:
        try:
            return self._repositories[(namespace, name)]
        except KeyError:
            raise UnknownRepositoryError(f"Repository {namespace}/{name} does not exist") from None


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
