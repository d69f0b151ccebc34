"""Hook for the Docker Hub API: repositories of a namespace, build history and auth tokens."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
from airflow.sdk import BaseHook

from airflow_dockerhub.alerts import latest_per_tag
from airflow_dockerhub.builds import AUDIT_HISTORY, LEGACY_HISTORY, Build, is_build_action
from airflow_dockerhub.exceptions import (
    CycleTimeSpent,
    DockerHubAuthError,
    DockerHubError,
    DockerHubLoginError,
    DockerHubNotFoundError,
)
from airflow_dockerhub.get_provider_info import CONNECTION_FORM
from airflow_dockerhub.http_retry import RetryBudget, docker_hub_retry, requested_wait
from airflow_dockerhub.http_session import connection_session
from airflow_dockerhub.http_settings import (
    MAX_READ_CONCURRENCY,
    http_backoff,
    parse_timeout,
    parse_verify,
    retries_per_cycle,
)
from airflow_dockerhub.pacing import MAX_PAUSE_SECONDS, RATE_WINDOW_SECONDS, RatePacer
from airflow_dockerhub.settings import DOCKERHUB_CONN_ID
from airflow_dockerhub.targets import redact_url

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_dockerhub.build_triggers import BuildTrigger

DEFAULT_API_URL = "https://hub.docker.com"

#: Docker Hub caps pages at 100 entries; asking for the cap keeps the request count lowest.
PAGE_SIZE = 100
#: Builds read per history: the newest build of every tag is among them unless a repository rebuilt
#: more tags than this since; fewer builds keep big namespaces light in memory and on the wire.
HISTORY_PAGE_SIZE = 25
#: HTTP connections kept open to Docker Hub: one for each request a cycle may have in flight.
POOL_SIZE = MAX_READ_CONCURRENCY
#: A listing that keeps handing out ``next`` links past this many pages is misbehaving.
MAX_PAGES = 1000
#: Pages of tags read per repository: the newest pushes come first, and a thousand tags hold them.
MAX_TAG_PAGES = 10
#: Tokens are renewed this long before they expire, so none expires between check and use.
TOKEN_RENEWAL_MARGIN = 60.0
#: How far Docker Hub's clock may be behind ours when comparing a build's creation with a moment here.
CLOCK_SKEW = timedelta(minutes=1)
#: ``/v2/auth/token`` documents a ten-minute lifetime; used when a token carries no readable expiry.
DEFAULT_TOKEN_LIFETIME = 600.0


@dataclass(frozen=True)
class HistoryRead:
    """
    What reading one repository's build history found.

    :param source: the history source that answered with builds, ``None`` when neither did.
    :param builds: its builds, newest first.
    :param gone: whether every source answered 404 or 410.
    :param answer: the statuses they answered, when ``gone``.
    """

    source: str | None
    builds: list[Build] = field(default_factory=list)
    gone: bool = False
    answer: str = ""


class DockerHubHook(BaseHook):
    """
    Talk to the Docker Hub API.

    Without credentials only public repositories are visible. With a Docker ID and a personal (or
    organization) access token, the hook exchanges them for a short-lived token, reuses it until
    shortly before it expires, and sends it as a bearer token.

    The connection's host, when set, is the API base URL (default ``https://hub.docker.com``), which is
    how a proxy or the bundled emulator is reached. Its extra may hold ``timeout`` (seconds, or a
    ``[connect, read]`` pair; default ``[10, 30]``) and ``verify`` (false, or a CA bundle path).

    :param dockerhub_conn_id: the connection to use.
    :param connection: the connection itself, already fetched; triggers pass it because they must fetch
        connections asynchronously.
    :param pacer: spaces requests by Docker Hub's rate-limit headers; share one between hooks that
        read with the same account. Safe for requests from several threads.
    """

    conn_name_attr = "dockerhub_conn_id"
    default_conn_name = DOCKERHUB_CONN_ID
    conn_type = "dockerhub"
    hook_name = "Docker Hub"

    def __init__(
        self,
        dockerhub_conn_id: str = default_conn_name,
        connection: Connection | None = None,
        pacer: RatePacer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dockerhub_conn_id = dockerhub_conn_id
        if connection is not None:
            self.__dict__["connection"] = connection
        self.pacer = pacer or RatePacer()
        #: Epoch seconds (on the pacer's clock) after which no request starts: it raises
        #: :class:`CycleTimeSpent` instead. ``None`` sets no limit.
        self.deadline: float | None = None
        #: Requests sent so far, retries by urllib3 not included.
        self.requests_sent = 0
        self._token: str | None = None
        self._token_expires_at = 0.0
        #: The first rejected login, raised again instead of logging in once more.
        self._login_error: DockerHubLoginError | None = None
        #: Tokens Docker Hub refused before they expired; each is renewed once, and only one is.
        self._refused_tokens: set[str] = set()
        self._token_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._history_sources: dict[str, str] = {}
        self._listing_paths: dict[str, str] = {}

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Label the connection form's fields the way Docker Hub names them."""
        return copy.deepcopy(CONNECTION_FORM)

    @cached_property
    def connection(self) -> Connection:
        """The Docker Hub connection, read once."""
        return self.get_connection(self.dockerhub_conn_id)

    @cached_property
    def base_url(self) -> str:
        """The API root: the connection's host (``https://`` when it names no scheme), else Docker Hub's."""
        host = (self.connection.host or "").strip().rstrip("/")
        if not host:
            return DEFAULT_API_URL
        if "://" not in host:
            host = f"https://{host}"
            if self.connection.port:
                host = f"{host}:{self.connection.port}"
        return host

    @cached_property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` timeout in seconds, from the connection's ``timeout`` extra."""
        extra = self.connection.extra_dejson
        return parse_timeout(
            extra.get("timeout"), f"the 'timeout' extra of connection {self.dockerhub_conn_id}"
        )

    @cached_property
    def retry_budget(self) -> RetryBudget:
        """Retries all requests of this hook may spend together; one hook reads one cycle."""
        return RetryBudget(retries_per_cycle())

    def get_conn(self) -> requests.Session:
        """Return the hook's one HTTP session, created on first use."""
        return self.session

    @cached_property
    def session(self) -> requests.Session:
        """The pooled, retried HTTP session, verifying TLS as the ``verify`` extra says."""
        verify = parse_verify(
            self.connection.extra_dejson.get("verify"),
            f"the 'verify' extra of connection {self.dockerhub_conn_id}",
        )
        session = connection_session(
            verify,
            docker_hub_retry(http_backoff(), self.retry_budget),
            pool_maxsize=POOL_SIZE,
            headers={"Accept": "application/json"},
        )
        if session.verify is False:
            self.log.warning("TLS verification is off for connection %s", self.dockerhub_conn_id)
        return session

    @property
    def has_credentials(self) -> bool:
        """Whether the connection holds both a login and a password."""
        return bool(self.connection.login and self.connection.password)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the API answers and, with credentials, that Docker Hub accepts them."""
        try:
            if self.has_credentials:
                self._authenticate()
            self._get_json("/v2/namespaces/docker/repositories", params={"page_size": 1})
        except (DockerHubError, requests.RequestException, ValueError) as error:
            return False, str(error)
        return True, "Docker Hub answered"

    # Repositories

    def list_repositories(self, namespace: str) -> Iterator[dict[str, Any]]:
        """
        Yield every repository of a namespace, following ``next`` through all pages.

        The legacy listing is read first because it tells which repositories have automated builds;
        when Docker Hub no longer serves it, the current listing is read instead, whose entries lack
        ``is_automated``.

        :param namespace: a Docker Hub user or organization.
        :raise DockerHubNotFoundError: when neither listing knows the namespace.
        """
        try:
            yield from self._paginate(f"/v2/repositories/{namespace}/")
            return
        except DockerHubNotFoundError:
            self.log.info("Legacy repository listing unavailable for %s; using the current one", namespace)
        except DockerHubAuthError as error:
            # Organization access tokens are refused on legacy routes but accepted on current ones.
            if error.status_code != 403:
                raise
            self.log.info("Legacy repository listing refused for %s; using the current one", namespace)
        try:
            yield from self._paginate(f"/v2/namespaces/{namespace}/repositories")
        except DockerHubNotFoundError:
            raise DockerHubNotFoundError(
                f"Docker Hub does not know the namespace {namespace!r}; check the dockerhub_namespaces setting",
                404,
            ) from None

    def listing_page(self, namespace: str, page: int, *, within_count: bool = False) -> dict[str, Any]:
        """
        Read one page of a namespace's repository listing, so that pages can be read side by side.

        The legacy listing is tried first, as in :meth:`list_repositories`; which one answered is
        remembered for the next pages. A page past the end is an empty page.

        :param namespace: a Docker Hub user or organization.
        :param page: the page number, from 1.
        :param within_count: the first page's ``count`` says this page exists, so a 404 is a fault
            (Docker Hub has answered rate-limited clients with 404s) rather than the end of the list.
        :return: the page as Docker Hub sent it: ``count``, ``next`` and ``results``.
        :raise DockerHubNotFoundError: when neither listing knows the namespace.
        :raise DockerHubError: when a page within the count answers 404.
        """
        params = {"page": page, "page_size": PAGE_SIZE}
        path = self._listing_paths.get(namespace)
        if path is None:
            legacy, current = f"/v2/repositories/{namespace}/", f"/v2/namespaces/{namespace}/repositories"
            try:
                body = self._get_json(legacy, params=params)
                self._listing_paths[namespace] = legacy
                return body
            except DockerHubNotFoundError:
                self.log.info(
                    "Legacy repository listing unavailable for %s; using the current one", namespace
                )
            except DockerHubAuthError as error:
                if error.status_code != 403:
                    raise
                self.log.info("Legacy repository listing refused for %s; using the current one", namespace)
            path = current
            try:
                body = self._get_json(path, params=params)
            except DockerHubNotFoundError:
                raise DockerHubNotFoundError(
                    f"Docker Hub does not know the namespace {namespace!r}; "
                    "check the dockerhub_namespaces setting",
                    404,
                ) from None
            self._listing_paths[namespace] = path
            return body
        try:
            return self._get_json(path, params=params)
        except DockerHubNotFoundError as error:
            if page == 1:
                raise
            if within_count:
                raise DockerHubError(
                    f"Docker Hub answered {error.status_code} for page {page} of the listing of {namespace}, "
                    "which its first page counts in; the namespace is read again next cycle",
                    error.status_code,
                ) from None
            # The current listing answers 404 for a page past the end rather than an empty page.
            return {"count": None, "next": None, "results": []}

    def remember_history_sources(self, sources: dict[str, str]) -> None:
        """
        Start from the history sources learned in earlier cycles.

        Audit-only repositories then cost no legacy 404 every cycle.

        :param sources: ``namespace/name`` to ``legacy`` or ``audit``.
        """
        self._history_sources.update(sources)

    def is_automated(self, namespace: str, repository: dict[str, Any]) -> bool:
        """
        Tell whether a repository has automated builds.

        :param namespace: the namespace the repository was listed in.
        :param repository: a listing entry; when it lacks ``is_automated``, the single-repository
            endpoint is asked.
        """
        if "is_automated" in repository:
            return bool(repository["is_automated"])
        name = repository["name"]
        try:
            details = self._get_json(f"/v2/namespaces/{namespace}/repositories/{name}")
        except DockerHubNotFoundError:
            # Without the single-repository endpoint nothing says whether builds exist; reading the
            # history answers that too, at the cost of one request.
            self.log.info(
                "Cannot tell whether %s/%s has automated builds; reading its history", namespace, name
            )
            return True
        return bool(details.get("is_automated"))

    # Build history

    def get_build_history(self, namespace: str, repository: str) -> tuple[str, list[Build]] | None:
        """
        Read the newest builds of a repository, newest first.

        Repositories created before the 2018 Docker Cloud merge answer on the legacy build-history
        endpoint; newer ones answer 404 there and keep their builds in the audit-action history. The
        hook tries the legacy one, falls back to the other, and remembers per repository which one
        answered.

        :param namespace: the repository's namespace.
        :param repository: the repository name.
        :return: the history source that answered and its builds, or ``None`` when neither has any.
        """
        read = self.read_build_history(namespace, repository)
        return None if read.source is None else (read.source, read.builds)

    def read_build_history(self, namespace: str, repository: str) -> HistoryRead:
        """
        Read the newest builds of a repository, telling an empty history from one that is gone.

        The sources are tried as in :meth:`get_build_history`.

        :param namespace: the repository's namespace.
        :param repository: the repository name.
        :return: the source that answered (``None`` when neither has builds), its builds, and whether
            every source answered 404 or 410: the endpoints are gone, as after Docker Hub retires
            automated builds.
        """
        repo_name = f"{namespace}/{repository}"
        sources = [LEGACY_HISTORY, AUDIT_HISTORY]
        remembered = self._history_sources.get(repo_name)
        if remembered:
            sources.remove(remembered)
            sources.insert(0, remembered)

        gone: list[int | None] = []
        for source in sources:
            try:
                builds = self._read_history(source, namespace, repository)
            except DockerHubNotFoundError as error:
                gone.append(error.status_code)
                continue
            if builds:
                self._history_sources[repo_name] = source
                return HistoryRead(source, builds)
        if len(gone) == len(sources):
            return HistoryRead(
                None, [], gone=True, answer=", ".join(sorted({str(status) for status in gone}))
            )
        return HistoryRead(None, [])

    def latest_build(
        self,
        namespace: str,
        repository: str,
        tag: str | None = None,
        build_code: str | None = None,
        created_after: datetime | None = None,
    ) -> Build | None:
        """
        Find the newest build of a repository, of one of its tags, or the build with a given code.

        :param namespace: the repository's namespace.
        :param repository: the repository name.
        :param tag: only builds of this Docker tag.
        :param build_code: only the build with this code (or uuid).
        :param created_after: only builds Docker Hub created at or after this moment, such as the build a
            rebuild request started; a minute of clock difference is allowed for.
        :return: the build, or ``None`` when the history holds none that matches.
        """
        history = self.get_build_history(namespace, repository)
        builds = history[1] if history else []
        matching = [
            build
            for build in builds
            if (tag is None or build.tag == tag)
            and (build_code is None or build.build_key == build_code)
            and (
                created_after is None
                or (build.created is not None and build.created >= created_after - CLOCK_SKEW)
            )
        ]
        newest = latest_per_tag(matching) if tag is not None or build_code is not None else matching[:1]
        return max(newest, key=_created_key, default=None)

    def trigger_build(self, trigger: BuildTrigger, tag: str) -> requests.Response:
        """
        Ask Docker Hub to rebuild one tag through a remote build trigger.

        The answer is returned whatever its status: a 2xx only says the request was accepted, not that a
        build will run, and the caller decides what a refusal means.

        :param trigger: the trigger to call; its URL is a secret and is never logged.
        :param tag: the Docker tag to rebuild, unless the trigger names a source.
        :raise DockerHubError: when Docker Hub cannot be reached.
        """
        # HTTP libraries log the path alone, and the token is in the path.
        self._mask(trigger.url)
        self._mask(urlsplit(trigger.url).path)
        body = trigger.request_body(tag)
        try:
            response = self.session.post(trigger.url, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            raise DockerHubError(
                f"Could not reach the build trigger {trigger.redacted} ({type(error).__name__})"
            ) from None
        self.log.info("Build trigger %s answered %s to %s", trigger.redacted, response.status_code, body)
        return response

    def _read_history(self, source: str, namespace: str, repository: str) -> list[Build]:
        if source == LEGACY_HISTORY:
            body = self._get_json(
                f"/v2/repositories/{namespace}/{repository}/buildhistory/",
                params={"page": 1, "page_size": HISTORY_PAGE_SIZE},
            )
            items = _list_field(body, "results")
            return [Build.from_legacy(namespace, repository, item) for item in items]

        body = self._get_json(
            "/api/audit/v1/action/",
            params={
                "include_related": "true",
                "limit": HISTORY_PAGE_SIZE,
                "object": f"/api/repo/v1/repository/{namespace}/{repository}/",
            },
        )
        items = _list_field(body, "objects")
        return [Build.from_audit(namespace, repository, item) for item in items if is_build_action(item)]

    # Tags

    def list_tags(self, namespace: str, repository: str) -> tuple[list[dict[str, Any]], bool]:
        """
        Read the tags of a repository, newest push first.

        They come from ``/v2/namespaces/{ns}/repositories/{repo}/tags``, following ``next`` for at
        most :data:`MAX_TAG_PAGES` pages.

        Public repositories answer anonymously; private ones need the connection's token.

        :param namespace: the repository's namespace.
        :param repository: the repository name.
        :return: the tags as Docker Hub listed them, and whether that is all of them (false when the
            listing was cut short after :data:`MAX_TAG_PAGES` pages).
        :raise DockerHubNotFoundError: when Docker Hub knows no such repository, or it is private and
            the connection has no token for it.
        """
        path = f"/v2/namespaces/{namespace}/repositories/{repository}/tags"
        url: str | None = path
        params: dict[str, Any] | None = {"page": 1, "page_size": PAGE_SIZE, "ordering": "-last_updated"}
        tags: list[dict[str, Any]] = []
        seen: set[str] = set()
        for page in range(MAX_TAG_PAGES):
            try:
                body = self._get_json(url, params=params)
            except DockerHubNotFoundError:
                # A page past the end answers 404, as the repository listing does.
                if page == 0:
                    raise DockerHubNotFoundError(
                        f"Docker Hub has no repository {namespace}/{repository}, or it is private and "
                        f"connection {self.dockerhub_conn_id} has no access token for it",
                        404,
                    ) from None
                return tags, True
            tags += _list_field(body, "results")
            url = body.get("next")
            if not url:
                return tags, True
            url = self._same_origin(url)
            if url in seen:
                return tags, False
            seen.add(url)
            params = None
        self.log.warning(
            "%s/%s has more than %s pages of tags; only the newest were read", namespace, repository, page + 1
        )
        return tags, False

    def get_tag(self, namespace: str, repository: str, tag: str) -> dict[str, Any] | None:
        """
        Read one tag of a repository from ``/v2/namespaces/{ns}/repositories/{repo}/tags/{tag}``.

        One request finds a tag that has sunk too far down the listing to be read there.

        :param namespace: the repository's namespace.
        :param repository: the repository name.
        :param tag: the tag's name.
        :return: the tag as Docker Hub describes it, or ``None`` when the repository has no such tag.
        """
        try:
            body = self._get_json(
                f"/v2/namespaces/{namespace}/repositories/{repository}/tags/{quote(tag, safe='')}"
            )
        except DockerHubNotFoundError:
            return None
        if not isinstance(body, dict):
            raise DockerHubError(
                f"Docker Hub's answer for the tag {tag!r} of {namespace}/{repository} is no object"
            )
        return body

    # HTTP

    def _paginate(self, path: str) -> Iterator[dict[str, Any]]:
        url: str | None = path
        params: dict[str, Any] | None = {"page": 1, "page_size": PAGE_SIZE}
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            try:
                body = self._get_json(url, params=params)
            except DockerHubNotFoundError:
                # The current listing answers 404 for a page past the end rather than an empty page.
                if page == 0:
                    raise
                return
            yield from _list_field(body, "results")

            url = body.get("next") if isinstance(body, dict) else None
            if not url:
                return
            url = self._same_origin(url)
            if url in seen:
                self.log.warning("Docker Hub listing %s repeats a page; stopping there", path)
                return
            seen.add(url)
            params = None
        self.log.warning("Docker Hub listing %s has more than %s pages; stopping there", path, MAX_PAGES)

    def _same_origin(self, url: str) -> str:
        """
        Point a ``next`` link at the configured API URL.

        Docker Hub writes absolute links with its own host; behind a proxy, or in front of the
        emulator, that host is the wrong one, and the bearer token must not travel to another host.
        """
        base = urlsplit(self.base_url)
        link = urlsplit(urljoin(self.base_url + "/", url))
        return urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))

    def _get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        response = self._request("GET", url, params=params)
        try:
            return response.json()
        except ValueError:
            raise DockerHubError(
                f"Docker Hub answered {urlsplit(url).path} with a body that is not JSON "
                f"({response.headers.get('Content-Type', 'no content type')})",
                response.status_code,
            ) from None

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        token = self._current_token() if self.has_credentials else None
        response = self._send(method, url, token, **kwargs)
        if response.status_code == 401 and token is not None:
            renewed = self._renew_refused(token)
            if renewed is not None:
                response = self._send(method, url, renewed, **kwargs)
        self._raise_for_status(response, url)
        return response

    def _renew_refused(self, refused: str) -> str | None:
        """
        Renew a token Docker Hub refused before its expiry, once for all threads that saw it refused.

        A token revoked or expired early is renewed; a fresh token that is refused too means the
        endpoint itself refuses these credentials, and logging in again for every repository would
        only count towards Docker Hub's lockout, so it is not renewed.

        :return: the token to retry with, or ``None`` when the request is not to be retried.
        """
        with self._token_lock:
            # When another thread has renewed it already, its token (or its rejection) is the answer.
            if self._token == refused:
                if self._refused_tokens:
                    self._refused_tokens.add(refused)
                    return None
                self._refused_tokens.add(refused)
                self._token = None
        return self._current_token()

    def _paced(self, send: Any) -> requests.Response:
        """Send one request when the rate limit allows, and learn from the answer what is left."""
        if not self.pacer.acquire(self.deadline):
            raise CycleTimeSpent("This cycle's time for reading Docker Hub is spent")
        with self._count_lock:
            self.requests_sent += 1
        response = send()
        self.pacer.observe(response.headers)
        if response.status_code == 429:
            # Requests side by side would each run into the limit too; all of them wait instead.
            wait = requested_wait(response.headers, self.pacer.clock.now(), MAX_PAUSE_SECONDS)
            self.pacer.pause(RATE_WINDOW_SECONDS if wait is None else wait)
        return response

    def _send(self, method: str, url: str, token: str | None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        full_url = url if "://" in url else f"{self.base_url}{url}"
        try:
            return self._paced(
                lambda: self.session.request(
                    method, full_url, headers=headers, timeout=self.timeout, **kwargs
                )
            )
        except requests.RequestException as error:
            raise DockerHubError(
                f"Could not reach Docker Hub at {redact_url(self.base_url)} ({type(error).__name__}) for {url.split('?')[0]}"
            ) from None

    def _raise_for_status(self, response: requests.Response, url: str) -> None:
        status = response.status_code
        if status < 400:
            return
        where = urlsplit(url).path
        detail = _error_detail(response)
        if status in (404, 410):
            raise DockerHubNotFoundError(f"Docker Hub has no {where} ({status}: {detail})", status)
        if status in (401, 403):
            raise DockerHubAuthError(
                f"Docker Hub refused {where} ({status}: {detail}); check connection {self.dockerhub_conn_id}",
                status,
            )
        raise DockerHubError(f"Docker Hub answered {status} for {where}: {detail}", status)

    # Auth

    def _current_token(self) -> str:
        # One login for all threads reading at once: a burst of logins is what locks accounts.
        with self._token_lock:
            if self._login_error is not None:
                # Every thread that needs a token after a rejection gets the rejection, not a new login.
                raise DockerHubLoginError(str(self._login_error), self._login_error.status_code)
            if self._token is None or time.time() >= self._token_expires_at - TOKEN_RENEWAL_MARGIN:
                self._authenticate()
            if self._token is None:
                raise DockerHubAuthError("Docker Hub issued no token")
            return self._token

    def _authenticate(self) -> None:
        """
        Exchange the connection's Docker ID and access token for a bearer token.

        ``/v2/auth/token`` is the current endpoint; ``/v2/users/login`` is the older one, used only
        when the current one does not exist. A rejected login is never retried here: Docker Hub locks
        an account out after repeated failures.
        """
        login, secret = self.connection.login, self.connection.password
        response = self._post_auth("/v2/auth/token", {"identifier": login, "secret": secret})
        token_field = "access_token"
        if response.status_code in (404, 405, 410, 501):
            self.log.info("Docker Hub has no /v2/auth/token here; logging in through /v2/users/login")
            response = self._post_auth("/v2/users/login", {"username": login, "password": secret})
            token_field = "token"

        if response.status_code in (401, 403):
            self._login_error = DockerHubLoginError(
                f"Docker Hub rejected the Docker ID {login!r} and access token of connection "
                f"{self.dockerhub_conn_id} ({response.status_code}: {_error_detail(response)}); "
                "fix the credentials before the next run, repeated failures lock the account",
                response.status_code,
            )
            raise self._login_error
        self._raise_for_status(response, "/v2/auth")
        try:
            token = response.json()[token_field]
        except (ValueError, KeyError, TypeError):
            raise DockerHubAuthError(f"Docker Hub's login answer has no {token_field!r}") from None

        self._mask(token)
        self._token = token
        self._token_expires_at = _token_expiry(token) or time.time() + DEFAULT_TOKEN_LIFETIME
        self.log.info("Authenticated to Docker Hub as %s", login)

    def _post_auth(self, path: str, body: dict[str, Any]) -> requests.Response:
        try:
            return self._paced(
                lambda: self.session.post(f"{self.base_url}{path}", json=body, timeout=self.timeout)
            )
        except requests.RequestException as error:
            raise DockerHubError(
                f"Could not reach Docker Hub at {redact_url(self.base_url)} ({type(error).__name__}) for {path}"
            ) from None

    @staticmethod
    def _mask(secret: str) -> None:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)


def _created_key(build: Build) -> float:
    return build.created.timestamp() if build.created else float("-inf")


def _list_field(body: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(name), list):
        raise DockerHubError(f"Docker Hub's answer has no {name!r} list")
    return [item for item in body[name] if isinstance(item, dict)]


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:200]
    if isinstance(body, dict):
        for name in ("detail", "message", "error", "text"):
            if body.get(name):
                return str(body[name])[:200]
    return str(body)[:200]


def _token_expiry(token: str) -> float | None:
    """Read the ``exp`` claim of a JWT without verifying it; the hook only needs to know when to renew."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
