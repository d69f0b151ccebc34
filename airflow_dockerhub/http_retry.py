"""Retries for HTTP requests: back off with jitter, honour Retry-After in every form Docker Hub sent it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

#: Never wait longer than this for one retry: a worker slot must not sleep for hours on a Retry-After;
#: the next cycle comes in five minutes anyway.
MAX_RETRY_AFTER = 30.0
#: Docker Hub has sent ``Retry-After`` as an epoch timestamp; any value above this is one.
EPOCH_THRESHOLD = 1_000_000_000


def retry_after_seconds(value: str, now: float, cap: float = MAX_RETRY_AFTER) -> float:
    """
    Read a ``Retry-After`` value as a wait in seconds, clamped to ``[0, cap]``.

    Accepts seconds (``60``), an epoch timestamp (``1746136938``, as Docker Hub sent in 2025) and an
    HTTP date; anything unreadable gives 0, leaving the wait to the backoff.

    :param value: the header value.
    :param now: the current epoch time.
    :param cap: the longest wait allowed.
    """
    text = (value or "").strip()
    try:
        number = float(text)
    except ValueError:
        try:
            number = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return 0.0
    else:
        if number > EPOCH_THRESHOLD:
            number -= now
    return min(max(number, 0.0), cap)


def requested_wait(headers: Mapping[str, str], now: float, cap: float) -> float | None:
    """
    Read how long a 429 asks the client to wait, from ``Retry-After`` or the older ``X-Retry-After``.

    :param headers: the answer's headers (case-insensitive mapping).
    :param now: the current epoch time.
    :param cap: the longest wait believed.
    :return: the wait in seconds, clamped to ``[0, cap]``, or ``None`` when neither header is there.
    """
    for name in ("Retry-After", "X-Retry-After"):
        value = headers.get(name)
        if value is not None and value.strip():
            return retry_after_seconds(value, now, cap)
    return None


class RetryBudget:
    """
    Retries one cycle may spend in all, over all its requests.

    Each request is retried a few times; when Docker Hub is down, that times hundreds of repositories
    would keep a cycle busy far past the next one. Once the budget is spent, requests fail at their
    first fault and the cycle reports what it could not read.

    :param limit: how many retries the cycle may spend.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def spend(self) -> bool:
        """Take one retry from the budget; tell whether there was one left."""
        with self._lock:
            if self.spent >= self.limit:
                return False
            self.spent += 1
            return True


class BoundedRetry(Retry):
    """
    A urllib3 ``Retry`` whose ``Retry-After`` waits are read in every form and never exceed a cap.

    :param budget: retries shared with other requests, or ``None`` for no shared bound.
    """

    def __init__(self, *args: Any, budget: RetryBudget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget

    def new(self, **kwargs: Any) -> BoundedRetry:
        """Keep the shared budget on the copy urllib3 makes after each attempt."""
        retry = super().new(**kwargs)
        retry.budget = self.budget
        return retry

    def increment(self, *args: Any, **kwargs: Any) -> Retry:
        """Give up on a 429 that asks for too long a wait, and spend the shared budget on each retry."""
        response = kwargs.get("response")
        if response is not None and response.status == 429:
            wait = requested_wait(response.headers, time.time(), cap=float("inf"))
            if wait is not None and wait > MAX_RETRY_AFTER:
                # Retrying sooner than asked only earns another 429; the caller gets this one instead,
                # and waits it out before anything else is sent, or leaves the rest for the next cycle.
                raise MaxRetryError(kwargs.get("_pool"), args[1] if len(args) > 1 else kwargs.get("url"))
        # Raises when this request's own retries are spent, before any of the cycle's is taken.
        retry = super().increment(*args, **kwargs)
        if self.budget is not None and not self.budget.spend():
            # No retry left in this cycle: this attempt was the last one.
            return Retry.increment(self.new(total=0), *args, **kwargs)
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        """Read ``Retry-After`` or ``X-Retry-After`` in any form, capped at :data:`MAX_RETRY_AFTER`."""
        # Docker Hub's docs named the header X-Retry-After until 2025; urllib3 reads Retry-After only.
        return requested_wait(response.headers, time.time(), MAX_RETRY_AFTER)

    def parse_retry_after(self, retry_after: str) -> float:
        """Read a ``Retry-After`` value in any form Docker Hub sent it, capped at :data:`MAX_RETRY_AFTER`."""
        return retry_after_seconds(retry_after, time.time())


def docker_hub_retry(backoff: float = 1.0, budget: RetryBudget | None = None) -> BoundedRetry:
    """
    Retry reads from Docker Hub on connection errors, timeouts, 429 and 5xx, a few times, with backoff.

    :param backoff: the first wait in seconds; each retry doubles it, plus up to as much jitter.
    :param budget: retries shared by all requests of one cycle.
    """
    retry = _bounded(
        backoff, total=4, read=2, statuses=(429, 500, 502, 503, 504), methods=frozenset({"GET", "HEAD"})
    )
    retry.budget = budget
    return retry


def delivery_retry(backoff: float = 1.0) -> BoundedRetry:
    """
    Retry webhook deliveries on connection errors, 408, 429 and 5xx, with backoff.

    POST is retried because every attempt carries the same event id header, so a receiver that got
    the first attempt can drop the others. A read timeout is not retried: the receiver may have the
    webhook already, and the next run sends it again rather than piling attempts on a slow receiver.

    :param backoff: the first wait in seconds; each retry doubles it, plus up to as much jitter.
    """
    return _bounded(
        backoff, total=3, read=0, statuses=(408, 429, 500, 502, 503, 504), methods=frozenset({"POST", "GET"})
    )


def _bounded(
    backoff: float, total: int, read: int, statuses: tuple[int, ...], methods: frozenset[str]
) -> BoundedRetry:
    return BoundedRetry(
        total=total,
        connect=3,
        read=read,
        status=3,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        backoff_max=MAX_RETRY_AFTER,
        status_forcelist=statuses,
        allowed_methods=methods,
        respect_retry_after_header=True,
        # The caller reads the last answer and reports it; an exception would hide its status.
        raise_on_status=False,
        raise_on_redirect=False,
    )
