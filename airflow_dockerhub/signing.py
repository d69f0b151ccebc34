"""Payload signing: let a receiver check that a webhook came from this monitor and was not altered."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-DockerHub-Signature"
#: A receiver should refuse signatures older than this, so a captured webhook cannot be replayed later.
DEFAULT_TOLERANCE = 300


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """
    Sign the exact bytes of a webhook body.

    The header value is ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the secret>``.

    :param body: the request body, byte for byte as sent.
    :param secret: the target's signing secret.
    :param timestamp: when the request is sent, in unix seconds.
    """
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(body: bytes, header: str, secret: str, now: int, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """
    Check a signature header the way a receiver should.

    :param body: the request body as received.
    :param header: the ``X-DockerHub-Signature`` header.
    :param secret: the shared signing secret.
    :param now: the current unix time.
    :param tolerance: how many seconds old a signature may be.
    """
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(body, secret, timestamp), f"t={timestamp},v1={parts.get('v1', '')}")
