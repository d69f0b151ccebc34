from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_dockerhub.formats import MessageFormat, render_tag
from airflow_dockerhub.freshness import (
    DEFAULT_GRACE,
    FRESH,
    MISSING,
    STALE,
    FreshnessRule,
    TagNotice,
    TagPush,
    judge,
    parse_duration,
    parse_rules,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
VARIABLE = "The dockerhub_freshness_rules variable"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d", timedelta(days=1)),
        ("6h", timedelta(hours=6)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w", timedelta(weeks=1)),
        ("P1D", timedelta(days=1)),
        ("PT6H", timedelta(hours=6)),
        ("P1DT30M", timedelta(days=1, minutes=30)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_durations_read_short_and_iso_8601_forms(text, expected):
    assert parse_duration(text, "interval") == expected


@pytest.mark.parametrize("text", ["", "1", "5 days", "P", "PT", "0h", "-1d", "1y", None, 3600])
def test_durations_that_are_not_positive_durations_are_refused_naming_the_setting(text):
    with pytest.raises(ValueError, match="rule 1.*interval.*positive duration"):
        parse_duration(text, "rule 1 (acme/app:latest): 'interval'")


def test_rules_read_from_json_with_defaults():
    rules = parse_rules(
        '[{"repository": "Acme/App", "tag": "v*", "interval": "1d", "grace": "2h"},'
        ' {"repository": "acme/worker", "interval": "PT6H"}]',
        VARIABLE,
    )
    assert rules == [
        FreshnessRule("acme/app", "v*", timedelta(days=1), timedelta(hours=2)),
        FreshnessRule("acme/worker", "latest", timedelta(hours=6), DEFAULT_GRACE),
    ]
    assert rules[0].is_pattern and not rules[1].is_pattern
    assert parse_rules(None, VARIABLE) == [] and parse_rules("  ", VARIABLE) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"repository": "acme/app"}', "must be a JSON list"),
        ('["acme/app"]', "rule 1 must be a JSON object"),
        ('[{"repository": "acme", "interval": "1d"}]', "rule 1: 'repository' must be namespace/name"),
        ('[{"repository": "acme/app"}]', r"rule 1 \(acme/app:latest\): 'interval' is required"),
        ('[{"repository": "acme/app", "interval": "daily"}]', r"rule 1 \(acme/app:latest\): 'interval'"),
        ('[{"repository": "acme/app", "interval": "1d", "grace": "soon"}]', "'grace' must be a positive"),
        ('[{"repository": "acme/app", "tag": "", "interval": "1d"}]', "'tag' must be a tag name"),
        ('[{"repository": "acme/app", "interval": "1d", "every": "1d"}]', "unknown fields every"),
        (
            '[{"repository": "acme/app", "interval": "1d"}, {"repository": "acme/app", "interval": "2d"}]',
            "rule 2 repeats the rule for acme/app:latest",
        ),
    ],
)
def test_bad_rules_fail_naming_the_variable_the_rule_and_the_field(value, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_rules(value, VARIABLE)
    assert str(raised.value).startswith(VARIABLE)


def rule(tag="latest", interval=timedelta(days=1), grace=timedelta(hours=1)):
    return FreshnessRule("acme/app", tag, interval, grace)


def push(name, hours_ago):
    return TagPush(name, NOW - timedelta(hours=hours_ago))


def test_a_tag_pushed_within_interval_and_grace_is_fresh():
    state = judge(rule(), [push("latest", 24.5), push("v1", 1)], NOW)
    assert state.verdict == FRESH and state.tag == "latest"
    assert state.due == NOW - timedelta(hours=24.5) + timedelta(days=1, hours=1)
    assert state.alert_kind is None


def test_a_tag_not_pushed_within_interval_and_grace_is_stale():
    state = judge(rule(), [push("latest", 25.5), push("v1", 1)], NOW)
    assert state.verdict == STALE and state.tag == "latest" and state.alert_kind == "tag_stale"


def test_a_pattern_counts_the_newest_push_among_matching_tags():
    tags = [push("v1.3", 30), push("v1.4", 2), push("latest", 100), push("nightly", 0)]
    state = judge(rule("v*"), tags, NOW)
    assert state.verdict == FRESH and state.tag == "v1.4"

    old_releases = [push("v1.3", 50), push("v1.4", 30), push("latest", 0)]
    stale = judge(rule("v*"), old_releases, NOW)
    assert stale.verdict == STALE and stale.tag == "v1.4", "a fresh tag outside the pattern does not count"


def test_an_exact_tag_name_is_not_a_pattern():
    assert judge(rule("v1"), [push("v10", 1)], NOW).verdict == MISSING


def test_a_missing_tag_is_missing_only_when_the_listing_was_complete_and_read():
    assert judge(rule("latest"), [push("v1", 1)], NOW).verdict == MISSING
    assert judge(rule("latest"), [push("v1", 1)], NOW, complete=False) is None
    assert judge(rule("latest"), None, NOW) is None, "an unreadable listing decides nothing"


def test_the_tags_last_update_stands_in_for_a_missing_push_time():
    assert TagPush.from_hub(
        {"name": "a", "tag_last_pushed": None, "last_updated": "2026-12-03T10:00:00Z"}
    ) == (TagPush("a", datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)))
    assert TagPush.from_hub({"name": "a", "tag_last_pushed": "2026-12-03T11:00:00.5Z"}).pushed_at.hour == 11


def test_a_later_push_that_goes_stale_again_is_a_new_alert_and_a_missing_tag_one_alert():
    first = judge(rule(), [push("latest", 30)], NOW)
    again = judge(rule(), [push("latest", 30)], NOW + timedelta(hours=5))
    later = judge(rule(), [push("latest", 26)], NOW)
    assert first.event_id == again.event_id != later.event_id
    missing = judge(rule(), [], NOW)
    assert missing.event_id == judge(rule(), [], NOW + timedelta(days=3)).event_id


def test_the_webhook_of_a_stale_tag_has_the_push_webhook_shape():
    state = judge(rule("v*", grace=timedelta(hours=2)), [push("v1.4", 30), push("v1.3", 60)], NOW)
    message = render_tag(MessageFormat.DOCKERHUB, TagNotice.alert(state), NOW)

    assert message.event == "tag.stale" and message.message_id == state.event_id
    body = message.body
    assert body["push_data"] == {
        "pushed_at": int((NOW - timedelta(hours=30)).timestamp()),
        "images": [],
        "tag": "v1.4",
        "pusher": "acme",
    }
    assert body["repository"]["status"] == "Stale" and body["repository"]["repo_name"] == "acme/app"
    assert body["freshness"]["rule_tag"] == "v*" and body["freshness"]["interval_seconds"] == 86400
    assert "4h past due" in body["freshness"]["message"]


def test_chat_messages_of_tags_are_escaped_and_say_what_happened():
    state = judge(FreshnessRule("acme/app", "rel_*", timedelta(days=1)), [push("rel_1", 1)], NOW)
    message = render_tag(MessageFormat.SLACK, TagNotice.fresh(state, ["a1"]), NOW)
    assert message.event == "tag.fresh"
    assert message.body["text"] == "Docker Hub tag pushed again: acme/app:rel_1"
    missing = judge(FreshnessRule("acme/app", "<x>", timedelta(days=1)), [], NOW)
    chat = render_tag(MessageFormat.SLACK, TagNotice.alert(missing), NOW)
    assert chat.event == "tag.missing" and "&lt;x&gt;" in chat.body["text"]
