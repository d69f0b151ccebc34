from __future__ import annotations

import pytest

from airflow_dockerhub.targets import parse_notification_url, redact_url


def test_credentials_in_the_url_become_basic_auth_and_path_and_query_survive():
    target = parse_notification_url("https://usr:p%40ss@host01:10443/jenkins/plugin?token=123&x=a%20b")
    assert target.url == "https://host01:10443/jenkins/plugin?token=123&x=a%20b"
    assert target.auth == ("usr", "p@ss")


def test_connection_login_and_password_are_used_when_the_url_has_none():
    target = parse_notification_url("http://127.0.0.1:8766/hook", "bot", "pw")
    assert target.auth == ("bot", "pw")
    assert parse_notification_url("http://127.0.0.1/hook").auth is None


def test_redacted_form_shows_scheme_and_host_only():
    redacted = redact_url("https://bot:s3cr3t@hooks.example.com/hook?token=abc123&format=json")
    assert redacted == "https://hooks.example.com/***"
    slack = redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET")
    assert slack == "https://hooks.slack.com/***"
    assert redact_url("http://127.0.0.1:8766") == "http://127.0.0.1:8766"
    assert redact_url("not a url") == "***"


def test_secrets_lists_password_url_path_and_secret_query_values():
    target = parse_notification_url("https://u:pw@h/p/T0K3N?api_key=k1&page=2")
    assert sorted(target.secrets()) == sorted(
        ["pw", "https://h/p/T0K3N?api_key=k1&page=2", "/p/T0K3N?api_key=k1&page=2", "k1"]
    )


@pytest.mark.parametrize("url", ["ftp://h/x", "hooks.example.com/x", "https://"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(ValueError, match="absolute http"):
        parse_notification_url(url)
