from __future__ import annotations

import itertools
import threading

import pytest

from airflow_dockerhub.pacing import Clock, RatePacer


class FakeClock:
    """A clock that moves only when something waits on it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, sleep=self.sleep)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _headers(limit, remaining, reset):
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }


def test_without_rate_limit_headers_nothing_waits():
    fake = FakeClock()
    pacer = RatePacer(clock=fake.clock())
    for _ in range(100):
        assert pacer.acquire()
        pacer.observe({})
    assert fake.waits == [] and pacer.cycle_budget(300) is None


def test_the_requests_left_are_spread_evenly_over_the_rest_of_the_window():
    fake = FakeClock()
    pacer = RatePacer(reserve=2, clock=fake.clock())
    pacer.observe(_headers(180, 12, fake.now + 60))
    started = fake.now
    moments = []
    for _ in range(11):
        assert pacer.acquire()
        moments.append(fake.now - started)
    # 12 left, 2 kept in hand: 10 requests spread over the minute, the 11th only in the next window.
    assert all(moment <= 60 for moment in moments[:10])
    assert moments[10] >= 60
    gaps = [b - a for a, b in itertools.pairwise(moments[:10])]
    assert max(gaps) - min(gaps) < 0.01, "evenly spaced"


def test_a_used_up_window_is_waited_out_unless_that_passes_the_deadline():
    fake = FakeClock()
    pacer = RatePacer(reserve=2, clock=fake.clock())
    pacer.observe(_headers(180, 2, fake.now + 30))
    assert not pacer.acquire(deadline=fake.now + 10)
    assert fake.waits == []
    assert pacer.acquire(deadline=fake.now + 60)
    assert fake.waits and fake.waits[0] == pytest.approx(30.5)


def test_an_older_answer_arriving_late_does_not_raise_what_is_left():
    fake = FakeClock()
    pacer = RatePacer(reserve=0, clock=fake.clock())
    pacer.observe(_headers(180, 1, fake.now + 60))
    pacer.observe(_headers(180, 50, fake.now + 60))
    assert pacer.acquire()
    pacer.acquire()
    assert fake.waits, "one request was left in that window"


def test_the_cycle_budget_follows_the_stated_limit():
    pacer = RatePacer(reserve=18)
    pacer.observe(_headers(180, 170, 2_000_000_000))
    # 162 requests a minute for the four minutes a five-minute cycle reads.
    assert pacer.cycle_budget(240) == 648


def test_threads_share_the_pace():
    fake = FakeClock()
    lock = threading.Lock()
    pacer = RatePacer(
        reserve=0,
        clock=Clock(now=lambda: fake.now, sleep=lambda s: (lock.acquire(), fake.sleep(s), lock.release())),
    )
    pacer.observe(_headers(180, 40, fake.now + 60))
    threads = [threading.Thread(target=lambda: [pacer.acquire() for _ in range(10)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert fake.now - 1_000_000.0 <= 60 + 1e-6, "40 requests fit the window when spread, with no wait past it"


@pytest.mark.parametrize(
    "reset",
    [
        pytest.param(lambda now: (now + 30) * 1000, id="epoch milliseconds"),
        pytest.param(lambda now: now + 6 * 3600, id="hours away"),
    ],
)
def test_a_reset_in_the_wrong_unit_or_far_off_never_pauses_past_the_cap(reset):
    from airflow_dockerhub.pacing import MAX_PAUSE_SECONDS

    fake = FakeClock(1_700_000_000.0)
    pacer = RatePacer(reserve=2, clock=fake.clock())
    pacer.observe(_headers(180, 0, reset(fake.now)))
    assert pacer.acquire()
    assert 0 < sum(fake.waits) <= MAX_PAUSE_SECONDS + 1


def test_a_pause_holds_every_request_until_it_ends_or_the_deadline_comes_first():
    fake = FakeClock()
    pacer = RatePacer(reserve=2, clock=fake.clock())
    pacer.observe(_headers(180, 150, fake.now + 60))
    pacer.pause(60)
    assert not pacer.acquire(deadline=fake.now + 30), "the pause ends after the deadline"
    assert fake.waits == []
    assert pacer.acquire(deadline=fake.now + 120)
    assert 60 <= sum(fake.waits) <= 61
    # A shorter pause asked for later does not shorten a longer one already running.
    pacer.pause(600)
    pacer.pause(5)
    assert not pacer.acquire(deadline=fake.now + 200)
