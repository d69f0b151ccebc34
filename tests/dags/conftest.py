"""What the demo namespace must make the monitor send, shared by the DAG tests."""

from __future__ import annotations

import pytest

#: One webhook per problem build of the demo namespace, keyed by repository, tag and status.
DEMO_PROBLEMS = frozenset(
    {
        ("demo/api", "latest", "Failed"),
        ("demo/worker", "latest", "Failed"),
        ("demo/queue-stuck", "latest", "Queued"),
        ("demo/long-build", "latest", "Building"),
        ("demo/cancelled", "latest", "Cancelled"),
        ("demo/modern-app", "latest", "Failed"),
        ("demo/private-app", "latest", "Failed"),
    }
)


@pytest.fixture
def demo_problems():
    """Return the problem builds of the demo namespace, the private one included."""
    return set(DEMO_PROBLEMS)


@pytest.fixture
def public_demo_problems():
    """Return the problem builds an anonymous reader sees: all but the private repository's."""
    return {problem for problem in DEMO_PROBLEMS if problem[0] != "demo/private-app"}


def webhook_key(webhook):
    body = webhook["body"]
    return (body["repository"]["repo_name"], body["push_data"]["tag"], body["repository"]["status"])


@pytest.fixture
def summarize():
    """Return a function that reduces received webhooks to (repository, tag, status) triples."""
    return lambda webhooks: {webhook_key(webhook) for webhook in webhooks}
