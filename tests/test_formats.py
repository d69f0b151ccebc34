from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.alerts import Alert, AlertKind
from airflow_dockerhub.builds import Build
from airflow_dockerhub.formats import MAX_GROUP_LINES, MessageFormat, duration_text, render
from airflow_dockerhub.notices import Notice

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def failed(repo="app", tag="latest", code="bcode1", ran_seconds=255, status=-1, namespace="acme"):
    created = NOW - timedelta(minutes=30)
    item = {
        "id": 7,
        "status": status,
        "created_date": created.isoformat(),
        "last_updated": (created + timedelta(seconds=ran_seconds)).isoformat(),
        "build_code": code,
        "dockertag_name": tag,
        "cause": None,
    }
    return Build.from_legacy(namespace, repo, item)


def notice(build, kind=AlertKind.FAILED):
    return Notice.for_alert(Alert(kind, build))


def test_slack_message_has_text_link_fields_and_escapes_markup():
    build = failed(repo="app", tag="v1<b>&x", code="bc1")
    [message] = render(MessageFormat.SLACK, [notice(build)], NOW)

    assert message.event == "build.failed"
    assert message.body == {
        "text": "Docker Hub build failed: acme/app:v1&lt;b&gt;&amp;x",
        "attachments": [
            {
                "title": "acme/app:v1<b>&x",
                "title_link": "https://hub.docker.com/r/acme/app/builds/bc1",
                "color": "#d40e0d",
                "text": "<https://hub.docker.com/r/acme/app/builds/bc1|Build bc1 on Docker Hub>",
                "fields": [
                    {"title": "Repository", "value": "acme/app", "short": True},
                    {"title": "Tag", "value": "v1&lt;b&gt;&amp;x", "short": True},
                    {"title": "Status", "value": "Failed (-1)", "short": True},
                    {"title": "Ran", "value": "4m 15s", "short": True},
                ],
            }
        ],
    }


def test_rocketchat_message_uses_markdown_links_and_escapes_markdown():
    build = failed(repo="my_app", tag="*beta*", code="bc2", status=-4)
    [message] = render(MessageFormat.ROCKETCHAT, [notice(build, AlertKind.CANCELLED)], NOW)

    assert message.body["text"] == "Docker Hub build cancelled: acme/my\\_app:\\*beta\\*"
    [attachment] = message.body["attachments"]
    assert attachment["text"] == "[Build bc2 on Docker Hub](https://hub.docker.com/r/acme/my_app/builds/bc2)"
    assert {"title": "Status", "value": "Cancelled (-4)", "short": True} in attachment["fields"]


def test_queued_notice_says_how_long_it_has_been_waiting():
    created = NOW - timedelta(minutes=95)
    item = {
        "id": 1,
        "status": 0,
        "created_date": created.isoformat(),
        "last_updated": created.isoformat(),
        "build_code": "bq",
        "dockertag_name": "latest",
        "cause": None,
    }
    build = Build.from_legacy("acme", "app", item)
    [message] = render(MessageFormat.SLACK, [notice(build, AlertKind.QUEUED_TOO_LONG)], NOW)
    assert message.body["text"] == "Docker Hub build queued too long: acme/app:latest"
    assert {"title": "Waiting", "value": "1h 35m", "short": True} in message.body["attachments"][0]["fields"]


def test_long_values_are_cut_to_the_limits():
    build = failed(tag="t" * 5000)
    [message] = render(MessageFormat.SLACK, [notice(build)], NOW)
    assert len(message.body["text"]) <= 3000
    assert all(len(field["value"]) <= 300 for field in message.body["attachments"][0]["fields"])


def test_many_notices_in_one_cycle_become_one_grouped_chat_message():
    notices = [notice(failed(repo=f"r{i:02d}", code=f"c{i}")) for i in range(MAX_GROUP_LINES + 5)]

    [message] = render(MessageFormat.SLACK, notices, NOW, group_from=5)

    assert message.event == "build.grouped"
    assert set(message.notice_ids) == {n.notice_id for n in notices}
    assert message.body["text"].startswith("Docker Hub: 25 build notices in acme")
    lines = message.body["attachments"][0]["text"].splitlines()
    assert len(lines) == MAX_GROUP_LINES + 1 and lines[-1] == "+5 more"
    again = render(MessageFormat.SLACK, list(reversed(notices)), NOW, group_from=5)[0]
    assert again.message_id == message.message_id


def test_dockerhub_format_never_groups_and_keeps_the_webhook_shape():
    notices = [notice(failed(repo=f"r{i}", code=f"c{i}")) for i in range(6)]
    messages = render(MessageFormat.DOCKERHUB, notices, NOW, group_from=5)
    assert len(messages) == 6
    assert messages[0].body["repository"]["status"] == "Failed"
    assert messages[0].message_id == notices[0].notice_id


def test_resolved_notice_reads_as_good_news():
    success = failed(code="bgood", status=10)
    resolved = Notice.resolved(["alert-1"], success)
    [chat] = render(MessageFormat.SLACK, [resolved], NOW)
    assert chat.event == "build.resolved"
    assert chat.body["text"] == "Docker Hub build succeeded again: acme/app:latest"
    assert chat.body["attachments"][0]["color"] == "#2eb886"
    [hook] = render(MessageFormat.DOCKERHUB, [resolved], NOW)
    assert hook.body["repository"]["status"] == "Resolved"
    assert hook.body["build_history"]["build_code"] == "bgood"


@pytest.mark.parametrize(("seconds", "text"), [(40, "40s"), (255, "4m 15s"), (7500, "2h 5m"), (-3, "0s")])
def test_durations_read_like_people_write_them(seconds, text):
    assert duration_text(seconds) == text


def test_unknown_format_names_the_setting():
    with pytest.raises(ValueError, match="the format extra"):
        MessageFormat.parse("teams", "the format extra")


@pytest.mark.parametrize(
    ("outcome", "headline"),
    [
        ("refused", "Docker Hub rebuild refused: acme/app:latest"),
        ("not_honored", "Docker Hub rebuild requested, but no new build started: acme/app:latest"),
    ],
)
def test_rebuild_problems_do_not_read_like_a_second_failure(outcome, headline):
    problem = Notice.retry_problem("alert-1", failed(), outcome)
    [chat] = render(MessageFormat.ROCKETCHAT, [problem], NOW)
    assert chat.body["text"] == headline
    assert chat.event == f"build.retry_{outcome}"
