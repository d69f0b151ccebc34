from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_dockerhub import record_store
from airflow_dockerhub.settings import ALERT_RECORD_VARIABLE

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _alert(event_id):
    return {"event_id": event_id, "repository": "acme/app", "tag": event_id, "build": "b", "kind": "failed"}


@pytest.fixture
def empty_record(airflow_db, monkeypatch):
    """The record in the metadata database, read and written directly, as a task's API calls end up."""
    from airflow.models import Variable

    class DatabaseVariable:
        @staticmethod
        def get(key, default=None):
            return Variable.get(key, default_var=default)

        set = staticmethod(Variable.set)

    monkeypatch.setattr(record_store, "Variable", DatabaseVariable)
    Variable.delete(ALERT_RECORD_VARIABLE)
    yield
    Variable.delete(ALERT_RECORD_VARIABLE)


def test_a_change_replaced_by_another_writer_is_saved_again_with_theirs(empty_record, monkeypatch):
    save = record_store.save_record
    saves = []

    def save_then_overwritten(record):
        save(record)
        saves.append(record.to_stored())
        if len(saves) == 1:
            # Another task read the record before this save and writes its own change right after.
            theirs = record_store.AlertRecord()
            theirs.mark_delivered(_alert("theirs"), "hook", NOW)
            save(theirs)

    monkeypatch.setattr(record_store, "save_record", save_then_overwritten)

    record_store.update_record(lambda record: record.mark_delivered(_alert("ours"), "hook", NOW))

    assert set(record_store.load_record().entries) == {"ours", "theirs"}
    assert len(saves) == 2


def test_nothing_is_written_when_the_change_is_there_already(empty_record, monkeypatch):
    record_store.update_record(lambda record: record.mark_delivered(_alert("a"), "hook", NOW))
    monkeypatch.setattr(record_store, "save_record", lambda record: pytest.fail("saved again"))
    record_store.update_record(lambda record: record.mark_delivered(_alert("a"), "hook", NOW))


def test_a_writer_that_keeps_losing_gives_up_naming_the_variable(empty_record, monkeypatch):
    monkeypatch.setattr(record_store, "save_record", lambda record: None)
    with pytest.raises(RuntimeError, match=ALERT_RECORD_VARIABLE):
        record_store.update_record(lambda record: record.mark_delivered(_alert("a"), "hook", NOW), attempts=3)


def test_a_writer_that_read_before_the_save_and_saves_after_the_read_back_is_caught(
    empty_record, monkeypatch
):
    load = record_store.load_record
    stale = record_store.load_record()  # another task reads the record before this save
    loads = []

    def load_then_overwritten():
        record = load()
        loads.append(record_store.fingerprint(record))
        if len(loads) == 2:
            # The first read-back saw this task's change; the other task saves its stale copy now.
            stale.mark_delivered(_alert("theirs"), "hook", NOW)
            record_store.save_record(stale)
        return record

    monkeypatch.setattr(record_store, "load_record", load_then_overwritten)

    record_store.update_record(lambda record: record.mark_delivered(_alert("ours"), "hook", NOW))

    assert set(load().entries) == {"ours", "theirs"}


def test_the_settle_time_is_read_from_the_airflow_configuration(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DOCKERHUB__RECORD_SETTLE_SECONDS", "0.5")
    assert record_store.record_settle_seconds() == 0.5
    monkeypatch.setenv("AIRFLOW__DOCKERHUB__RECORD_SETTLE_SECONDS", "-1")
    with pytest.raises(ValueError, match=r"\[dockerhub\] record_settle_seconds"):
        record_store.record_settle_seconds()
