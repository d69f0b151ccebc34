"""Stop logging in with credentials Docker Hub rejected: repeated failed logins lock the account."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow_dockerhub.builds import parse_timestamp

#: How long a rejected login is not retried, unless the credentials change. Docker Hub's own lockout
#: after failed logins lasts about ten minutes; an hour keeps a stale token from renewing it.
BLOCK_FOR = timedelta(hours=1)


def credentials_fingerprint(login: str | None, secret: str | None) -> str:
    """Tell credentials apart without keeping them: a short digest of the Docker ID and token."""
    return hashlib.sha256(f"{login or ''}\0{secret or ''}".encode()).hexdigest()[:16]


def block(login: str | None, secret: str | None, now: datetime, reason: str) -> dict[str, Any]:
    """
    Describe a rejected login, to be stored until it expires.

    :param login: the Docker ID that was rejected.
    :param secret: the token that was rejected; only its digest is kept.
    :param now: when it was rejected.
    :param reason: what Docker Hub said, without secrets.
    """
    return {
        "docker_id": login,
        "credentials": credentials_fingerprint(login, secret),
        "rejected_at": now.isoformat(),
        "retry_after": (now + BLOCK_FOR).isoformat(),
        "reason": reason,
    }


def blocked_message(
    stored: Any, login: str | None, secret: str | None, now: datetime, setting: str
) -> str | None:
    """
    Say why no login may be tried now, or return ``None`` when one may.

    A stored block counts only for the same credentials and until it expires, so fixing the
    connection's token lifts it at once.

    :param stored: the stored block, or ``None``.
    :param login: the connection's Docker ID.
    :param secret: the connection's token.
    :param now: the current moment.
    :param setting: where the block is stored, named in the message so a person can lift it.
    """
    if not isinstance(stored, Mapping) or stored.get("credentials") != credentials_fingerprint(login, secret):
        return None
    until = parse_timestamp(stored.get("retry_after"))
    if until is None or now >= until:
        return None
    return (
        f"Docker Hub rejected the Docker ID {login!r} at {stored.get('rejected_at')} "
        f"({stored.get('reason')}); no login is tried again before {until.isoformat()} or until the "
        f"connection's credentials change (or delete the {setting} variable), since repeated failed "
        "logins lock the Docker Hub account"
    )
