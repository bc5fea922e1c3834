"""The sequences a restored table's defaults take their values from, with ``restore --table``.

A default that names its sequence as ``nextval('s'::regclass)`` (serial, identity, the
usual spelling) is a dependency the dump records; ``nextval('s'::text)``, or a function
whose body calls ``nextval('s')``, is not. Either way an insert into the restored table
must take the next value the source would have taken. The witness is the source: its
sequences' state after the backup, and an insert the test makes into the restored table.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from tests.integration.logical.conftest import Respaldo

pytestmark = pytest.mark.integration

_STATE = "SELECT last_value, is_called FROM {}"
_RELATIONS = """
SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('numeracion', 'ventas') ORDER BY 1
"""


def _insert_takes_the_next_value(
    pg: TempCluster, source: str, target: str, table: str, column: str, sequence: str
) -> None:
    """An insert into ``table`` of ``target`` gives ``column`` the value an insert into the
    source's would: the sequence went on from where the backup left it."""
    assert pg.query(_STATE.format(sequence), dbname=target) == pg.query(
        _STATE.format(sequence), dbname=source
    )
    insert = f"INSERT INTO {table} (nota) VALUES ('after the restore') RETURNING {column}"
    assert pg.query(insert, dbname=target) == pg.query(insert, dbname=source)


@pytest.mark.parametrize(
    "default",
    [
        "nextval('numeracion.pedido_seq'::text)",
        "numeracion.siguiente_pedido()",
    ],
    ids=["text-literal", "function"],
)
def test_a_sequence_named_by_text_in_another_schema_comes_with_its_value(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, default: str
) -> None:
    pg.execute(
        "CREATE SCHEMA numeracion; CREATE SEQUENCE numeracion.pedido_seq START 1000;"
        "CREATE FUNCTION numeracion.siguiente_pedido() RETURNS bigint LANGUAGE sql"
        " AS $$ SELECT nextval('numeracion.pedido_seq') $$;"
        "CREATE SCHEMA ventas;"
        f"CREATE TABLE ventas.pedidos (numero bigint NOT NULL DEFAULT {default}, nota text);"
        "INSERT INTO ventas.pedidos (nota) SELECT 'p' || i FROM generate_series(1, 7) i",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]

    run = respaldo.restore(backup_id, new_dbname, "--table", "ventas.pedidos")

    assert "sequence numeracion.pedido_seq is restored too, with its value" in run.err
    assert "ventas.pedidos" in run.err or "numeracion.siguiente_pedido" in run.err
    _insert_takes_the_next_value(
        pg, respaldo.dbname, new_dbname, "ventas.pedidos", "numero", "numeracion.pedido_seq"
    )
    # Nothing else of the other schema.
    assert pg.query(_RELATIONS, dbname=new_dbname) == [
        ("numeracion.pedido_seq",),
        ("ventas.pedidos",),
    ]


def test_sequences_the_dump_records_come_as_before(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # The control: a sequence of another schema named as regclass, one owned by the
    # table (serial) and an identity: restored before this change, and still.
    pg.execute(
        "CREATE SCHEMA numeracion; CREATE SEQUENCE numeracion.pedido_seq START 1000;"
        "CREATE SCHEMA ventas; CREATE TABLE ventas.pedidos ("
        " id bigint GENERATED ALWAYS AS IDENTITY,"
        " linea serial,"
        " numero bigint NOT NULL DEFAULT nextval('numeracion.pedido_seq'), nota text);"
        "INSERT INTO ventas.pedidos (nota) SELECT 'p' || i FROM generate_series(1, 7) i",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]

    run = respaldo.restore(backup_id, new_dbname, "--table", "ventas.pedidos")

    assert "restored too" not in run.err  # the dump's dependencies brought them
    for column, sequence in (
        ("id", "ventas.pedidos_id_seq"),
        ("linea", "ventas.pedidos_linea_seq"),
        ("numero", "numeracion.pedido_seq"),
    ):
        _insert_takes_the_next_value(
            pg, respaldo.dbname, new_dbname, "ventas.pedidos", column, sequence
        )


def test_a_sequence_the_backup_does_not_hold_is_named_in_a_warning(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # The source's own default fails (the sequence is gone): the rows come back, and the
    # warning says which default cannot work, not a "restored" alone.
    pg.execute(
        "CREATE SCHEMA numeracion; CREATE SEQUENCE numeracion.viejo_seq;"
        "CREATE SCHEMA ventas; CREATE TABLE ventas.pedidos ("
        " numero bigint NOT NULL DEFAULT nextval('numeracion.viejo_seq'::text), nota text);"
        "INSERT INTO ventas.pedidos (nota) VALUES ('a'), ('b');"
        "DROP SEQUENCE numeracion.viejo_seq",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]

    run = respaldo.restore(backup_id, new_dbname, "--table", "ventas.pedidos")

    (line,) = [line for line in run.err_lines if "viejo_seq" in line]
    assert "table ventas.pedidos names sequence 'numeracion.viejo_seq'" in line
    assert "the backup does not hold" in line and "will fail" in line
    assert pg.query("SELECT count(*) FROM ventas.pedidos", dbname=new_dbname) == [(2,)]


def test_an_unqualified_name_in_two_schemas_is_named_in_a_warning(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    pg.execute(
        "CREATE SCHEMA numeracion; CREATE SEQUENCE numeracion.pedido_seq;"
        "CREATE SCHEMA archivo; CREATE SEQUENCE archivo.pedido_seq;"
        "CREATE FUNCTION numeracion.siguiente_pedido() RETURNS bigint LANGUAGE sql"
        " SET search_path = numeracion AS $$ SELECT nextval('pedido_seq') $$;"
        "CREATE SCHEMA ventas; CREATE TABLE ventas.pedidos ("
        " numero bigint NOT NULL DEFAULT numeracion.siguiente_pedido(), nota text);"
        "INSERT INTO ventas.pedidos (nota) VALUES ('a')",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]

    run = respaldo.restore(backup_id, new_dbname, "--table", "ventas.pedidos")

    (line,) = [line for line in run.err_lines if "pedido_seq" in line]
    assert "function numeracion.siguiente_pedido() names sequence 'pedido_seq'" in line
    assert "archivo.pedido_seq, numeracion.pedido_seq" in line
    assert "--schema" in line
    # Restoring the schema too brings it.
    other = f"{new_dbname}_2"
    run = respaldo.restore(backup_id, other, "--table", "ventas.pedidos", "--schema", "numeracion")
    _insert_takes_the_next_value(
        pg, respaldo.dbname, other, "ventas.pedidos", "numero", "numeracion.pedido_seq"
    )
