"""The ``demo`` namespace: one repository for each situation the monitor must tell apart."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_dockerhub.emulator.state import BUILDING, CANCELLED, FAILED, QUEUED, SUCCESS, HubState

DEMO_NAMESPACE = "demo"
DEMO_USER = "demo"
#: A public credential for demos; it protects nothing.
DEMO_SECRET = "dckr_pat_demo-emulator-token"
#: Remote build trigger tokens of the demo repositories that have one.
DEMO_TRIGGER_TOKENS = {
    "api": "0b7e4c1a-3d52-4f8e-9a61-5c2d8e7f1a01",
    "worker": "0b7e4c1a-3d52-4f8e-9a61-5c2d8e7f1a02",
}
#: How many ``healthy-NNN`` repositories pad the namespace past one page of 100.
HEALTHY_COUNT = 105

DAY = 24 * 60.0


def demo_state(now: datetime | None = None) -> HubState:
    """
    Build the ``demo`` namespace, with builds placed relative to ``now``.

    It holds recent failures (one hidden behind a later success of another tag), a cancelled
    build, builds queued or building for too long and for a short while, a repository served
    only by the audit endpoint, one with no history, a private one, a non-automated one, an old
    failure, and enough healthy repositories to need a second page of 100.

    :param now: the state's clock, see :class:`HubState`; real time when omitted.
    """
    # One fixed moment while building, so builds that should end together carry equal timestamps.
    state = HubState(now or datetime.now(timezone.utc))
    state.add_user(DEMO_USER, DEMO_SECRET)
    ns = DEMO_NAMESPACE

    state.add_repository(ns, "api")
    state.add_build(ns, "api", status=SUCCESS, created_minutes_ago=2 * DAY + 7, updated_minutes_ago=2 * DAY)
    state.add_build(ns, "api", status=FAILED, created_minutes_ago=30, updated_minutes_ago=25)
    state.add_build(ns, "api", tag="v1", status=SUCCESS, created_minutes_ago=12, updated_minutes_ago=8)

    state.add_repository(ns, "worker")
    state.add_build(
        ns, "worker", status=FAILED, created_minutes_ago=50, updated_minutes_ago=40, cause="VCS_CHANGE"
    )
    state.add_build(ns, "worker", tag="edge", status=SUCCESS, created_minutes_ago=6, updated_minutes_ago=2)

    state.add_repository(ns, "queue-stuck")
    state.add_build(ns, "queue-stuck", status=QUEUED, created_minutes_ago=95, updated_minutes_ago=95)

    state.add_repository(ns, "long-build")
    state.add_build(ns, "long-build", status=BUILDING, created_minutes_ago=150, updated_minutes_ago=20)

    state.add_repository(ns, "cancelled")
    state.add_build(ns, "cancelled", status=CANCELLED, created_minutes_ago=35, updated_minutes_ago=30)

    state.add_repository(ns, "modern-app", history="audit")
    state.add_build(ns, "modern-app", status=SUCCESS, created_minutes_ago=DAY, updated_minutes_ago=DAY - 6)
    state.add_build(ns, "modern-app", status=FAILED, created_minutes_ago=20, updated_minutes_ago=15)

    state.add_repository(ns, "private-app", private=True)
    state.add_build(ns, "private-app", status=FAILED, created_minutes_ago=25, updated_minutes_ago=22)

    state.add_repository(ns, "no-history", history="none")

    state.add_repository(ns, "docs-site", automated=False)
    state.add_build(ns, "docs-site", status=SUCCESS, created_minutes_ago=60, updated_minutes_ago=55)

    state.add_repository(ns, "old-failure")
    state.add_build(
        ns, "old-failure", status=FAILED, created_minutes_ago=3 * DAY, updated_minutes_ago=3 * DAY
    )

    for index in range(HEALTHY_COUNT):
        name = f"healthy-{index:03d}"
        created = 40 + index % 30
        state.add_repository(ns, name)
        state.add_build(
            ns, name, status=SUCCESS, created_minutes_ago=created, updated_minutes_ago=created - 4
        )

    state.add_repository(ns, "fresh-queue")
    state.add_build(ns, "fresh-queue", status=QUEUED, created_minutes_ago=5)

    state.add_repository(ns, "fresh-build")
    state.add_build(ns, "fresh-build", status=BUILDING, created_minutes_ago=20, updated_minutes_ago=3)

    for name, token in DEMO_TRIGGER_TOKENS.items():
        state.set_trigger(ns, name, token)
    if now is None:
        state.use_real_clock()
    return state
