"""Read the HTTP settings a connection's extra may carry: timeouts and TLS verification."""

from __future__ import annotations

import os
from typing import Any

#: (connect, read) seconds. Connecting should be quick; Docker Hub and receivers can be slow to answer.
DEFAULT_TIMEOUT = (10.0, 30.0)


def parse_timeout(value: Any, setting: str) -> tuple[float, float]:
    """
    Read a timeout: one number for both phases, or a ``[connect, read]`` pair.

    :param value: the raw value, or ``None`` for the default.
    :param setting: where the value came from, named in the error.
    :raise ValueError: when the value is not one or two positive numbers.
    """
    if value is None or value == "":
        return DEFAULT_TIMEOUT
    numbers = value if isinstance(value, (list, tuple)) else [value, value]
    try:
        connect, read = (float(number) for number in numbers)
    except (TypeError, ValueError):
        raise ValueError(
            f"{setting} must be a number of seconds or a [connect, read] pair, got {value!r}"
        ) from None
    if connect <= 0 or read <= 0:
        raise ValueError(f"{setting} must be positive, got {value!r}")
    return (connect, read)


def parse_verify(value: Any, setting: str) -> bool | str:
    """
    Read a TLS verification setting: a boolean, ``"true"``/``"false"``, or the path of a CA bundle.

    :param value: the raw value, or ``None`` for the default (verify).
    :param setting: where the value came from, named in the error.
    :raise ValueError: when the value is none of those.
    """
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", ""):
            return True
        if lowered in ("false", "no", "0"):
            return False
        # requests only finds out when the first request is sent, in an error that names no setting.
        path = value.strip()
        if not os.path.exists(path):
            raise ValueError(f"{setting} names the CA bundle {path!r}, which does not exist on this machine")
        return path
    raise ValueError(f"{setting} must be true, false or the path of a CA bundle, got {value!r}")


def http_backoff() -> float:
    """
    Read the first retry wait, in seconds, from the Airflow configuration (``[dockerhub] http_backoff_seconds``).

    Tests shorten it; the default of one second doubles to 2 and 4 seconds over three retries.
    """
    from airflow.configuration import conf

    return conf.getfloat("dockerhub", "http_backoff_seconds", fallback=1.0)


#: Retries one cycle may spend on Docker Hub reads: a few bad minutes, not an outage, fit in it.
DEFAULT_RETRIES_PER_CYCLE = 30


def retries_per_cycle() -> int:
    """
    Read how many retries one cycle may spend on Docker Hub reads (``[dockerhub] retries_per_cycle``).

    :raise ValueError: naming the option, when it is not a whole number of zero or more.
    """
    from airflow.configuration import conf

    raw = conf.get("dockerhub", "retries_per_cycle", fallback=str(DEFAULT_RETRIES_PER_CYCLE))
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"[dockerhub] retries_per_cycle must be a whole number of zero or more, got {raw!r}")
    return value


#: The most history reads ``[dockerhub] read_concurrency`` may keep in flight; the hook's connection
#: pool holds as many, so each keeps its connection alive.
MAX_READ_CONCURRENCY = 64


def read_concurrency() -> int:
    """
    Read how many Docker Hub history reads a cycle keeps in flight (``[dockerhub] read_concurrency``).

    :raise ValueError: naming the option, when it is not a whole number from 1 to
        :data:`MAX_READ_CONCURRENCY`.
    """
    from airflow.configuration import conf

    from airflow_dockerhub.monitor import DEFAULT_CONCURRENCY

    raw = conf.get("dockerhub", "read_concurrency", fallback=str(DEFAULT_CONCURRENCY))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_READ_CONCURRENCY:
        raise ValueError(
            f"[dockerhub] read_concurrency must be a whole number from 1 to {MAX_READ_CONCURRENCY}, got {raw!r}"
        )
    return value
