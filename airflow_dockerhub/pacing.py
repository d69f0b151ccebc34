"""Spend Docker Hub's rate limit evenly: space requests by what its ``X-RateLimit-*`` headers say is left."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Docker Hub documents its limit per minute; the headers do not say how long a window is.
RATE_WINDOW_SECONDS = 60.0
#: The longest pause any header can impose: a reset or Retry-After further off (a wrong unit, a clock
#: far off) would otherwise keep a worker asleep for hours, and the next cycle comes in minutes anyway.
MAX_PAUSE_SECONDS = 300.0
#: Requests kept unspent in every window when nothing else is known of the requests in flight.
DEFAULT_RESERVE = 2
#: ``X-RateLimit-Reset`` is epoch seconds; a value above this is epoch milliseconds.
MILLISECONDS_THRESHOLD = 100_000_000_000


@dataclass(frozen=True)
class Clock:
    """
    Where the pacer reads the time and how it waits; a benchmark replaces both with a simulated clock.

    :param now: epoch seconds now.
    :param sleep: wait this many seconds.
    """

    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


class RatePacer:
    """
    Let requests go out no faster than Docker Hub's rate limit allows, evenly over its window.

    Every answer may carry ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (epoch seconds). The
    requests left are spread over the rest of the window, keeping ``reserve`` in hand for requests
    already in flight, so a cycle never runs into a 429. Without those headers nothing is paced.
    Safe to share between threads.

    :param reserve: requests kept unspent in every window: at least the requests in flight at once.
    :param clock: the time source and the way to wait.
    """

    def __init__(self, reserve: int = DEFAULT_RESERVE, clock: Clock | None = None) -> None:
        self.reserve = reserve
        self.clock = clock or Clock()
        self.limit: int | None = None
        self.waited = 0.0
        self._remaining: int | None = None
        self._reset = 0.0
        self._issued_since_report = 0
        self._last_issue = float("-inf")
        self._lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> bool:
        """
        Wait until one more request may go out.

        :param deadline: epoch seconds after which no request should start; ``None`` waits as long as
            the window needs.
        :return: ``False``, without waiting, when the request could only start after the deadline.
        """
        with self._lock:
            while True:
                wait = self._wait_needed(self.clock.now())
                if wait <= 0:
                    self._issued_since_report += 1
                    self._last_issue = self.clock.now()
                    return True
                if deadline is not None and self.clock.now() + wait > deadline:
                    return False
                # Waiting under the lock keeps threads in line: each starts one interval after the last.
                self.waited += wait
                self.clock.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take in what an answer says of the rate limit (case-insensitive headers)."""
        try:
            remaining = int(headers.get("X-RateLimit-Remaining", ""))
            reset = float(headers.get("X-RateLimit-Reset", ""))
        except ValueError:
            return
        try:
            limit = int(headers.get("X-RateLimit-Limit", ""))
        except ValueError:
            limit = None
        now = self.clock.now()
        if reset > MILLISECONDS_THRESHOLD:
            reset /= 1000
        reset = min(reset, now + MAX_PAUSE_SECONDS)
        with self._lock:
            if limit is not None:
                self.limit = limit
            # Answers arrive out of order under concurrency; within a window the lowest count is the
            # latest, and a later reset is a new window.
            if reset > self._reset or self._remaining is None or remaining < self._remaining:
                self._remaining = remaining
                self._reset = reset
                self._issued_since_report = 0

    def pause(self, seconds: float) -> None:
        """
        Send nothing for a while: Docker Hub answered 429 and said, or implied, when to come back.

        Every thread waits the pause out before its next request, or gives up when the pause ends
        past its deadline; the pause never exceeds :data:`MAX_PAUSE_SECONDS`.

        :param seconds: how long to wait from now.
        """
        with self._lock:
            until = self.clock.now() + min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
            if self._remaining is not None and self._remaining <= 0 and self._reset >= until:
                return
            self._remaining = 0
            self._reset = until
            self._issued_since_report = 0

    def cycle_budget(self, read_seconds: float) -> int | None:
        """
        Return how many requests fit in a cycle's reading time, or ``None`` when Docker Hub states no limit.

        Each window's requests but the reserve are spread over the window, so this many go out in
        ``read_seconds`` without a wait past them.

        :param read_seconds: how long the cycle may read.
        """
        if self.limit is None:
            return None
        per_window = max(self.limit - self.reserve, 0)
        return math.floor(per_window * read_seconds / RATE_WINDOW_SECONDS)

    def _wait_needed(self, now: float) -> float:
        if self._remaining is None or now >= self._reset:
            # Nothing known, or the window is over: the next answer reports the new one.
            return 0.0
        available = self._remaining - self._issued_since_report - self.reserve
        if available <= 0:
            # Small margin past the reset, as Docker Hub's clock and ours may differ by a moment.
            return self._reset - now + 0.5
        interval = (self._reset - now) / available
        return max(0.0, self._last_issue + interval - now)
