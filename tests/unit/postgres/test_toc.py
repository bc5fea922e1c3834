"""Choosing the entries of a dump's table of contents that restore some tables or schemas.

The listing below is ``pg_restore --list --verbose`` of the sample ERP database (PostgreSQL
15), cut down to the entries these tests are about.
"""

from __future__ import annotations

import pytest

from respaldo.postgres.toc import UnknownName, parse_listing, select, sequence_uses, split_name

pytestmark = pytest.mark.unit

LISTING = """\
;
; Archive created at 2026-12-04 22:25:08 UTC
;     dbname: erp
;
; Selected TOC Entries:
;
3833; 0 0 ENCODING - ENCODING
3834; 0 0 STDSTRINGS - STDSTRINGS
3835; 0 0 SEARCHPATH - SEARCHPATH
3836; 1262 16384 DATABASE - erp respaldo_admin
14; 2615 16538 SCHEMA - auditoria propietario
9; 2615 16533 SCHEMA - core propietario
3842; 0 0 COMMENT - SCHEMA core propietario
;	depends on: 9
12; 2615 16536 SCHEMA - finanzas propietario
10; 2615 16534 SCHEMA - obras propietario
985; 1247 16556 TYPE finanzas estado_factura propietario
;	depends on: 12
363; 1255 16982 FUNCTION auditoria registrar_estado() propietario
;	depends on: 14
359; 1255 16568 FUNCTION core tocar_actualizado_en() propietario
;	depends on: 9
360; 1255 16924 FUNCTION finanzas total_factura(bigint) propietario
;	depends on: 12
224; 1259 16570 TABLE core clientes propietario
;	depends on: 9
250; 1259 16865 SEQUENCE finanzas numero_factura_seq propietario
;	depends on: 12
252; 1259 16867 TABLE finanzas facturas propietario
;	depends on: 250 12 985
3882; 0 0 ACL finanzas TABLE facturas propietario
;	depends on: 252
251; 1259 16866 SEQUENCE finanzas facturas_id_seq propietario
;	depends on: 12 252
254; 1259 16891 TABLE finanzas lineas_factura propietario
;	depends on: 12
257; 1259 16926 VIEW finanzas v_facturas_pendientes propietario
;	depends on: 224 252 12
232; 1259 16636 TABLE obras partes_trabajo propietario
;	depends on: 10
233; 1259 16653 TABLE obras partes_trabajo_2019 propietario
;	depends on: 10 232
234; 1259 16668 TABLE obras partes_trabajo_2020 propietario
;	depends on: 10 232
3468; 0 0 TABLE ATTACH obras partes_trabajo_2019 propietario
;	depends on: 233 232
3469; 0 0 TABLE ATTACH obras partes_trabajo_2020 propietario
;	depends on: 234 232
3790; 0 16570 TABLE DATA core clientes propietario
;	depends on: 224
3817; 0 16867 TABLE DATA finanzas facturas propietario
;	depends on: 252
3819; 0 16891 TABLE DATA finanzas lineas_factura propietario
;	depends on: 254
3798; 0 16653 TABLE DATA obras partes_trabajo_2019 propietario
;	depends on: 233
3799; 0 16668 TABLE DATA obras partes_trabajo_2020 propietario
;	depends on: 234
3830; 0 0 BLOBS - BLOBS
3924; 0 0 SEQUENCE SET finanzas facturas_id_seq propietario
;	depends on: 251
3926; 0 0 SEQUENCE SET finanzas numero_factura_seq propietario
;	depends on: 250
3519; 2606 16578 CONSTRAINT core clientes clientes_pkey propietario
;	depends on: 224
3584; 2606 16875 CONSTRAINT finanzas facturas facturas_pkey propietario
;	depends on: 252
3534; 2606 16642 CONSTRAINT obras partes_trabajo partes_trabajo_pkey propietario
;	depends on: 232
3537; 2606 16659 CONSTRAINT obras partes_trabajo_2019 partes_trabajo_2019_pkey propietario
;	depends on: 233 3534
3579; 1259 16888 INDEX finanzas facturas_cliente_idx propietario
;	depends on: 252
3641; 2620 16997 TRIGGER finanzas facturas facturas_actualizado_en propietario
;	depends on: 359 252
3628; 2606 16878 FK CONSTRAINT finanzas facturas facturas_cliente_id_fkey propietario
;	depends on: 224 252 3519
3630; 2606 16899 FK CONSTRAINT finanzas lineas_factura lineas_factura_factura_id_fkey propietario
;	depends on: 254 3584 252
3822; 0 16931 MATERIALIZED VIEW DATA finanzas mv propietario
;	depends on: 258 3832
"""

ENTRIES = parse_listing(LISTING)


def chosen(*tables: str, schemas: tuple[str, ...] = ()) -> set[int]:
    selection = select(ENTRIES, tables, schemas)
    return {e.dump_id for e in selection.entries}


def test_a_listing_line_is_read_with_multiword_kinds_and_dependencies() -> None:
    by_id = {e.dump_id: e for e in ENTRIES}
    fk = by_id[3628]
    assert (fk.kind, fk.namespace, fk.tag, fk.owner) == (
        "FK CONSTRAINT",
        "finanzas",
        "facturas facturas_cliente_id_fkey",
        "propietario",
    )
    assert fk.depends == (224, 252, 3519)
    assert by_id[3817].kind == "TABLE DATA" and by_id[3817].name == "finanzas.facturas"
    assert by_id[14].namespace is None and by_id[14].tag == "auditoria"
    assert by_id[3833].owner == "" and by_id[3833].tag == "ENCODING"
    # pg_restore ends a line without an owner with a space.
    (encoding,) = parse_listing("3833; 0 0 ENCODING - ENCODING \n")
    assert (encoding.kind, encoding.tag, encoding.owner) == ("ENCODING", "ENCODING", "")


def test_a_table_brings_its_belongings_and_what_it_needs_but_no_other_table() -> None:
    selection = select(ENTRIES, ["finanzas.facturas"])
    taken = {e.dump_id for e in selection.entries}
    # Session settings; its schema, enum and the sequence of its default (with value);
    # the table, its grant, data, identity sequence (with value), key, index, trigger and
    # the trigger's function (with that function's schema).
    assert taken == {3833, 3834, 3835, 12, 985, 250, 3926, 252, 3882, 3817, 251, 3924}.union(
        {3584, 3579, 3641, 359, 9, 3842}
    )
    assert selection.tables == ("finanzas.facturas",)
    assert selection.definition_only == ()
    # Its foreign key to a table not restored is left out, and said; lineas_factura's
    # foreign key to it is not its own business.
    (skipped,) = selection.skipped
    assert "facturas_cliente_id_fkey" in skipped and "core.clientes" in skipped
    # In archive order: a dump read from a pipe can only be read forwards.
    order = [e.dump_id for e in selection.entries]
    assert order == [e.dump_id for e in ENTRIES if e.dump_id in taken]


def test_a_foreign_key_between_two_chosen_tables_is_kept() -> None:
    taken = chosen("finanzas.facturas", "core.clientes")
    assert {3628, 3519, 3790} <= taken


def test_a_partitioned_table_brings_its_partitions_with_their_data() -> None:
    selection = select(ENTRIES, ["obras.partes_trabajo"])
    assert selection.tables == ("obras.partes_trabajo_2019", "obras.partes_trabajo_2020")
    taken = {e.dump_id for e in selection.entries}
    assert {3468, 3469, 3798, 3799, 3534, 3537} <= taken


def test_a_partition_alone_needs_its_parent_which_comes_empty() -> None:
    selection = select(ENTRIES, ["obras.partes_trabajo_2019"])
    assert selection.tables == ("obras.partes_trabajo_2019",)
    assert selection.definition_only == ("obras.partes_trabajo",)
    taken = {e.dump_id for e in selection.entries}
    assert {232, 3468, 3798, 3537, 3534} <= taken
    assert 3799 not in taken and 234 not in taken


def test_a_schema_brings_its_tables_and_leaves_out_a_view_that_reads_elsewhere() -> None:
    selection = select(ENTRIES, schemas=["finanzas"])
    assert selection.tables == ("finanzas.facturas", "finanzas.lineas_factura")
    taken = {e.dump_id for e in selection.entries}
    assert {360, 3630, 3819} <= taken  # its function; a foreign key inside it
    assert 257 not in taken and 224 not in taken
    assert any("v_facturas_pendientes" in s and "core.clientes" in s for s in selection.skipped)


def test_never_large_objects_nor_the_database_entries() -> None:
    taken = chosen(schemas=("core", "finanzas", "obras", "auditoria"))
    assert 3830 not in taken and 3836 not in taken


def test_a_table_without_schema_is_found_when_only_one_schema_has_it() -> None:
    assert select(ENTRIES, ["facturas"]).tables == ("finanzas.facturas",)


def test_an_unknown_table_names_the_close_ones() -> None:
    with pytest.raises(UnknownName) as caught:
        select(ENTRIES, ["finanzas.factura"])
    assert caught.value.close[0] == "finanzas.facturas"
    with pytest.raises(UnknownName) as caught:
        select(ENTRIES, ["core.facturas"])  # the right name in the wrong schema
    assert "finanzas.facturas" in caught.value.close


def test_an_unknown_schema_names_the_close_ones() -> None:
    with pytest.raises(UnknownName) as caught:
        select(ENTRIES, schemas=["finanza"])
    assert caught.value.close == ["finanzas"]


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("finanzas.facturas", ("finanzas", "facturas")),
        ("facturas", (None, "facturas")),
        ('"Mi Esquema"."tabla.rara"', ("Mi Esquema", "tabla.rara")),
        ('"con ""comillas"""', (None, 'con "comillas"')),
    ],
)
def test_names_split_into_schema_and_table(name: str, parts: tuple[str | None, str]) -> None:
    assert split_name(name) == parts


@pytest.mark.parametrize("name", ["", ".x", "x.", '"open'])
def test_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        split_name(name)


def test_a_schema_brings_its_comment_even_when_the_schema_itself_is_not_dumped() -> None:
    # pg_dump does not dump the public schema (it exists in every database), but does
    # dump a comment or grants given to it, depending on an entry the listing lacks.
    listing = """\
3883; 0 0 COMMENT - SCHEMA public pg_database_owner
;	depends on: 6
267; 1259 17740 TABLE public t_pub admin
3850; 0 17740 TABLE DATA public t_pub admin
;	depends on: 267
"""
    selection = select(parse_listing(listing), schemas=["public"])
    assert {e.dump_id for e in selection.entries} == {3883, 267, 3850}
    assert selection.tables == ("public.t_pub",)


def test_a_selection_says_which_data_blocks_pg_restore_needs() -> None:
    blocks = select(ENTRIES, ["finanzas.facturas"]).blocks
    assert blocks is not None
    assert blocks.order == (3790, 3817, 3819, 3798, 3799)  # the archive's order
    assert blocks.wanted == {3817}


def test_no_block_filter_when_large_objects_come_before_a_wanted_table() -> None:
    listing = """\
3829; 2613 1000001 BLOB - 1000001 propietario
224; 1259 16570 TABLE core clientes propietario
3830; 0 0 BLOBS - BLOBS
3790; 0 16570 TABLE DATA core clientes propietario
;	depends on: 224
"""
    assert select(parse_listing(listing), ["core.clientes"]).blocks is None
    # A large object's definition (BLOB) before it is no data.
    without_data = listing.replace("3830; 0 0 BLOBS - BLOBS\n", "")
    assert select(parse_listing(without_data), ["core.clientes"]).blocks is not None


def test_no_block_filter_for_a_compressed_dump() -> None:
    header = ";\n;     Compression: {}\n;     Dump Version: 1.14-0\n"
    for method, filtered in (("0", True), ("none", True), ("gzip", False), ("-1", False)):
        entries = parse_listing(header.format(method) + LISTING)
        assert entries.compression == method
        assert (select(entries, ["finanzas.facturas"]).blocks is not None) is filtered


def test_a_schema_with_a_space_in_its_name_is_read_whole() -> None:
    entries = parse_listing(
        "20; 2615 16600 SCHEMA - Mis Ventas propietario\n"
        "21; 1259 16601 TABLE Mis Ventas lineas propietario\n"
        ";\tdepends on: 20\n"
        "22; 0 16601 TABLE DATA Mis Ventas lineas propietario\n"
        ";\tdepends on: 21\n"
    )
    assert [(e.kind, e.namespace, e.tag) for e in entries[1:]] == [
        ("TABLE", "Mis Ventas", "lineas"),
        ("TABLE DATA", "Mis Ventas", "lineas"),
    ]
    chosen = select(entries, tables=['"Mis Ventas".lineas'])
    assert chosen.table_parts == (("Mis Ventas", "lineas"),)


_SCRIPT = """\
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: siguiente(); Type: FUNCTION; Schema: numeracion; Owner: propietario
--

CREATE FUNCTION numeracion.siguiente() RETURNS bigint
    LANGUAGE sql
    AS $$ SELECT NextVal( 'Numeracion."Pedido Seq"' ) + currval('pedido_seq') $$;

--
-- Name: pedidos; Type: TABLE; Schema: ventas; Owner: propietario
--

CREATE TABLE ventas.pedidos (
    id bigint DEFAULT nextval(('numeracion.pedido_seq'::text)::regclass) NOT NULL,
    serie bigint DEFAULT nextval('ventas.pedidos_serie_seq'::regclass),
    nota text DEFAULT 'nextval(''x'')',
    otra bigint DEFAULT pg_catalog.nextval('erp.numeracion.otra_seq'),
    rara bigint DEFAULT setval('no es un nombre', 1)
);
"""


def test_sequence_literals_are_found_with_the_definition_that_names_them() -> None:
    uses = [(u.where, u.schema, u.name) for u in sequence_uses(_SCRIPT)]

    assert uses == [
        ("function numeracion.siguiente()", "numeracion", ("numeracion", "Pedido Seq")),
        ("function numeracion.siguiente()", "numeracion", (None, "pedido_seq")),
        ("table ventas.pedidos", "ventas", ("numeracion", "pedido_seq")),
        ("table ventas.pedidos", "ventas", ("ventas", "pedidos_serie_seq")),
        # 'nextval(''x'')' is a string default, read as one literal: x is no call's.
        ("table ventas.pedidos", "ventas", ("numeracion", "otra_seq")),
    ]


def test_a_named_sequence_comes_with_its_value() -> None:
    sequence = next(e for e in ENTRIES if e.kind == "SEQUENCE" and e.tag == "numero_factura_seq")
    value = next(e for e in ENTRIES if e.kind == "SEQUENCE SET" and e.tag == sequence.tag)

    without = {e.dump_id for e in select(ENTRIES, ["core.clientes"]).entries}
    taken = {e.dump_id for e in select(ENTRIES, ["core.clientes"], (), [sequence.dump_id]).entries}

    # Its schema (finanzas, which nothing else taken is in) too.
    assert taken - without == {sequence.dump_id, value.dump_id, *sequence.depends}
    assert sequence.depends == (12,)


def test_entries_are_slotted_and_share_their_kind_namespace_and_owner() -> None:
    """A dump of 20,000 tables has 164,000 entries, all in memory while 'ls' or 'restore
    --table' reads them: as plain objects with a string each for every kind, schema and
    owner they took 89 MiB, and 'ls' peaked at 231 MiB; 60 MiB and 197 MiB now."""
    tables = [e for e in ENTRIES if e.kind == "TABLE" and e.namespace == "finanzas"]
    assert len(tables) >= 2
    first, second = tables[:2]
    assert first.kind is second.kind and first.namespace is second.namespace
    assert first.owner is second.owner
    assert not hasattr(first, "__dict__")
