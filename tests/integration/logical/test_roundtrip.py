"""A full logical backup of the sample ERP restores to an identical database.

Identical as an independent witness sees it: ``pg_dump --schema-only`` of both (schemas,
enums, domain, functions, triggers, views, partitions, extensions, grants, comments),
every table's rows, every sequence's position, every large object, the materialized view.
"""

from __future__ import annotations

import hashlib

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.repository import iter_stream
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import (
    large_objects,
    schema_dump,
    sequence_values,
    staging_databases,
    table_checksums,
)
from tests.integration.majors import ON_EVERY_MAJOR

pytestmark = pytest.mark.integration


def assert_same_database(pg: TempCluster, source: str, restored: str) -> None:
    assert schema_dump(pg, restored) == schema_dump(pg, source)
    tables = table_checksums(pg, source)
    assert table_checksums(pg, restored) == tables
    assert sequence_values(pg, restored) == sequence_values(pg, source)
    assert large_objects(pg, restored) == large_objects(pg, source)


@ON_EVERY_MAJOR
def test_round_trip_of_the_sample_erp(respaldo: Respaldo, pg: TempCluster, new_dbname: str) -> None:
    source = respaldo.dbname
    # The witness must have something to see, or equality proves nothing.
    tables = table_checksums(pg, source)
    assert len(tables) > 20
    assert tables["finanzas.mv_facturacion_mensual"][0] > 0
    assert tables["obras.partes_trabajo_2024"][0] > 0
    assert large_objects(pg, source).count > 0
    # One sequence handed out values after the load (is_called), the others were set.
    pg.execute(
        "SELECT nextval('finanzas.numero_factura_seq') FROM generate_series(1, 3)", dbname=source
    )
    sequences = sequence_values(pg, source)
    assert sequences["finanzas.numero_factura_seq"][1] is True
    assert len(sequences) > 10
    schema = schema_dump(pg, source)
    for sign in (
        "CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA ext",
        "CREATE TYPE obras.estado_proyecto AS ENUM",
        "CREATE DOMAIN core.nif",
        "ATTACH PARTITION obras.partes_trabajo_2024",
        "CREATE MATERIALIZED VIEW finanzas.mv_facturacion_mensual",
        "CREATE TRIGGER proyectos_auditar_estado",
        "SECURITY DEFINER",
        "GRANT UPDATE(estado) ON TABLE finanzas.facturas TO erp_contabilidad",
        "ALTER DEFAULT PRIVILEGES",
        "COMMENT ON TABLE obras.proyectos",
        "OWNER TO erp_propietario",
    ):
        assert sign in schema, sign

    # Backed up through the real console script, restored in process.
    run = respaldo.run_process("backup", "erp")
    assert run.code == 0, str(run)
    backup_id = run.last_line
    assert run.out.strip() == backup_id
    assert "backup of erp completed" in run.err

    restored = respaldo.restore(backup_id, new_dbname)
    assert f"restored {backup_id} into {new_dbname}" in restored.err
    assert_same_database(pg, source, new_dbname)
    populated = pg.scalar(
        "SELECT ispopulated FROM pg_catalog.pg_matviews"
        " WHERE matviewname = 'mv_facturacion_mensual'",
        dbname=new_dbname,
    )
    assert populated is True
    assert staging_databases(pg) == set()


def test_parallel_restore(respaldo: Respaldo, pg: TempCluster, new_dbname: str) -> None:
    backup_id = respaldo.backup()["id"]
    work = respaldo.tmp / "work"
    work.mkdir()
    run = respaldo.restore(backup_id, new_dbname, "--jobs", "2", "--work-dir", str(work))
    assert "tables' row counts checked" in run.err
    assert_same_database(pg, respaldo.dbname, new_dbname)
    assert list(work.iterdir()) == []  # the spooled dump is gone
    assert staging_databases(pg) == set()


def test_checksum_is_the_sha256_of_the_dump_stream(respaldo: Respaldo) -> None:
    record = respaldo.backup()
    repo = respaldo.repository()
    manifest = repo.load_manifest(record["id"])
    sha = hashlib.sha256()
    size = 0
    first = b""
    for data in iter_stream(repo, manifest, "dump"):
        first = first or data
        sha.update(data)
        size += len(data)
    assert first.startswith(b"PGDMP")  # pg_dump's custom format
    assert record["checksum"] == sha.hexdigest()
    assert record["checksumAlgorithm"] == "sha256"
    # The record's size is everything dumped: the database and the globals.
    globals_size = sum(len(d) for d in iter_stream(repo, manifest, "globals"))
    assert record["sizeBytes"] == size + globals_size
    assert manifest.stream("dump").chunks > 100  # small chunks: a real multi-chunk stream


def test_restore_after_the_database_is_lost(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    """The disaster itself: the configured database is gone. Restoring it under another
    name first (to look before switching) and under its own name both work."""
    source = respaldo.dbname
    tables = table_checksums(pg, source)
    backup_id = respaldo.backup()["id"]
    pg.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(source)))
    respaldo.restore(backup_id, new_dbname)
    assert table_checksums(pg, new_dbname) == tables
    respaldo.restore(backup_id, source)
    assert table_checksums(pg, source) == tables
    assert staging_databases(pg) == set()
