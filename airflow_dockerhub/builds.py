"""Docker Hub builds: their states and how the two history sources describe them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

#: The two places Docker Hub keeps build history: ``/v2/repositories/{ns}/{repo}/buildhistory/`` for
#: repositories made before the 2018 Docker Cloud merge, the audit-action history for later ones.
LEGACY_HISTORY = "legacy"
AUDIT_HISTORY = "audit"


class BuildState(str, enum.Enum):
    """Where a Docker Hub automated build stands."""

    QUEUED = "queued"
    BUILDING = "building"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A status Docker Hub has not been seen to send, or none at all: the build neither raises an alert
    #: nor resolves one until Docker Hub describes it in a known way.
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether Docker Hub is done with the build: it succeeded, failed or was cancelled."""
        return self in (BuildState.SUCCESS, BuildState.FAILED, BuildState.CANCELLED)


#: Legacy numeric status codes. Codes 2 to 9 are the phases of a running build (claimed, cloned,
#: readme, dockerfile, built, bundled, uploaded, pushed); 0, 1 and 11 all mean "waiting for a builder".
SUCCESS_CODE = 10
CANCELLED_CODE = -4
QUEUED_CODES = frozenset({0, 1, 11})
BUILDING_CODES = frozenset(range(2, 10))

#: States of the audit-action history, lower-cased. Docker Hub has spelled "In progress" with both cases.
AUDIT_STATES = {
    "pending": BuildState.QUEUED,
    "queued": BuildState.QUEUED,
    "in progress": BuildState.BUILDING,
    "building": BuildState.BUILDING,
    "success": BuildState.SUCCESS,
    "failed": BuildState.FAILED,
    "error": BuildState.FAILED,
    "canceled": BuildState.CANCELLED,
    "cancelled": BuildState.CANCELLED,
}


def classify_status(status: Any) -> BuildState:
    """
    Turn a legacy build-history ``status`` code into a build state.

    10 is a success; any negative code is a failure, except -4 which is a cancellation; 0, 1 and 11
    are queued; 2 to 9 are building. Any other value (a code Docker Hub has not been seen to send, or
    no integer at all) is unknown: a malformed answer must not raise an alert, nor end one.

    :param status: the ``status`` field exactly as Docker Hub returned it.
    """
    if isinstance(status, bool) or not isinstance(status, int):
        return BuildState.UNKNOWN
    if status == SUCCESS_CODE:
        return BuildState.SUCCESS
    if status == CANCELLED_CODE:
        return BuildState.CANCELLED
    if status < 0:
        return BuildState.FAILED
    if status in QUEUED_CODES:
        return BuildState.QUEUED
    if status in BUILDING_CODES:
        return BuildState.BUILDING
    return BuildState.UNKNOWN


def classify_audit_state(state: Any) -> BuildState:
    """
    Turn an audit-action ``state`` string into a build state.

    Other strings, and anything that is not a string, are unknown, as unknown legacy codes are.

    :param state: the ``state`` field exactly as Docker Hub returned it.
    """
    if not isinstance(state, str):
        return BuildState.UNKNOWN
    return AUDIT_STATES.get(state.strip().lower(), BuildState.UNKNOWN)


def parse_timestamp(value: Any) -> datetime | None:
    """
    Read a Docker Hub timestamp into an aware UTC datetime.

    Accepts ISO 8601 (``2018-04-24T13:34:33.654759Z``, with or without fraction or offset), the
    RFC 2822 form of the audit history (``Wed, 17 Sep 2014 08:26:22 +0000``) and epoch seconds.

    :param value: the raw field; ``None`` or an unreadable value gives ``None``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            # Out of range, such as milliseconds read as seconds, or not a number at all.
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True)
class Build:
    """
    One build of one tag of a repository, as read from either history source.

    :param namespace: the Docker Hub namespace (user or organization).
    :param repository: the repository name within the namespace.
    :param tag: the Docker tag the build produces; empty when Docker Hub did not say, which is never
        taken for ``latest``.
    :param state: the classified state.
    :param build_key: what identifies this build: its ``build_code``, else its id or uuid.
    :param created: when the build was requested.
    :param last_updated: when Docker Hub last changed the build.
    :param source: the history it was read from, ``legacy`` or ``audit``.
    :param raw: the build's own fields exactly as Docker Hub returned them.
    """

    namespace: str
    repository: str
    tag: str
    state: BuildState
    build_key: str
    created: datetime | None
    last_updated: datetime | None
    source: str
    raw: dict[str, Any] = field(compare=False)

    @property
    def repo_name(self) -> str:
        """The repository as ``namespace/name``."""
        return f"{self.namespace}/{self.repository}"

    @classmethod
    def from_source(cls, source: str, namespace: str, repository: str, item: dict[str, Any]) -> Build:
        """Read one history item from the named source."""
        reader = cls.from_audit if source == AUDIT_HISTORY else cls.from_legacy
        return reader(namespace, repository, item)

    @classmethod
    def from_legacy(cls, namespace: str, repository: str, item: dict[str, Any]) -> Build:
        """Read one item of ``/v2/repositories/{ns}/{repo}/buildhistory/``."""
        created = parse_timestamp(item.get("created_date"))
        return cls(
            namespace=namespace,
            repository=repository,
            tag=str(item.get("dockertag_name") or ""),
            state=classify_status(item.get("status")),
            build_key=str(item.get("build_code") or item.get("id") or ""),
            created=created,
            last_updated=parse_timestamp(item.get("last_updated")) or created,
            source=LEGACY_HISTORY,
            raw=dict(item),
        )

    @classmethod
    def from_audit(cls, namespace: str, repository: str, item: dict[str, Any]) -> Build:
        """Read one object of the audit-action history (``/api/audit/v1/action/``)."""
        created = parse_timestamp(item.get("created"))
        return cls(
            namespace=namespace,
            repository=repository,
            tag=str(item.get("build_tag") or ""),
            state=classify_audit_state(item.get("state")),
            build_key=str(item.get("build_code") or item.get("uuid") or ""),
            created=created,
            last_updated=parse_timestamp(item.get("end_date")) or created,
            source=AUDIT_HISTORY,
            raw=dict(item),
        )


def is_build_action(item: dict[str, Any]) -> bool:
    """Tell whether an audit-action object describes a build (the history also holds pushes)."""
    action = str(item.get("action") or "").lower()
    if "push" in action:
        return False
    return bool(item.get("build_tag") or item.get("build_code"))
