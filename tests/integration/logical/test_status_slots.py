"""An inactive replication slot that holds WAL on the production server is an amber
status item naming the slot and the statement that drops it (respaldo never drops it).

Before, nothing in 'respaldo status' (nor the API, the page, the metrics, which render
the same report) said anything: PostgreSQL keeps the WAL for the slot until its consumer
comes back, and a slot left by a standby taken away, or kept by 'restore --replace',
grew until the disk was full and the server stopped."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.operations.status_server import read_server
from tests.integration.api.conftest import client
from tests.integration.logical.conftest import Respaldo, password_blind_reader
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def slot_items(respaldo: Respaldo) -> list[dict[str, object]]:
    run = respaldo.run("status", "--json")
    report = json.loads(run.out)
    (erp,) = (db for db in report["databases"] if db["database"] == "erp")
    return [i for i in erp["items"] if i["check"] == "slot"]


def test_an_idle_slot_holding_wal_is_amber_until_dropped(
    respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPALDO_RPO__SLOT_WAL_MB", "2")
    pg = respaldo.pg
    slot = f"forgotten_{uuid.uuid4().hex[:8]}"
    busy = f"t_{uuid.uuid4().hex[:8]}"
    # A slot of a standby that is gone: created, its WAL reserved at once (from the last
    # checkpoint's redo point: one just now), never used.
    pg.execute("CHECKPOINT")
    pg.execute(f"SELECT pg_create_physical_replication_slot('{slot}', true)")
    try:
        assert slot_items(respaldo) == []  # it holds next to nothing yet
        # About 8 MB of WAL written since.
        pg.execute(
            f"CREATE TABLE public.{busy} AS SELECT g, repeat('x', 100) AS pad "
            "FROM generate_series(1, 60000) AS g",
            dbname=respaldo.dbname,
        )
        (item,) = (i for i in slot_items(respaldo) if slot in str(i["key"]))
        assert item["key"] == f"slot:erp:{slot}"
        assert item["level"] == "amber"
        said = str(item["reason"])
        assert f"replication slot {slot} is not in use and holds " in said
        assert "of WAL on the server (more than 2.0 MB)" in said
        assert "the disk fills until the server stops" in said
        statement = f"SELECT pg_drop_replication_slot('{slot}')"
        assert said.endswith(statement)
        shown = respaldo.run("status")
        assert f"slot {slot}" in shown.out and "amber" in shown.out
        # The API renders the same report.
        api: TestClient
        with client(respaldo.settings()) as api:
            status = api.get("/admin/status").json()
            (erp,) = (db for db in status["databases"] if db["database"] == "erp")
            assert f"slot:erp:{slot}" in {i["key"] for i in erp["items"]}
            assert erp["level"] in ("amber", "red")
        # 'respaldo check' warns of it too (a warning: it is no missing setting).
        checked = respaldo.run("check", "erp", "--json")
        (found,) = (f for f in json.loads(checked.out) if f["check"] == f"replication slot {slot}")
        assert found["status"] == "warning", found
        assert "MB of WAL on the server (more than 2.0 MB)" in found["value"], found
        assert found["fix"].endswith(statement), found
        # The statement the reason gives is the way out; respaldo itself dropped nothing.
        assert (
            pg.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            == 1
        )
        pg.execute(statement)
        assert slot_items(respaldo) == []
    finally:
        pg.query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )
        pg.execute(f"DROP TABLE IF EXISTS public.{busy}", dbname=respaldo.dbname)


def test_an_idle_slot_that_max_slot_wal_keep_size_bounds_says_so(
    respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server with max_slot_wal_keep_size set keeps no more WAL than that for a slot:
    PostgreSQL invalidates the slot first, and the disk does not fill. The item said "the
    disk fills until the server stops" there too, and 'check' "which PostgreSQL keeps
    until the disk is full". Both now say what happens: kept up to that size, then the
    slot is invalidated and its consumer cannot resume from it (still amber: a consumer
    coming back after that has to be set up again)."""
    monkeypatch.setenv("RESPALDO_RPO__SLOT_WAL_MB", "2")
    pg = respaldo.pg
    slot = f"bounded_{uuid.uuid4().hex[:8]}"
    busy = f"t_{uuid.uuid4().hex[:8]}"
    pg.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'")
    pg.execute("SELECT pg_catalog.pg_reload_conf()")
    try:
        wait_for(
            "max_slot_wal_keep_size = 1GB",
            lambda: pg.scalar("SHOW max_slot_wal_keep_size") == "1GB",
        )
        pg.execute("CHECKPOINT")
        pg.execute(f"SELECT pg_create_physical_replication_slot('{slot}', true)")
        pg.execute(
            f"CREATE TABLE public.{busy} AS SELECT g, repeat('x', 100) AS pad "
            "FROM generate_series(1, 60000) AS g",
            dbname=respaldo.dbname,
        )
        (item,) = (i for i in slot_items(respaldo) if slot in str(i["key"]))
        assert item["level"] == "amber"
        said = str(item["reason"])
        assert "the disk fills" not in said, said
        assert (
            "PostgreSQL keeps it up to max_slot_wal_keep_size (1.1 GB), then invalidates the "
            "slot and its consumer cannot resume from it" in said
        ), said
        assert said.endswith(f"SELECT pg_drop_replication_slot('{slot}')")
        checked = respaldo.run("check", "erp", "--json")
        (found,) = (f for f in json.loads(checked.out) if f["check"] == f"replication slot {slot}")
        assert found["status"] == "warning", found
        assert "until the disk is full" not in found["value"], found
        assert (
            "kept up to max_slot_wal_keep_size (1073.7 MB), then the slot is invalidated"
            in (found["value"])
        ), found
    finally:
        pg.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
        pg.execute("SELECT pg_catalog.pg_reload_conf()")
        pg.query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )
        pg.execute(f"DROP TABLE IF EXISTS public.{busy}", dbname=respaldo.dbname)


def every_slot_item(respaldo: Respaldo) -> list[str]:
    run = respaldo.run("status", "--json")
    report = json.loads(run.out)
    return [
        str(i["key"]) for db in report["databases"] for i in db["items"] if i["check"] == "slot"
    ]


def test_a_slot_is_shown_once_for_its_server(
    logical_level: TempCluster, respaldo: Respaldo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot is its server's. Every configured database on the server showed its own
    copy (slot:erp:x, slot:erp_hooked:x, slot:crm:x...), and a logical slot of another
    database under each of them: the same slot three times in the status, on the page
    and in the metrics. Now once: a physical slot under the first configured database
    whose dsn reaches the server, a logical slot under the configured database it
    belongs to; the same on every call."""
    monkeypatch.setenv("RESPALDO_RPO__SLOT_WAL_MB", "2")
    pg = logical_level
    crm = f"crm_{uuid.uuid4().hex[:8]}"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(crm)))
    text = respaldo.config.read_text()
    erp_dsn = f'/{respaldo.dbname}"'
    (erp_block,) = (b for b in text.split("[[databases]]") if 'name = "erp"\n' in b)
    crm_block = erp_block.replace('name = "erp"', 'name = "crm"').replace(erp_dsn, f'/{crm}"')
    crm_block = "\n".join(
        line for line in crm_block.splitlines() if not line.startswith("schema_version_query")
    )
    respaldo.config.write_text(text + "\n[[databases]]" + crm_block + "\n")
    physical = f"gone_{uuid.uuid4().hex[:8]}"
    logical = f"sub_{uuid.uuid4().hex[:8]}"
    busy = f"t_{uuid.uuid4().hex[:8]}"
    pg.execute("CHECKPOINT")
    pg.execute(f"SELECT pg_create_physical_replication_slot('{physical}', true)")
    pg.execute(f"SELECT pg_create_logical_replication_slot('{logical}', 'pgoutput')", dbname=crm)
    try:
        pg.execute(
            f"CREATE TABLE public.{busy} AS SELECT g, repeat('x', 100) AS pad "
            "FROM generate_series(1, 60000) AS g",
            dbname=respaldo.dbname,
        )
        first = every_slot_item(respaldo)
        mine = sorted(k for k in first if physical in k or logical in k)
        assert mine == sorted([f"slot:erp:{physical}", f"slot:crm:{logical}"]), first
        assert every_slot_item(respaldo) == first  # the same owner on the next call
        shown = respaldo.run("status").out
        # The table's first column, once each (the reason names the slot too).
        assert shown.count(f"│ slot {physical} ") == 1, shown
        assert shown.count(f"│ slot {logical} ") == 1, shown
    finally:
        respaldo.config.write_text(text)
        for slot in (physical, logical):
            pg.query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (slot,),
            )
        pg.execute(f"DROP TABLE IF EXISTS public.{busy}", dbname=respaldo.dbname)


def test_slots_unreadable_are_said_once_and_not_read_when_off(
    respaldo: Respaldo, caplog: pytest.LogCaptureFixture
) -> None:
    """With [rpo] slot_wal_mb = 0 the slots were read all the same, and a role that
    cannot read them wrote 'cannot read the replication slots' at info on every status
    poll (the page polls; the watchdog every few minutes). Now: not read when off, and
    said at info once per server, at debug after."""
    pg = respaldo.pg
    # Catalog views are each database's own: taken from PUBLIC in the ERP's.
    pg.execute(
        "REVOKE SELECT ON pg_catalog.pg_replication_slots FROM PUBLIC", dbname=respaldo.dbname
    )
    try:
        with password_blind_reader(pg, respaldo):
            db = respaldo.settings().database("erp")
            caplog.set_level(logging.DEBUG, logger="respaldo.operations.status_server")
            off = read_server(db, archiver=False, slots=False)
            assert off.error is None and off.idle_slots is None
            assert "replication slots" not in caplog.text
            for _ in range(3):
                reading = read_server(db, archiver=False, slots=True)
                assert reading.error is None and reading.idle_slots is None
    finally:
        pg.execute(
            "GRANT SELECT ON pg_catalog.pg_replication_slots TO PUBLIC", dbname=respaldo.dbname
        )
    said = [r for r in caplog.records if "cannot read the replication slots" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO, logging.DEBUG, logging.DEBUG], said
    assert "permission denied" in said[0].getMessage()
