"""Databases whose names PostgreSQL's client tools would read as a connection string.

libpq takes a database name holding ``=``, or starting with ``postgresql://``, as a
connection string wherever a tool expands it (pg_dumpall's ``--database``, say): such a
name must reach each tool as a value inside a connection string, never bare. The witness
is the source database, read by the test.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, table_checksums

pytestmark = pytest.mark.integration


def _renamed(respaldo: Respaldo, pg: TempCluster, name: str) -> None:
    """The configured source database renamed to ``name`` (the fixture drops it after)."""
    pg.execute(
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(respaldo.dbname), sql.Identifier(name)
        )
    )
    was = quote(respaldo.dbname, safe="")
    text = respaldo.config.read_text()
    respaldo.config.write_text(text.replace(f'/{was}"', f'/{quote(name, safe="")}"'))
    respaldo.dbname = name


def test_databases_named_like_connection_strings_are_backed_up_with_their_roles(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # pg_dumpall read --database=contabilidad=2024 as a connection string: "could not
    # connect to database", and every backup of that database failed; a name such as
    # "x host=other" would have dumped the roles of another server. One database renamed
    # in turn to each name (one fixture for both), each backed up with its own --jobs.
    for n, (name, jobs) in enumerate(
        [("contabilidad=2024", "1"), ("postgresql://Obra Ñandú", "2")]
    ):
        _renamed(respaldo, pg, name)
        source = table_checksums(pg, name)

        run = respaldo.run("backup", "erp", "--jobs", jobs, "--json")
        assert run.code == 0, str(run)
        backup_id = run.json()["id"]

        target = f"{new_dbname}_{n}"
        restored = respaldo.restore(backup_id, target, "--globals")
        assert table_checksums(pg, target) == source, name
        # The roles came from this cluster's dump: every one of them was already here.
        assert "erp_propietario" in restored.err, str(restored)


def test_names_like_console_markup_or_emoji_codes_are_printed_as_they_are(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # One backup for every name below: each is a restore of it.
    # A database named "[/y]" made the restore end in a traceback and exit 1 after it had
    # succeeded; "[bold]z" was printed as "z"; the same for tables and the kept old copy.
    pg.execute(
        'CREATE TABLE public."[/t]" (id int); INSERT INTO public."[/t]" VALUES (1), (2)',
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]
    source = table_checksums(pg, respaldo.dbname)

    target = f"{new_dbname} [/y] [bold]z"
    run = respaldo.run("restore", backup_id, "--target-database", target)
    assert run.code == 0, str(run)
    assert f"restored {backup_id} into {target}: " in run.err, str(run)
    assert table_checksums(pg, target) == source

    run = respaldo.run("restore", backup_id, "--target-database", target, "--replace")
    assert run.code == 0, str(run)
    (old,) = [n for n in databases(pg) if n.startswith(f"{target}_old_")]
    assert f"into {target}: " in run.err and f"kept as {old}" in run.err, str(run)

    run = respaldo.run(
        "restore", backup_id, "--target-database", f"{new_dbname}_t", "--table", '"[/t]"'
    )
    assert run.code == 0, str(run)
    assert f"restored public.[/t] of {backup_id} into {new_dbname}_t: " in run.err, str(run)
    assert table_checksums(pg, f"{new_dbname}_t") == {"public.[/t]": source["public.[/t]"]}

    # Rich printed "restored ... into t_… ❌ 💨": a name is no emoji code.
    target = f"{new_dbname} :x: :dash:"
    run = respaldo.restore(backup_id, target)
    assert f"restored {backup_id} into {target}: " in run.err, str(run)
    assert table_checksums(pg, target) == source
