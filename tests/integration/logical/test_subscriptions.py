"""A database that subscribes to another (logical replication): its restore tests, failed
restores and abandoned scratch copies leave nothing on the server, and never reach for
the publisher.

pg_restore creates the backed-up subscription in the copy (disabled, connect = false),
naming the original's replication slot, and PostgreSQL refuses to drop a database that
holds one: every drill of such a database left a whole copy of it on the production
server ('could not drop drill database … is being used by logical replication
subscription', a log line; the drill passed). Dropping the copy's subscription as it is
would connect to the publisher and drop the slot the original is using. The publisher
here is a closed port: a drop that tried to reach it fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres.scratchdb import drop_abandoned
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases
from tests.ports import closed_port

pytestmark = pytest.mark.integration


def _subscribe(pg: TempCluster, dbname: str, name: str = "desde_central") -> None:
    pg.execute(
        sql.SQL(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION obras_pub "
            "WITH (connect = false, slot_name = 'ranura_central')"
        ).format(
            sql.Identifier(name),
            sql.Literal(f"host=127.0.0.1 port={closed_port()} dbname=central"),
        ),
        dbname=dbname,
    )


def _unsubscribe(pg: TempCluster, dbname: str) -> None:
    """Drop every subscription of ``dbname`` without reaching for its publisher."""
    rows = pg.query(
        "SELECT s.subname FROM pg_catalog.pg_subscription s JOIN pg_catalog.pg_database d"
        " ON d.oid = s.subdbid WHERE d.datname = %s",
        [dbname],
    )
    for (name,) in rows:
        ident = sql.Identifier(name)
        pg.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident), dbname=dbname)
        pg.execute(
            sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident), dbname=dbname
        )
        pg.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident), dbname=dbname)


@pytest.fixture
def subscriber(respaldo: Respaldo) -> Iterator[Respaldo]:
    """The test's ERP database subscribed to a publisher that is not there."""
    _subscribe(respaldo.pg, respaldo.dbname)
    try:
        yield respaldo
    finally:
        # The fixtures drop the databases afterwards: not while they subscribe.
        for name in databases(respaldo.pg):
            _unsubscribe(respaldo.pg, name)


def _scratch(pg: TempCluster) -> set[str]:
    return {name for name in databases(pg) if name.startswith("respaldo_")}


def test_a_drill_of_a_subscriber_leaves_no_copy_on_the_server(subscriber: Respaldo) -> None:
    backup_id = subscriber.backup()["id"]

    run = subscriber.run("drill", backup_id)

    assert run.code == 0, str(run)
    assert "passed" in run.err, str(run)
    assert "could not drop" not in run.out + run.err, str(run)
    assert _scratch(subscriber.pg) == set()
    # The original still subscribes, its slot named as before.
    assert subscriber.pg.query(
        "SELECT s.subname, s.subslotname FROM pg_catalog.pg_subscription s"
        " JOIN pg_catalog.pg_database d ON d.oid = s.subdbid WHERE d.datname = %s",
        [subscriber.dbname],
    ) == [("desde_central", "ranura_central")]


def test_an_abandoned_staging_copy_of_a_subscriber_is_dropped(pg: TempCluster) -> None:
    name = "respaldo_staging_0ddba11a"
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        _subscribe(pg, name)

        said = drop_abandoned(pg.conninfo("postgres"))

        assert said == [f"dropped staging database {name}, left by an interrupted restore or drill"]
        assert name not in databases(pg)
    finally:
        if name in databases(pg):
            _unsubscribe(pg, name)
            pg.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_drop_old_that_cannot_drop_a_subscriber_keeps_it_and_the_restore_succeeds(
    subscriber: Respaldo,
) -> None:
    # The swap is done before the old database is dropped: a drop PostgreSQL refuses (the
    # old database subscribes) failed the whole command with only the drop's error, as
    # if nothing had been restored.
    backup_id = subscriber.backup()["id"]
    before = databases(subscriber.pg)

    run = subscriber.run(
        "restore", backup_id, "--target-database", subscriber.dbname, "--replace", "--drop-old"
    )

    assert run.code == 0, str(run)
    [old] = databases(subscriber.pg) - before
    assert old.startswith(f"{subscriber.dbname}_old_")
    assert f"warning: the previous database is kept as {old}: it could not be dropped" in " ".join(
        run.err.split()
    ), str(run)
    assert "logical replication subscription" in run.err, str(run)
    assert f"previous database kept as {old}" in " ".join(run.err.split()), str(run)
    assert subscriber.pg.scalar("SELECT count(*) > 0 FROM obras.proyectos", dbname=old)
    assert subscriber.pg.scalar(
        "SELECT count(*) > 0 FROM obras.proyectos", dbname=subscriber.dbname
    )


def test_a_replace_of_a_subscriber_says_that_replication_stays_with_the_old_database(
    subscriber: Respaldo,
) -> None:
    # The subscription of the database the application uses goes on in the old one, now
    # renamed, and the restored one's is disabled (as pg_restore makes it): the restore
    # said only 'previous database kept as …', and replicated changes silently went on
    # arriving where the application no longer looks.
    pg, dbname = subscriber.pg, subscriber.dbname
    pg.execute("ALTER SUBSCRIPTION desde_central ENABLE", dbname=dbname)
    backup_id = subscriber.backup()["id"]
    before = databases(pg)

    run = subscriber.run("restore", backup_id, "--target-database", dbname, "--replace")

    assert run.code == 0, str(run)
    [old] = databases(pg) - before
    said = " ".join(run.err.split())
    assert (
        f"warning: the replaced database, kept as {old}, still subscribes (desde_central) "
        f"and receives the publisher's changes; {dbname} has them restored disabled"
    ) in said, str(run)
    assert "SET (slot_name = NONE)" in said, str(run)
    enabled = (
        "SELECT s.subenabled FROM pg_catalog.pg_subscription s"
        " JOIN pg_catalog.pg_database d ON d.oid = s.subdbid WHERE d.datname = %s"
    )
    assert pg.query(enabled, [old]) == [(True,)]
    assert pg.query(enabled, [dbname]) == [(False,)]


def test_a_replace_of_a_database_whose_subscription_is_disabled_says_nothing_of_it(
    subscriber: Respaldo,
) -> None:
    backup_id = subscriber.backup()["id"]

    run = subscriber.run("restore", backup_id, "--target-database", subscriber.dbname, "--replace")

    assert run.code == 0, str(run)
    assert "subscribes" not in run.err, str(run)


def test_a_subscriber_restored_under_a_new_name_says_how_to_drop_its_copies(
    new_dbname: str, subscriber: Respaldo
) -> None:
    # (new_dbname first: its database is dropped after the fixture unsubscribed it.)
    # The copy holds the subscription, disabled, naming the original's slot: DROP
    # DATABASE of it is refused, and the DROP SUBSCRIPTION that then comes to mind drops
    # the slot the original subscriber uses on the publisher. The restore said nothing.
    pg = subscriber.pg
    backup_id = subscriber.backup()["id"]

    run = subscriber.run("restore", backup_id, "--target-database", new_dbname)

    assert run.code == 0, str(run)
    said = " ".join(run.err.split())
    assert (
        f"warning: {new_dbname} holds the backed-up database's subscriptions (desde_central), "
        "disabled, naming the replication slots the original subscriber uses"
    ) in said, str(run)
    assert f"in {new_dbname}: ALTER SUBSCRIPTION … SET (slot_name = NONE)" in said, str(run)
    assert pg.query(
        "SELECT s.subenabled, s.subslotname FROM pg_catalog.pg_subscription s"
        " JOIN pg_catalog.pg_database d ON d.oid = s.subdbid WHERE d.datname = %s",
        [new_dbname],
    ) == [(False, "ranura_central")]
