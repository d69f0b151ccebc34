from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_dockerhub.login_guard import block, blocked_message

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def test_a_rejected_login_blocks_the_same_credentials_for_an_hour():
    stored = block("alice", "dckr_pat_old", NOW, "401: Incorrect authentication credentials")
    assert "dckr_pat_old" not in str(stored)

    message = blocked_message(stored, "alice", "dckr_pat_old", NOW + timedelta(minutes=5), "the v variable")
    assert message and "alice" in message and "the v variable" in message
    assert blocked_message(stored, "alice", "dckr_pat_old", NOW + timedelta(minutes=61), "v") is None
    assert blocked_message(stored, "alice", "dckr_pat_new", NOW + timedelta(minutes=5), "v") is None
    assert blocked_message(None, "alice", "dckr_pat_old", NOW, "v") is None
