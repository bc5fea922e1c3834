"""The audit log is append-only for the application: no function or method changes or
removes an entry, and the catalog's database refuses UPDATE and DELETE on it."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from respaldo.catalog import AuditLog
from respaldo.domain import AuditAction, AuditOutcome
from respaldo.errors import InvalidInput
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal

pytestmark = pytest.mark.unit


def test_the_catalog_class_can_only_append_and_list() -> None:
    public = {name for name, _ in inspect.getmembers(AuditLog) if not name.startswith("_")}
    assert public == {"append", "list"}


def test_the_application_layer_can_only_record_and_read() -> None:
    functions = {
        name
        for name, value in vars(audit).items()
        if inspect.isfunction(value)
        and value.__module__ == audit.__name__
        and not name.startswith("_")
    }
    # record_local and run_local record too (for the commands that run without the catalog).
    assert functions == {
        "append",
        "record",
        "record_local",
        "run_local",
        "entries",
        "scrub",
        "parse_since",
    }


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET outcome = 'success'", "DELETE FROM audit_log"]
)
def test_the_database_refuses_to_change_or_remove_entries(context: Context, statement: str) -> None:
    audit.record(context, local_principal(), AuditAction.USER_ADD, "x", AuditOutcome.FAILURE)
    with pytest.raises(DatabaseError, match="append-only"), context.catalog.begin() as session:
        session.execute(sa.text(statement))
    (entry,) = audit.entries(context)
    assert entry.outcome == AuditOutcome.FAILURE


def test_entries_filter_by_time_user_and_action(context: Context) -> None:
    me = local_principal()
    audit.record(context, me, AuditAction.USER_ADD, "a", AuditOutcome.SUCCESS)
    audit.record(context, "mallory", AuditAction.LOGIN, "mallory", AuditOutcome.FAILURE)
    newest = audit.entries(context)[0]
    assert [e.target for e in audit.entries(context, user="mallory")] == ["mallory"]
    assert [e.target for e in audit.entries(context, action=AuditAction.USER_ADD)] == ["a"]
    assert [e.id for e in audit.entries(context, since=newest.at)] == [newest.id]
    assert newest.to_json()["outcome"] == "failure"


def test_a_since_without_its_utc_offset_is_refused_naming_the_forms_taken() -> None:
    """`respaldo audit --since 2026-12-01T08:00` and the API's ?since=: refused (which zone
    is not guessed, as --target-time and the backups' from=), the message naming what is
    taken (before: "is not a day or a time with a zone", with only a UTC example)."""
    with pytest.raises(InvalidInput, match="has no UTC offset") as caught:
        audit.parse_since("2026-12-01T08:00")
    assert caught.value.hint is not None and "-06:00 (Mexico City)" in caught.value.hint
    assert audit.parse_since("2026-12-01T08:00-06:00") == datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert audit.parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
