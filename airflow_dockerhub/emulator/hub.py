"""FastAPI app that answers like Docker Hub's repository, build history, auth and trigger endpoints."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from airflow_dockerhub.emulator.responses import (
    audit_action,
    build_source,
    legacy_listing_entry,
    legacy_repository,
    namespace_listing_entry,
    namespace_repository,
    tag_entry,
)
from airflow_dockerhub.emulator.state import (
    LOGIN_TOKEN_TTL,
    Build,
    UnknownRepositoryError,
    format_timestamp,
)
from airflow_dockerhub.emulator.traffic import TrafficShaper

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from starlette.responses import Response
    from starlette.types import ASGIApp

    from airflow_dockerhub.emulator.state import HubState, Repository

ADMIN_PREFIX = "/_emulator"
#: Paths that authenticate by their body, so a stale ``Authorization`` header must not block them.
AUTH_PATHS = frozenset({"/v2/auth/token", "/v2/users/login", "/v2/users/login/"})

NOT_FOUND = {"detail": "Object not found"}
GONE = {"detail": "Gone"}
BAD_CREDENTIALS = {"detail": "Incorrect authentication credentials"}
INVALID_TOKEN = {"detail": "Invalid token"}

DEFAULT_PAGE_SIZE = 10
DEFAULT_AUDIT_LIMIT = 25
_ORDERINGS = ("name", "last_updated", "pull_count")
_Item = TypeVar("_Item")
_AUDIT_OBJECT = re.compile(r"/api/repo/v1/repository/(?P<namespace>[^/]+)/(?P<name>[^/]+)/?")


class HubError(Exception):
    """
    Answer the current request with a Docker Hub error body.

    :param status_code: the HTTP status.
    :param body: the JSON body.
    """

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body


class _HubApp(FastAPI):
    # Starlette's outermost layer, its error middleware, wraps ``send``; the traffic shaper goes
    # outside it, as a dropped connection needs the server's own ``send`` to reach the connection.
    def __init__(self, state: HubState, **kwargs: Any) -> None:
        self.hub_state = state
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return TrafficShaper(super().build_middleware_stack(), self.hub_state, exempt_prefix=ADMIN_PREFIX)


def create_hub_app(state: HubState) -> FastAPI:
    """
    Create the Docker Hub emulator app serving ``state``.

    API requests (all but ``/_emulator/`` admin calls) first pass a
    :class:`~airflow_dockerhub.emulator.traffic.TrafficShaper`, which records them and applies the
    state's latency, rate limit and queued faults.

    :param state: the repositories, builds, users and flags to serve; may change while serving.
    """
    app = _HubApp(state, title="Docker Hub emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(HubError, _hub_error_response)

    @app.middleware("http")
    async def identify_caller(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        request.state.caller = None
        if path.startswith(ADMIN_PREFIX):
            return await call_next(request)

        authorization = request.headers.get("authorization")
        if authorization and path not in AUTH_PATHS:
            try:
                request.state.caller = _caller_from_header(state, authorization)
            except HubError as error:
                return _hub_error_response(request, error)
        return await call_next(request)

    _register_auth(app, state)
    _register_repositories(app, state)
    _register_history(app, state)
    _register_triggers(app, state)
    _register_admin(app, state)
    return app


def _route(app: FastAPI, method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # Docker Hub clients disagree about trailing slashes; answering both avoids redirects.
    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        stem = path.rstrip("/")
        for variant in (stem, f"{stem}/"):
            app.add_api_route(variant, endpoint, methods=[method], response_model=None)
        return endpoint

    return register


def _register_auth(app: FastAPI, state: HubState) -> None:
    @_route(app, "POST", "/v2/auth/token")
    async def create_access_token(request: Request) -> dict[str, Any]:
        if not state.auth_token_endpoint_enabled:
            raise HubError(404, NOT_FOUND)
        body = await _json_object(request)
        username, secret = str(body.get("identifier", "")), str(body.get("secret", ""))
        if not state.authenticate(username, secret):
            raise HubError(401, BAD_CREDENTIALS)
        return {"access_token": state.issue_token(username)}

    @_route(app, "POST", "/v2/users/login")
    async def login(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        username, password = str(body.get("username", "")), str(body.get("password", ""))
        if not state.authenticate(username, password):
            raise HubError(401, BAD_CREDENTIALS)
        return {"token": state.issue_token(username, ttl=LOGIN_TOKEN_TTL)}


def _register_repositories(app: FastAPI, state: HubState) -> None:
    @_route(app, "GET", "/v2/repositories/{namespace}/")
    async def legacy_listing(namespace: str, request: Request) -> dict[str, Any]:
        if not state.legacy_listing_enabled:
            raise HubError(404, NOT_FOUND)
        caller = request.state.caller
        repositories = _ordered(request, _namespace_repositories(state, namespace, caller))
        return _paginate(
            request,
            repositories,
            state.max_page_size,
            lambda repository: legacy_listing_entry(repository, caller),
        )

    @_route(app, "GET", "/v2/namespaces/{namespace}/repositories")
    async def namespace_listing(namespace: str, request: Request) -> dict[str, Any]:
        repositories = _namespace_repositories(state, namespace, request.state.caller)
        name_filter = request.query_params.get("name", "").lower()
        if name_filter:
            repositories = [
                repository for repository in repositories if name_filter in repository.name.lower()
            ]
        return _paginate(
            request, _ordered(request, repositories), state.max_page_size, namespace_listing_entry
        )

    @_route(app, "GET", "/v2/namespaces/{namespace}/repositories/{name}")
    async def namespace_repository_info(namespace: str, name: str, request: Request) -> dict[str, Any]:
        return namespace_repository(_visible_repository(state, namespace, name, request))

    @_route(app, "GET", "/v2/namespaces/{namespace}/repositories/{name}/tags")
    async def repository_tags(namespace: str, name: str, request: Request) -> dict[str, Any]:
        repository = _visible_repository(state, namespace, name, request)
        tags = repository.published_tags()
        name_filter = request.query_params.get("name", "")
        if name_filter:
            tags = [tag for tag in tags if name_filter in tag.name]
        ordering = request.query_params.get("ordering") or "-last_updated"
        if ordering.removeprefix("-") not in ("last_updated", "name"):
            raise HubError(
                400,
                {
                    "fields": {"ordering": ["Must be one of: last_updated, -last_updated, name, -name"]},
                    "text": "Invalid ordering value",
                },
            )
        if ordering.endswith("name"):
            tags = sorted(tags, key=lambda tag: tag.name, reverse=ordering.startswith("-"))
        elif ordering == "last_updated":
            tags = list(reversed(tags))
        return _paginate(request, tags, state.max_page_size, lambda tag: tag_entry(repository, tag))

    @_route(app, "GET", "/v2/namespaces/{namespace}/repositories/{name}/tags/{tag}")
    async def repository_tag(namespace: str, name: str, tag: str, request: Request) -> dict[str, Any]:
        repository = _visible_repository(state, namespace, name, request)
        for published in repository.published_tags():
            if published.name == tag:
                return tag_entry(repository, published)
        raise HubError(404, NOT_FOUND)

    @_route(app, "GET", "/v2/repositories/{namespace}/{name}/")
    async def legacy_repository_info(namespace: str, name: str, request: Request) -> dict[str, Any]:
        repository = _visible_repository(state, namespace, name, request)
        return legacy_repository(repository, request.state.caller)


def _register_history(app: FastAPI, state: HubState) -> None:
    @_route(app, "GET", "/v2/repositories/{namespace}/{name}/buildhistory/")
    async def build_history(namespace: str, name: str, request: Request) -> dict[str, Any]:
        _refuse_if_retired(state, namespace)
        repository = _visible_repository(state, namespace, name, request)
        if repository.history != "legacy":
            raise HubError(404, NOT_FOUND)
        return _paginate(request, repository.builds_newest_first(), state.max_page_size, Build.to_legacy)

    @_route(app, "GET", "/api/audit/v1/action/")
    async def audit_actions(request: Request) -> dict[str, Any]:
        target = _AUDIT_OBJECT.fullmatch(request.query_params.get("object", ""))
        if target is None:
            raise HubError(400, {"error": "Filter by object=/api/repo/v1/repository/<namespace>/<name>/"})
        _refuse_if_retired(state, target["namespace"])
        repository = _visible_repository(state, target["namespace"], target["name"], request)
        limit = _int_param(request, "limit", DEFAULT_AUDIT_LIMIT)
        offset = _int_param(request, "offset", 0, minimum=0)

        builds = repository.builds_newest_first() if repository.history == "audit" else []
        has_next = offset + limit < len(builds)
        return {
            "meta": {
                "limit": limit,
                "next": _relative_url(request, offset=offset + limit) if has_next else None,
                "offset": offset,
                "previous": _relative_url(request, offset=max(offset - limit, 0)) if offset else None,
                "total_count": len(builds),
            },
            "objects": [audit_action(repository, build) for build in builds[offset : offset + limit]],
        }


def _refuse_if_retired(state: HubState, namespace: str) -> None:
    status = state.builds_retired(namespace)
    if status is not None:
        raise HubError(status, NOT_FOUND if status == 404 else GONE)


def _register_triggers(app: FastAPI, state: HubState) -> None:
    @_route(app, "POST", "/u/{namespace}/{name}/trigger/{token}/")
    async def legacy_trigger(namespace: str, name: str, token: str, request: Request) -> Response:
        body = await _trigger_body(request)
        if state.trigger(token, body, url_form="legacy", repo_name=f"{namespace}/{name}") is None:
            raise HubError(404, NOT_FOUND)
        return PlainTextResponse("OK")

    @_route(app, "POST", "/api/build/v1/source/{source_uuid}/trigger/{token}/call/")
    async def source_trigger(source_uuid: str, token: str, request: Request) -> dict[str, Any]:
        body = await _trigger_body(request)
        outcome = state.trigger(token, body, url_form="v1")
        if outcome is None:
            raise HubError(404, NOT_FOUND)
        repository, _ = outcome
        return build_source(repository, source_uuid)


def _register_admin(app: FastAPI, state: HubState) -> None:
    @app.get(f"{ADMIN_PREFIX}/state")
    async def admin_state() -> dict[str, Any]:
        return state.snapshot()

    @app.get(f"{ADMIN_PREFIX}/requests")
    async def admin_requests() -> list[dict[str, str]]:
        return [{"method": method, "path": path} for method, path in list(state.requests)]

    @app.post(f"{ADMIN_PREFIX}/faults")
    async def admin_add_faults(request: Request) -> dict[str, Any]:
        # The same faults as HubState.fail_next, for a demo or test driving the emulator from outside.
        arguments = await _json_object(request)
        _call_or_400(state.fail_next, arguments)
        return {"queued": arguments.get("count")}

    # Run-time settings, counters, clock and bulk repositories, for a benchmark in another process.
    @app.get(f"{ADMIN_PREFIX}/settings")
    async def admin_settings() -> dict[str, Any]:
        return state.settings()

    @app.post(f"{ADMIN_PREFIX}/settings")
    async def admin_configure(request: Request) -> dict[str, Any]:
        return _call_or_400(state.configure, await _json_object(request))

    @app.get(f"{ADMIN_PREFIX}/stats")
    async def admin_stats() -> dict[str, int]:
        return state.stats()

    @app.delete(f"{ADMIN_PREFIX}/stats")
    async def admin_reset_stats() -> dict[str, int]:
        return state.reset_stats()

    @app.get(f"{ADMIN_PREFIX}/clock")
    async def admin_clock() -> dict[str, Any]:
        return {"now": format_timestamp(state.now)}

    @app.post(f"{ADMIN_PREFIX}/clock")
    async def admin_set_clock(request: Request) -> dict[str, Any]:
        arguments = await _json_object(request)
        if len(arguments) != 1 or not {"now", "advance_seconds", "real_time"} >= arguments.keys():
            raise HubError(400, {"detail": 'Send one of "now" (ISO 8601), "advance_seconds" or "real_time"'})
        try:
            if "now" in arguments:
                state.now = _parse_moment(arguments["now"])
            elif "advance_seconds" in arguments:
                state.advance_clock(_number(arguments["advance_seconds"], "advance_seconds"))
            elif arguments["real_time"] is True:
                state.use_real_clock()
            else:
                raise ValueError('"real_time" can only be true')
        except (TypeError, ValueError) as error:
            raise HubError(400, {"detail": str(error)}) from None
        return {"now": format_timestamp(state.now)}

    @app.post(f"{ADMIN_PREFIX}/namespaces/{{namespace}}/populate")
    async def admin_populate(namespace: str, request: Request) -> dict[str, Any]:
        names = _call_or_400(functools.partial(state.populate, namespace), await _json_object(request))
        return {"namespace": namespace, "added": len(names)}

    @app.post(f"{ADMIN_PREFIX}/namespaces/{{namespace}}/repositories/{{name}}/tags")
    async def admin_push_tag(namespace: str, name: str, request: Request) -> dict[str, Any]:
        return _call_or_400(functools.partial(state.push_tag, namespace, name), await _json_object(request))

    @app.delete(f"{ADMIN_PREFIX}/namespaces/{{namespace}}/repositories/{{name}}/tags/{{tag}}")
    async def admin_delete_tag(namespace: str, name: str, tag: str) -> dict[str, Any]:
        try:
            return state.delete_tag(namespace, name, tag=tag)
        except UnknownRepositoryError:
            raise HubError(404, NOT_FOUND) from None

    @app.post(f"{ADMIN_PREFIX}/namespaces/{{namespace}}/retire-builds")
    async def admin_retire_builds(namespace: str, request: Request) -> dict[str, Any]:
        return _call_or_400(functools.partial(state.retire_builds, namespace), await _json_object(request))

    @app.post(f"{ADMIN_PREFIX}/namespaces/{{namespace}}/repositories/{{name}}/builds")
    async def admin_add_build(namespace: str, name: str, request: Request) -> dict[str, Any]:
        return _call_or_400(functools.partial(state.add_build, namespace, name), await _json_object(request))


def _call_or_400(method: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    # Admin endpoints pass their JSON object on as keyword arguments; a wrong one is the caller's error,
    # and a repository the state does not have is a 404, as Docker Hub answers.
    try:
        return method(**arguments)
    except UnknownRepositoryError:
        raise HubError(404, NOT_FOUND) from None
    except (TypeError, ValueError) as error:
        raise HubError(400, {"detail": str(error)}) from None


def _parse_moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f'"now" must be an ISO 8601 string, got {value!r}')
    # Python 3.10 reads no "Z" suffix, which is how the emulator itself writes moments.
    moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    if moment.tzinfo is None:
        raise ValueError(f'"now" needs a time zone offset, got {value!r}')
    return moment


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _hub_error_response(_request: Request, error: HubError) -> Response:
    return JSONResponse(error.body, status_code=error.status_code)


def _caller_from_header(state: HubState, authorization: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme in ("bearer", "jwt"):
        owner = state.token_owner(credentials.strip())
        if owner is None:
            raise HubError(401, INVALID_TOKEN)
        return owner
    if scheme == "basic":
        # Some audit-endpoint clients send the Docker ID and access token as basic auth.
        try:
            username, _, secret = base64.b64decode(credentials.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HubError(401, BAD_CREDENTIALS) from None
        if not state.authenticate(username, secret):
            raise HubError(401, BAD_CREDENTIALS)
        return username
    return None


def _namespace_repositories(state: HubState, namespace: str, caller: str | None) -> list[Repository]:
    repositories = state.repositories(namespace, caller)
    if repositories is None:
        raise HubError(404, NOT_FOUND)
    return repositories


def _visible_repository(state: HubState, namespace: str, name: str, request: Request) -> Repository:
    repository = state.repository(namespace, name, request.state.caller)
    if repository is None:
        raise HubError(404, NOT_FOUND)
    return repository


def _ordered(request: Request, repositories: list[Repository]) -> list[Repository]:
    ordering = request.query_params.get("ordering")
    if not ordering:
        return repositories
    field = ordering.removeprefix("-")
    if field not in _ORDERINGS:
        allowed = ", ".join(f"{prefix}{name}" for name in _ORDERINGS for prefix in ("", "-"))
        raise HubError(
            400,
            {
                "fields": {"ordering": [f"Invalid ordering value. Must be one of: {allowed}"]},
                "text": "Invalid ordering value",
            },
        )
    # The input is sorted by name and the sort is stable, so ties stay in name order.
    return sorted(repositories, key=lambda repository: getattr(repository, field), reverse=ordering != field)


def _paginate(
    request: Request, items: Sequence[_Item], max_page_size: int, render: Callable[[_Item], dict[str, Any]]
) -> dict[str, Any]:
    # Only the page is rendered: a namespace of thousands of repositories is read a page at a time.
    page = _int_param(request, "page", 1)
    page_size = min(_int_param(request, "page_size", DEFAULT_PAGE_SIZE), max_page_size)
    start = (page - 1) * page_size
    if page > 1 and start >= len(items):
        raise HubError(404, {"detail": "Invalid page."})

    has_next = start + page_size < len(items)
    return {
        "count": len(items),
        "next": str(request.url.include_query_params(page=page + 1)) if has_next else None,
        "previous": str(request.url.include_query_params(page=page - 1)) if page > 1 else None,
        "results": [render(item) for item in items[start : start + page_size]],
    }


def _int_param(request: Request, name: str, default: int, *, minimum: int = 1) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise HubError(
            400, {"fields": {name: [f"Must be an integer >= {minimum}."]}, "text": f"Invalid {name}"}
        )
    return value


def _relative_url(request: Request, **params: Any) -> str:
    # The build service's paginator links are paths, not absolute URLs.
    url = request.url.include_query_params(**params)
    return f"{url.path}?{url.query}"


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise HubError(400, {"detail": "Request body must be JSON"}) from None
    if not isinstance(body, dict):
        raise HubError(400, {"detail": "Request body must be a JSON object"})
    return body


async def _trigger_body(request: Request) -> dict[str, Any]:
    # The old trigger docs also show form data (``curl --data build=true``).
    raw = (await request.body()).decode("utf-8", errors="replace")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return dict(parse_qsl(raw))
    return body if isinstance(body, dict) else {}
