"""One table back, and its row-count check, for names and tables the sample ERP lacks:
a schema with a space in its name, an inheritance parent, dotted names.

The witness is the source database (row counts and a checksum of every row, read by the
test), as in test_table_restore.py.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from respaldo.operations import backup as backup_module
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import databases, table_checksums

pytestmark = pytest.mark.integration

_ORDINARY_TABLES = """
SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
"""


def _checked_every_table(pg: TempCluster, dbname: str, err: str) -> bool:
    """Whether a restore's message says it checked the row count of every ordinary table
    (leaf partitions included) of ``dbname``."""
    return f"{pg.scalar(_ORDINARY_TABLES, dbname=dbname)} tables' row counts checked" in err


def test_a_schema_with_a_space_in_its_name_comes_back(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # pg_restore --list prints names unquoted: "TABLE Mis Ventas lineas owner".
    pg.execute(
        'CREATE SCHEMA "Mis Ventas";'
        'CREATE TABLE "Mis Ventas".lineas (id int PRIMARY KEY, t text);'
        "INSERT INTO \"Mis Ventas\".lineas SELECT g, 'x' FROM generate_series(1, 7) g",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]
    source = table_checksums(pg, respaldo.dbname)["Mis Ventas.lineas"]

    listing = respaldo.run("ls", backup_id, "--json")
    assert listing.code == 0, str(listing)
    (table,) = [t for t in listing.json()["tables"] if t["name"] == "lineas"]
    assert (table["schema"], table["rows"]) == ("Mis Ventas", 7)

    by_schema = respaldo.restore(backup_id, new_dbname, "--schema", "Mis Ventas")
    assert table_checksums(pg, new_dbname) == {"Mis Ventas.lineas": source}
    assert "1 table's row count checked" in by_schema.err

    by_table = respaldo.restore(backup_id, f"{new_dbname}_t", "--table", '"Mis Ventas".lineas')
    assert table_checksums(pg, f"{new_dbname}_t") == {"Mis Ventas.lineas": source}
    assert "1 table's row count checked" in by_table.err


def test_an_inheritance_parent_comes_back_with_its_own_rows(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # count(*) of a parent reads its children too; its dump holds only its own rows.
    pg.execute(
        "CREATE TABLE public.padre (id int, v text);"
        "CREATE TABLE public.hijo (extra int) INHERITS (public.padre);"
        "INSERT INTO public.padre VALUES (1, 'a'), (2, 'b');"
        "INSERT INTO public.hijo VALUES (3, 'c', 1), (4, 'd', 2), (5, 'e', 3)",
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]
    own = pg.query("SELECT count(*) FROM ONLY public.padre", dbname=respaldo.dbname)

    run = respaldo.restore(backup_id, new_dbname, "--table", "public.padre")

    assert pg.query("SELECT count(*) FROM public.padre", dbname=new_dbname) == own
    assert "1 table's row count checked" in run.err
    listing = respaldo.run("ls", backup_id, "--json").json()
    rows = {t["name"]: t["rows"] for t in listing["tables"] if t["schema"] == "public"}
    assert (rows["padre"], rows["hijo"]) == (2, 3)
    # A full restore checks both, each with its own rows.
    full = respaldo.restore(backup_id, f"{new_dbname}_full")
    assert table_checksums(pg, f"{new_dbname}_full") == table_checksums(pg, respaldo.dbname)
    assert _checked_every_table(pg, respaldo.dbname, full.err), full.err


def _backup_with_dotted_names(respaldo: Respaldo, pg: TempCluster) -> str:
    """Tables "a.b".c (2 rows) and a."b.c" (1 row) in the test database, backed up;
    returns the backup's id."""
    pg.execute(
        'CREATE SCHEMA "a.b"; CREATE TABLE "a.b".c (id int); INSERT INTO "a.b".c VALUES (1), (2);'
        'CREATE SCHEMA a; CREATE TABLE a."b.c" (id int); INSERT INTO a."b.c" VALUES (1)',
        dbname=respaldo.dbname,
    )
    return str(respaldo.backup()["id"])


def test_dotted_names_are_counted_and_checked_apart(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # "a.b".c and a."b.c" would both be a.b.c: one count would check the other table.
    backup_id = _backup_with_dotted_names(respaldo, pg)

    for name, count in (('"a.b".c', 2), ('a."b.c"', 1)):
        target = f"{new_dbname}_{count}"
        run = respaldo.restore(backup_id, target, "--table", name)
        assert "1 table's row count checked" in run.err
        assert pg.query("SELECT count(*) FROM " + name, dbname=target) == [(count,)]

    # A schema's name is one name, dot and all; quotes are optional.
    for i, schema in enumerate(("a.b", '"a.b"')):
        target = f"{new_dbname}_s{i}"
        respaldo.restore(backup_id, target, "--schema", schema)
        assert pg.query('SELECT count(*) FROM "a.b".c', dbname=target) == [(2,)]
        assert pg.scalar("SELECT to_regclass('a.\"b.c\"')", dbname=target) is None

    listing = respaldo.run("ls", backup_id, "--json").json()
    rows = {(t["schema"], t["name"]): t["rows"] for t in listing["tables"]}
    assert (rows[("a.b", "c")], rows[("a", "b.c")]) == (2, 1)
    # A full restore checks every table, both of these included.
    full = respaldo.restore(backup_id, f"{new_dbname}_full")
    assert _checked_every_table(pg, respaldo.dbname, full.err), full.err


def test_an_unquoted_name_with_two_readings_is_refused_and_one_with_one_is_found(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # a.b.c was read as a."b.c" alone: with "a.b".c in the backup too, that one was
    # restored without a word. Now it is refused, nothing created, both named.
    backup_id = _backup_with_dotted_names(respaldo, pg)
    before = databases(pg)

    refused = respaldo.run(
        "restore", backup_id, "--target-database", new_dbname, "--table", "a.b.c"
    )
    assert refused.code != 0, str(refused)
    assert "table 'a.b.c' can be read as more than one table; nothing was restored" in refused.err
    assert '"a.b".c, a."b.c"' in refused.err, refused.err
    assert databases(pg) == before

    # Where only one reading names a table, that one is restored.
    pg.execute('DROP TABLE a."b.c"', dbname=respaldo.dbname)
    backup_id = str(respaldo.backup()["id"])
    run = respaldo.restore(backup_id, new_dbname, "--table", "a.b.c")
    assert f'restored "a.b".c of {backup_id} into {new_dbname}: ' in run.err, str(run)
    assert pg.query('SELECT count(*) FROM "a.b".c', dbname=new_dbname) == [(2,)]


def test_a_quoted_name_with_a_dot_in_two_schemas_asks_for_its_schema(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # '"b.c"' in the schemas a and public was refused as "can be read as more than one
    # table", with the hint to put double quotes around the part with a dot: it has them.
    # What it lacks is its schema, as for any name in more than one schema.
    pg.execute('CREATE TABLE public."b.c" (id int)', dbname=respaldo.dbname)
    backup_id = _backup_with_dotted_names(respaldo, pg)
    before = databases(pg)

    refused = respaldo.run(
        "restore", backup_id, "--target-database", new_dbname, "--table", '"b.c"'
    )
    assert refused.code != 0, str(refused)
    said = " ".join(refused.err.split())
    assert "table '\"b.c\"' is in more than one schema" in said, refused.err
    assert 'name it with its schema: a."b.c", public."b.c"' in said, refused.err
    assert "double quotes" not in said, refused.err
    assert databases(pg) == before


def test_a_backup_with_counts_of_the_first_format_restores_and_lists_as_before(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Backups taken before row-count format 2 counted a parent with its children and
    # keyed names as they are: a restore of one counts the same way.
    pg.execute(
        "CREATE TABLE public.padre (id int);"
        "CREATE TABLE public.hijo () INHERITS (public.padre);"
        "INSERT INTO public.padre VALUES (1); INSERT INTO public.hijo VALUES (2), (3)",
        dbname=respaldo.dbname,
    )
    monkeypatch.setattr(backup_module, "ROW_COUNTS_FORMAT", 1)
    backup_id = respaldo.backup()["id"]
    assert respaldo.repository().load_manifest(backup_id).meta["row_counts"]["public.padre"] == 3

    full = respaldo.restore(backup_id, new_dbname)

    assert _checked_every_table(pg, respaldo.dbname, full.err), full.err
    assert table_checksums(pg, new_dbname) == table_checksums(pg, respaldo.dbname)
    listing = respaldo.run("ls", backup_id, "--json").json()
    rows = {t["name"]: t["rows"] for t in listing["tables"] if t["schema"] == "public"}
    assert (rows["padre"], rows["hijo"]) == (3, 2)
    drill = respaldo.run("drill", backup_id)
    assert drill.code == 0, str(drill)


def test_a_table_with_a_line_break_in_its_name_is_checked_too(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # pg_restore --list prints the line break as a space: "s.two lines".
    pg.execute(
        'CREATE SCHEMA s; CREATE TABLE s."two\nlines" (id int);'
        'INSERT INTO s."two\nlines" VALUES (1), (2); CREATE TABLE s.ok (id int)',
        dbname=respaldo.dbname,
    )
    backup_id = respaldo.backup()["id"]
    source = table_checksums(pg, respaldo.dbname)

    run = respaldo.restore(backup_id, new_dbname, "--schema", "s")

    assert table_checksums(pg, new_dbname) == {k: source[k] for k in ("s.two\nlines", "s.ok")}
    assert "2 tables' row counts checked" in run.err
    listing = respaldo.run("ls", backup_id, "--json").json()
    rows = {t["name"]: t["rows"] for t in listing["tables"] if t["schema"] == "s"}
    assert rows == {"two lines": 2, "ok": 0}


def test_a_view_named_as_a_table_is_refused_saying_what_it_is(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    before = databases(pg)

    run = respaldo.run(
        "restore", backup_id, "-t", new_dbname, "--table", "finanzas.mv_facturacion_mensual"
    )

    assert run.code == 1, str(run)
    assert len(run.err_lines) == 2, str(run)
    error, hint = run.err_lines
    assert "finanzas.mv_facturacion_mensual is a materialized view" in error
    assert "--schema finanzas" in hint
    assert databases(pg) == before


def test_large_objects_left_behind_are_said(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # docs.documentos keeps its files as large objects: a table restore brings the oids,
    # not the objects.
    assert pg.scalar(
        "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata", dbname=respaldo.dbname
    )
    backup_id = respaldo.backup()["id"]

    run = respaldo.restore(backup_id, new_dbname, "--table", "docs.documentos")

    (warning,) = [line for line in run.err_lines if "large objects" in line]
    assert warning == (
        "warning: the backup's large objects are not restored with --table or --schema; "
        "restore the whole backup to get them back"
    )
    assert (
        pg.scalar("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata", dbname=new_dbname) == 0
    )


def test_the_names_ls_prints_restore_the_tables_they_name(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    # "a.b".c and a."b.c" printed alike ("a.b.c"), and that name given to --table
    # restored a."b.c" whichever line it was copied from.
    backup_id = _backup_with_dotted_names(respaldo, pg)

    listing = respaldo.run("ls", backup_id)
    assert listing.code == 0, str(listing)
    printed = {}
    for line in listing.out.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[0].replace('"', "").startswith("a.b"):
            printed[int(cells[1])] = cells[0]
    assert len(printed) == 2 and printed[1] != printed[2], listing.out
    for rows, name in printed.items():
        target = f"{new_dbname}_{rows}"
        run = respaldo.restore(backup_id, target, "--table", name)
        assert f"restored {name} of {backup_id}" in run.err, run.err
        restored = table_checksums(pg, target)
        assert [count for count, _ in restored.values()] == [rows], (name, restored)
