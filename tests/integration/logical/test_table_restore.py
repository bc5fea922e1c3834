"""One table back: ``restore --table/--schema`` into a new database, and ``ls``.

The witness is the source database itself: row counts and a checksum of every row of the
chosen tables, read by the test (not by respaldo), and the catalog of the source for
``ls``.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from sample.cluster import TempCluster

from respaldo.operations import restore as restore_module
from respaldo.postgres.toc import read_listing
from respaldo.repository import iter_stream
from respaldo.repository.reader import read_list
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, staging_databases, table_checksums

pytestmark = pytest.mark.integration

_RELATION_DETAILS = """
SELECT (SELECT count(*) FROM pg_catalog.pg_indexes
         WHERE schemaname = %(schema)s AND tablename = %(table)s),
       (SELECT count(*) FROM pg_catalog.pg_trigger
         WHERE tgrelid = %(name)s::regclass AND NOT tgisinternal),
       (SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_catalog.pg_constraint
         WHERE conrelid = %(name)s::regclass)
"""


def _details(pg: TempCluster, dbname: str, name: str) -> tuple[int, int, str]:
    schema, table = name.split(".")
    with pg.connect(dbname) as conn:
        row = conn.execute(
            _RELATION_DETAILS.encode(), {"schema": schema, "table": table, "name": name}
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


def test_table_restores_exactly_the_chosen_tables(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    source = table_checksums(pg, respaldo.dbname)
    chosen = {"finanzas.facturas", "core.clientes"}

    run = respaldo.restore(
        backup_id, new_dbname, "--table", "finanzas.facturas", "--table", "core.clientes"
    )

    restored = table_checksums(pg, new_dbname)
    assert set(restored) == chosen, "other tables must be absent"
    assert restored == {name: source[name] for name in chosen}
    assert source["finanzas.facturas"][0] > 0
    # Indexes, triggers and constraints of the chosen tables come along; the foreign key
    # to obras.proyectos (not restored) is left out, and said so.
    src = _details(pg, respaldo.dbname, "finanzas.facturas")
    dst = _details(pg, new_dbname, "finanzas.facturas")
    assert dst[:2] == src[:2]
    assert set(dst[2].split(",")) == set(src[2].split(",")) - {"facturas_proyecto_id_fkey"}
    assert "facturas_cliente_id_fkey" in dst[2]  # both ends restored: kept
    assert "facturas_proyecto_id_fkey" in run.err
    assert "obras.proyectos" in run.err
    assert "2 tables' row counts checked" in run.err
    # The sequences the table uses go on from where they were.
    seq = "SELECT last_value FROM finanzas.numero_factura_seq"
    assert pg.query(seq, dbname=new_dbname) == pg.query(seq, dbname=respaldo.dbname)
    assert not staging_databases(pg)
    # The job's record says which tables.
    (job,) = [j for j in respaldo.run("jobs", "--json").json() if j["kind"] == "restore"]
    assert job["params"]["tables"] == "finanzas.facturas, core.clientes"
    assert "schemas" not in job["params"]


def _psql_pipe(pg: TempCluster, source_db: str, query: str, target_db: str, table: str) -> None:
    """``psql -c "\\copy (QUERY) TO STDOUT" | psql -c "\\copy TABLE FROM STDIN"``, as the
    runbook in docs/disaster-recovery.md does it."""
    psql = str(pg.bindir / "psql")
    env = {**os.environ, **pg.libpq_env()}
    reader = subprocess.Popen(
        [psql, "-X", "-d", source_db, "-c", f"\\copy ({query}) TO STDOUT"],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert reader.stdout is not None
    writer = subprocess.run(
        [psql, "-X", "-d", target_db, "-c", f"\\copy {table} FROM STDIN"],
        stdin=reader.stdout,
        env=env,
        capture_output=True,
        check=False,
    )
    reader.stdout.close()
    assert reader.wait() == 0
    assert writer.returncode == 0, writer.stderr


def test_yesterdays_invoices_come_back_as_the_runbook_says(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, respaldo.dbname)
    day = pg.scalar("SELECT max(fecha_emision) FROM finanzas.facturas", dbname=respaldo.dbname)
    of_day = f"SELECT id FROM finanzas.facturas WHERE fecha_emision = '{day}'"
    # The accident: the day's invoices deleted, with their lines and payments.
    pg.execute(
        f"DELETE FROM finanzas.pagos WHERE factura_id IN ({of_day});"
        f"DELETE FROM finanzas.lineas_factura WHERE factura_id IN ({of_day});"
        f"DELETE FROM finanzas.facturas WHERE fecha_emision = '{day}'",
        dbname=respaldo.dbname,
    )
    assert table_checksums(pg, respaldo.dbname)["finanzas.facturas"] != before["finanzas.facturas"]

    tables = ("finanzas.facturas", "finanzas.lineas_factura", "finanzas.pagos")
    respaldo.restore(backup_id, new_dbname, *(f"--table={t}" for t in tables))
    _psql_pipe(
        pg,
        new_dbname,
        f"SELECT * FROM finanzas.facturas WHERE fecha_emision = '{day}'",
        respaldo.dbname,
        "finanzas.facturas",
    )
    for child in tables[1:]:
        _psql_pipe(
            pg,
            new_dbname,
            f"SELECT * FROM {child} WHERE factura_id IN ({of_day})",
            respaldo.dbname,
            child,
        )

    after = table_checksums(pg, respaldo.dbname)
    assert {t: after[t] for t in tables} == {t: before[t] for t in tables}


def test_schema_restores_its_tables(respaldo: Respaldo, pg: TempCluster, new_dbname: str) -> None:
    backup_id = respaldo.backup()["id"]
    source = table_checksums(pg, respaldo.dbname)

    run = respaldo.restore(backup_id, new_dbname, "--schema", "finanzas", "--jobs", "2")

    restored = table_checksums(pg, new_dbname)
    wanted = {name: value for name, value in source.items() if name.startswith("finanzas.")}
    # The materialized view reads only finanzas' tables: it comes, refreshed.
    assert "finanzas.mv_facturacion_mensual" in wanted
    assert restored == wanted
    assert "one job, not 2" in run.err
    # Its view that reads core.clientes cannot come, and the warning says why.
    assert "v_facturas_pendientes" in run.err and "core.clientes" in run.err


def test_unknown_table_is_refused_with_close_names(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)

    run = respaldo.run(
        "restore", backup_id, "--target-database", new_dbname, "--table", "finanzas.factura"
    )

    assert run.code == 1, str(run)
    error, hint = run.err_lines
    assert "finanzas.factura" in error
    assert "finanzas.facturas" in hint
    assert databases(pg) == before, "nothing may be created"


def test_table_with_replace_is_refused(respaldo: Respaldo, pg: TempCluster) -> None:
    backup_id = respaldo.backup()["id"]
    before = table_checksums(pg, respaldo.dbname)

    run = respaldo.run(
        "restore",
        backup_id,
        "--target-database",
        respaldo.dbname,
        "--replace",
        "--table",
        "finanzas.facturas",
    )

    assert run.code == 1, str(run)
    assert "--replace" in run.err_lines[0] and "--table" in run.err_lines[0]
    assert table_checksums(pg, respaldo.dbname) == before


def _table_at_the_dumps_middle(respaldo: Respaldo, backup_id: str) -> str:
    """The table whose data holds the chunk :meth:`Respaldo.damage_dump` damages."""
    repo = respaldo.repository()
    manifest = repo.load_manifest(backup_id)
    entries = read_list(repo, manifest.stream("dump").lists[0])
    middle = sum(length for _, length in entries[: len(entries) // 2])
    starts = sorted((at, int(i)) for i, at in manifest.meta["dump_blocks"].items())
    dump_id = [i for at, i in starts if at <= middle][-1]
    toc = read_listing(iter_stream(repo, manifest, "dump"))
    (table,) = [e.name for e in toc if e.dump_id == dump_id and e.kind == "TABLE DATA"]
    return table


def test_table_restore_of_a_damaged_backup_leaves_nothing(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    table = _table_at_the_dumps_middle(respaldo, backup_id)
    respaldo.damage_dump(backup_id)
    before = databases(pg)

    run = respaldo.run("restore", backup_id, "--target-database", new_dbname, "--table", table)

    assert run.code == 1, str(run)
    assert "chunk" in run.err_lines[0]
    assert databases(pg) == before


def test_a_backup_without_block_offsets_restores_a_table_all_the_same(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Backups taken before block offsets were noted: the dump is read from its start,
    # and pg_restore is fed only the table's block.
    backup_id = respaldo.backup()["id"]
    monkeypatch.setattr(restore_module, "_block_ranges", lambda manifest, selection: None)

    run = respaldo.restore(backup_id, new_dbname, "--table", "finanzas.facturas")

    source = table_checksums(pg, respaldo.dbname)["finanzas.facturas"]
    assert table_checksums(pg, new_dbname) == {"finanzas.facturas": source}
    assert "1 table's row count checked" in run.err


_SOURCE_TABLES = """
SELECT n.nspname, c.relname, c.relkind, pg_catalog.pg_table_size(c.oid)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""


def test_ls_matches_the_database(respaldo: Respaldo, pg: TempCluster) -> None:
    backup_id = respaldo.backup()["id"]
    counts = {name: rows for name, (rows, _) in table_checksums(pg, respaldo.dbname).items()}
    source = pg.query(_SOURCE_TABLES, dbname=respaldo.dbname)
    tables = {f"{s}.{t}" for s, t, _, _ in source}
    # Sizes on the source when the backup was taken (nothing changed since).
    sizes = {f"{s}.{t}": size if kind == "r" else None for s, t, kind, size in source}
    schemas = {
        str(r[0])
        for r in pg.query(
            "SELECT nspname FROM pg_catalog.pg_namespace "
            "WHERE nspname !~ '^pg_' AND nspname NOT IN ('information_schema', 'public')",
            dbname=respaldo.dbname,
        )
    }

    run = respaldo.run("ls", backup_id, "--json")

    assert run.code == 0, str(run)
    listing = run.json()
    assert listing["backupId"] == backup_id
    assert {s["name"] for s in listing["schemas"]} >= schemas
    listed = {f"{t['schema']}.{t['name']}": t for t in listing["tables"]}
    assert set(listed) == tables
    for name, table in listed.items():
        assert table["rows"] == counts.get(name), name  # None for a partitioned table
        assert table["sizeBytes"] == sizes[name], name
    assert listed["obras.partes_trabajo_2020"]["partitionOf"] == "obras.partes_trabajo"
    finanzas = next(s for s in listing["schemas"] if s["name"] == "finanzas")
    assert finanzas["tables"] == 3
    assert finanzas["rows"] == sum(
        rows for name, rows in counts.items() if name.startswith("finanzas.") and name in tables
    )

    text = respaldo.run("ls", backup_id)
    assert text.code == 0, str(text)
    assert "finanzas.facturas" in text.out
    # Each kind of object with its noun agreeing: "3 functions", "2 indexes", "1 view"
    # (it said "3 function").
    plurals = {"index": "indexes"}
    said = ", ".join(
        f"{n} {kind if n == 1 else plurals.get(kind, kind + 's')}"
        for kind, n in listing["objects"].items()
    )
    assert any(n > 1 for n in listing["objects"].values()), listing["objects"]
    # The large objects too (BLOB entries, which it counted as nothing: a backup of
    # 50,001 of them listed none).
    (large_objects,) = pg.query(
        "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata", dbname=respaldo.dbname
    )
    assert large_objects[0] > 0
    assert listing["objects"]["large object"] == large_objects[0], listing["objects"]
    assert f"other objects: {said}\n" in text.out, text.out
