from __future__ import annotations

import pytest

from airflow_dockerhub.http_settings import parse_timeout, parse_verify
from airflow_dockerhub.settings import parse_namespaces, parse_positive_number


def test_namespaces_are_comma_separated_trimmed_and_deduplicated():
    assert parse_namespaces(" acme, acme-labs ,,Acme", "v") == ("acme", "acme-labs")


@pytest.mark.parametrize("value", [None, "", " , "])
def test_missing_namespaces_name_the_setting(value):
    with pytest.raises(ValueError, match="the dockerhub_namespaces variable"):
        parse_namespaces(value, "the dockerhub_namespaces variable")


def test_invalid_namespace_is_named():
    with pytest.raises(ValueError, match="acme/app"):
        parse_namespaces("ok, acme/app", "v")


def test_positive_numbers_default_when_unset_and_refuse_garbage():
    assert parse_positive_number(None, "v", 60) == 60
    assert parse_positive_number("90", "v", 60) == 90
    with pytest.raises(ValueError, match="the x variable"):
        parse_positive_number("soon", "the x variable", 60)
    with pytest.raises(ValueError, match="positive"):
        parse_positive_number(0, "v", 60)


def test_timeout_and_verify_settings(tmp_path):
    assert parse_timeout(None, "t") == (10.0, 30.0)
    assert parse_timeout(5, "t") == (5.0, 5.0)
    assert parse_timeout([1, 2], "t") == (1.0, 2.0)
    with pytest.raises(ValueError, match="the timeout extra"):
        parse_timeout("fast", "the timeout extra")
    assert parse_verify(None, "v") is True
    assert parse_verify("false", "v") is False
    assert parse_verify(False, "v") is False
    bundle = tmp_path / "corp.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert parse_verify(f" {bundle} ", "v") == str(bundle)
    assert parse_verify(str(tmp_path), "v") == str(tmp_path)
    with pytest.raises(ValueError, match="the 'verify' extra of connection hub names the CA bundle"):
        parse_verify(str(tmp_path / "corp-typo.pem"), "the 'verify' extra of connection hub")


def test_counts_are_whole_numbers_and_zero_means_off():
    from airflow_dockerhub.settings import parse_count

    assert parse_count(None, "v", 1) == 1
    assert parse_count("0", "v", 1) == 0
    assert parse_count("3", "v", 1) == 3
    with pytest.raises(ValueError, match="the dockerhub_retry_limit variable must be a whole number"):
        parse_count("0.5", "the dockerhub_retry_limit variable", 1)


@pytest.mark.parametrize("raw", ["0", "65", "many", "-3"])
def test_a_read_concurrency_out_of_range_names_the_option(monkeypatch, raw):
    from airflow_dockerhub.http_settings import read_concurrency

    monkeypatch.setenv("AIRFLOW__DOCKERHUB__READ_CONCURRENCY", raw)
    with pytest.raises(
        ValueError, match=r"\[dockerhub\] read_concurrency must be a whole number from 1 to 64"
    ):
        read_concurrency()


def test_read_concurrency_defaults_to_sixteen_and_takes_the_option(monkeypatch):
    from airflow_dockerhub.http_settings import read_concurrency

    monkeypatch.delenv("AIRFLOW__DOCKERHUB__READ_CONCURRENCY", raising=False)
    assert read_concurrency() == 16
    monkeypatch.setenv("AIRFLOW__DOCKERHUB__READ_CONCURRENCY", "64")
    assert read_concurrency() == 64
