"""A database that publishes to subscribers (logical replication), replaced by a restore.

A logical replication slot belongs to the database it was created in (by OID), not to
its name: ``--replace`` renames the publisher to ``<name>_old_<time>`` with its
subscribers' slots. The subscribers connect to the name again, reach the restored
database, which has no such slot, and receive nothing ('replication slot … was not
created in this database', every few seconds in their log); the slot left in the old
database keeps the server's WAL from being recycled (209 MB retained after 200 MB of
writes, growing until the disk fills). With ``--drop-old``, DROP DATABASE drops the slots
with it. Either way the restore said only 'previous database kept as …' or 'previous
database dropped'.

The subscriber here is a real one, on a second cluster; the server is switched to
``wal_level = logical`` (a restart) for this module and back after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

_SLOTS = "SELECT slot_name, database FROM pg_catalog.pg_replication_slots ORDER BY 1"


@pytest.fixture(scope="module")
def subscriber_cluster(pg: TempCluster) -> Iterator[TempCluster]:
    cluster = TempCluster.create(bindir=pg.bindir)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def publisher(logical_level: TempCluster, respaldo: Respaldo) -> Iterator[Respaldo]:
    """The test's ERP database publishing a table of its own."""
    logical_level.execute(
        "CREATE TABLE public.partes (id int PRIMARY KEY, texto text);"
        "INSERT INTO public.partes VALUES (1, 'antes del respaldo');"
        "CREATE PUBLICATION partes_pub FOR TABLE public.partes",
        dbname=respaldo.dbname,
    )
    try:
        yield respaldo
    finally:
        # A slot would outlive its database's drop in a test that failed half-way (and
        # stop the server's restart to wal_level = replica); a subscription disabled
        # lets go of its slot once its worker has ended.
        wait_for(
            "the slots let go",
            lambda: (
                not logical_level.scalar(
                    "SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE active"
                )
            ),
        )
        for slot, _ in logical_level.query(_SLOTS):
            logical_level.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", [slot])


def _subscribe(sub: TempCluster, pub: TempCluster, dbname: str) -> None:
    sub.execute("DROP DATABASE IF EXISTS obra WITH (FORCE)")
    sub.execute("CREATE DATABASE obra")
    sub.execute("CREATE TABLE public.partes (id int PRIMARY KEY, texto text)", dbname="obra")
    connection = (
        f"host={pub.host} port={pub.port} dbname={dbname} user={pub.superuser} "
        f"password={pub.password.get_secret_value()}"
    )
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION partes_sub CONNECTION {} PUBLICATION partes_pub").format(
            sql.Literal(connection)
        ),
        dbname="obra",
    )


def _rows(sub: TempCluster) -> list[tuple[int, str]]:
    return [
        (int(i), str(t))
        for i, t in sub.query("SELECT * FROM public.partes ORDER BY id", dbname="obra")
    ]


def _unsubscribe(sub: TempCluster) -> None:
    """Drop the subscription (if there) without reaching for the publisher."""
    if not sub.scalar("SELECT count(*) FROM pg_catalog.pg_subscription", dbname="obra"):
        return
    for statement in (
        "ALTER SUBSCRIPTION partes_sub DISABLE",
        "ALTER SUBSCRIPTION partes_sub SET (slot_name = NONE)",
        "DROP SUBSCRIPTION partes_sub",
    ):
        sub.execute(statement, dbname="obra")


def test_a_replace_of_a_publisher_says_its_subscribers_slots_stay_behind(
    publisher: Respaldo, subscriber_cluster: TempCluster
) -> None:
    pg, dbname, sub = publisher.pg, publisher.dbname, subscriber_cluster
    _subscribe(sub, pg, dbname)
    try:
        wait_for("the initial copy", lambda: _rows(sub) == [(1, "antes del respaldo")])
        backup_id = publisher.backup()["id"]
        pg.execute("INSERT INTO public.partes VALUES (2, 'después')", dbname=dbname)
        wait_for("row 2 replicated", lambda: len(_rows(sub)) == 2)
        before = databases(pg)

        run = publisher.run("restore", backup_id, "--target-database", dbname, "--replace")

        assert run.code == 0, str(run)
        [old] = databases(pg) - before
        said = " ".join(run.err.split())
        assert (
            f"warning: the replaced database, kept as {old}, holds the logical replication "
            f"slots of its subscribers (partes_sub): they stay with it"
        ) in said, str(run)
        assert f"subscribers that connect to {dbname} fail" in said, str(run)
        assert "keeps this server from recycling WAL" in said, str(run)
        assert (
            f"on this server: SELECT pg_drop_replication_slot('partes_sub') (or drop {old})"
        ) in said, str(run)
        # As said: the slot is the old database's, the restored one has none.
        assert pg.query(_SLOTS) == [("partes_sub", old)]

        # The statements the warning names bring replication back into the restored one.
        _unsubscribe(sub)
        sub.execute("TRUNCATE public.partes", dbname="obra")
        pg.execute("SELECT pg_catalog.pg_drop_replication_slot('partes_sub')")
        _subscribe(sub, pg, dbname)
        pg.execute("INSERT INTO public.partes VALUES (3, 'tras restaurar')", dbname=dbname)
        wait_for(
            "replication into the restored database",
            lambda: _rows(sub) == [(1, "antes del respaldo"), (3, "tras restaurar")],
        )
        assert pg.query(_SLOTS) == [("partes_sub", dbname)]
    finally:
        _unsubscribe(sub)


def test_drop_old_of_a_publisher_says_its_subscribers_slots_were_dropped(
    publisher: Respaldo,
) -> None:
    pg, dbname = publisher.pg, publisher.dbname
    pg.execute(
        "SELECT pg_catalog.pg_create_logical_replication_slot('partes_sub', 'pgoutput')",
        dbname=dbname,
    )
    backup_id = publisher.backup()["id"]
    before = databases(pg)

    run = publisher.run(
        "restore", backup_id, "--target-database", dbname, "--replace", "--drop-old"
    )

    assert run.code == 0, str(run)
    assert databases(pg) == before
    said = " ".join(run.err.split())
    assert (
        "warning: the replaced database's logical replication slots (partes_sub) were "
        f"dropped with it: the subscribers that connect to {dbname} fail"
    ) in said, str(run)
    assert "CREATE SUBSCRIPTION again" in said, str(run)
    assert "pg_drop_replication_slot" not in said, str(run)
    assert pg.query(_SLOTS) == []


def test_a_replace_of_a_database_without_slots_says_nothing_of_them(
    publisher: Respaldo,
) -> None:
    # A publication alone (nobody subscribed): no slot, nothing to say.
    backup_id = publisher.backup()["id"]

    run = publisher.run("restore", backup_id, "--target-database", publisher.dbname, "--replace")

    assert run.code == 0, str(run)
    assert "replication slot" not in run.err, str(run)
