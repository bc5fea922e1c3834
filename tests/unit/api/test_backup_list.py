"""``GET /admin/backups``: the array of records, filters, pages and their headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import BackupKind
from respaldo.operations.context import Context
from respaldo.operations.listing import list_backups
from tests.unit.api.conftest import completed_backup

T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def _five(context: Context) -> list[str]:
    """Five backups a day apart, newest last: erp full x3 (the second verified), erp
    incremental, crm full."""
    return [
        completed_backup(context, "erp", BackupKind.FULL, T0),
        completed_backup(context, "erp", BackupKind.FULL, T0 + timedelta(days=1), verified=True),
        completed_backup(context, "erp", BackupKind.INCREMENTAL, T0 + timedelta(days=2)),
        completed_backup(context, "crm", BackupKind.FULL, T0 + timedelta(days=3)),
        completed_backup(context, "erp", BackupKind.FULL, T0 + timedelta(days=4)),
    ]


def ids(answer: object) -> list[str]:
    assert isinstance(answer, list)
    return [record["id"] for record in answer]


def test_the_list_is_an_array_of_the_cli_records_newest_first(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    made = _five(context)
    with TestClient(create_app(settings, context), headers=admin) as client:
        answer = client.get("/admin/backups")
    assert answer.status_code == 200
    assert answer.json() == [v.to_json() for v in list_backups(context).backups]
    assert ids(answer.json()) == made[::-1]
    assert list(answer.json()[0])[:4] == ["id", "timestamp", "backupType", "storagePath"]
    assert answer.headers["X-Total-Count"] == "5"


def test_filters_combine(settings: Settings, context: Context, admin: dict[str, str]) -> None:
    made = _five(context)
    with TestClient(create_app(settings, context), headers=admin) as client:

        def get(**query: str) -> list[str]:
            answer = client.get("/admin/backups", params=query)
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Total-Count"] == str(len(answer.json()))
            return ids(answer.json())

        assert get(type="full", database="erp") == [made[4], made[1], made[0]]
        assert get(verified="true") == [made[1]]
        assert get(verified="false", type="full") == [made[4], made[3], made[0]]
        assert get(**{"from": "2026-11-21", "to": "2026-11-22T03:00:00Z"}) == [made[2], made[1]]
        assert get(**{"from": "2026-11-23T04:00:00+01:00"}) == [made[4], made[3]]
        assert get(status="failed") == []
        assert get(database="nope") == []


def test_pages_carry_the_total_and_links(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    made = _five(context)
    with TestClient(create_app(settings, context), headers=admin) as client:
        first = client.get("/admin/backups", params={"limit": 2, "type": "full"})
        last = client.get("/admin/backups", params={"limit": 2, "offset": 2, "type": "full"})
    assert ids(first.json()) == [made[4], made[3]]
    assert first.headers["X-Total-Count"] == "4"
    links = first.headers["Link"]
    assert 'limit=2&offset=2>; rel="next"' in links and "type=full" in links
    assert 'rel="prev"' not in links
    assert ids(last.json()) == [made[1], made[0]]
    assert 'limit=2&offset=0>; rel="prev"' in last.headers["Link"]
    assert 'rel="next"' not in last.headers["Link"]


def test_malformed_filters_are_422_problems(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    with TestClient(create_app(settings, context), headers=admin) as client:
        for query in ({"from": "yesterday"}, {"limit": "0"}, {"type": "weekly"}):
            answer = client.get("/admin/backups", params=query)
            assert answer.status_code == 422, (query, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] == 422
        answer = client.get("/admin/backups", params={"from": "yesterday"})
    assert "'yesterday' is not a day or an ISO 8601 time" in answer.json()["detail"], answer.text


def test_a_time_without_its_utc_offset_is_refused_not_taken_for_utc(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    """Before: from=2026-11-23T08:00 was 08:00 UTC, 02:00 for a user in Mexico City who
    typed their own 08:00: six hours of backups silently left out, or let in. Refused, as
    --target-time refuses one; the offset (or a day) is taken."""
    with TestClient(create_app(settings, context), headers=admin) as client:
        for name in ("from", "to"):
            answer = client.get("/admin/backups", params={name: "2026-11-23T08:00"})
            assert answer.status_code == 422, answer.text
            said = answer.json()
            assert "'2026-11-23T08:00' has no UTC offset" in said["detail"], said
            assert "2026-12-01T08:00:00-06:00 (Mexico City)" in said["hint"], said
        for given in ("2026-11-23T08:00:00-06:00", "2026-11-23T14:00Z", "2026-11-23"):
            answer = client.get("/admin/backups", params={"from": given})
            assert answer.status_code == 200, (given, answer.text)
