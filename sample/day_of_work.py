"""A deterministic day of ERP work on the sample database, for incremental-backup benchmarks.

One day (``day_of_work(conninfo_kwargs, seed, day)``), in one transaction:

* updates: 0.5% of the rows of each table that people edit, four fifths of them among
  the newest tenth of the rows (this month's work reports and invoices) and one fifth
  among the old rows (a customer's phone number, a price);
* new rows: 1% more of every table, dated that day (invoice and order lines follow their
  documents; paid invoices get their payments);
* the audit log grows through its triggers, and the materialized view is refreshed, as
  a nightly job would.

``worst_case=True`` updates 1% of the rows uniformly at random instead, which scatters
changes over the whole dump. Invoice lines, payments, documents and the audit log are
never updated: accounting records are only appended to.

Same database state + same ``seed`` and ``day`` = same changes. Days are meant to run in
order (1, 2, 3, …) after ``sample.generate.load``; day N is dated ``TODAY + N``. Not
idempotent: each call adds another day's rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, LiteralString, NamedTuple

import psycopg
from psycopg import sql

from sample import generate as g
from sample import words as w

NEW_SHARE = 0.01
UPDATE_SHARE = 0.005
OLD_SHARE_OF_UPDATES = 0.2
NEWEST = 0.1
"""The "newest" rows: the highest tenth of the ids (ids rise with time)."""
WORST_CASE_UPDATE_SHARE = 0.01


class Change(NamedTuple):
    inserted: int
    updated: int


class _Update(NamedTuple):
    table: str
    # Uses %(ids)s, %(ts)s and %(a)s, %(b)s: arrays with one element per id.
    statement: sql.Composed
    values: Callable[[random.Random], tuple[str, str]]


def _phone(rng: random.Random) -> str:
    return f"+34 {rng.randint(600, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}"


def _note(rng: random.Random) -> str:
    return f"{rng.choice(w.OBSERVACIONES)} ({rng.choice(w.NOMBRES)})"


_FROM = sql.SQL(
    " FROM unnest(%(ids)s::bigint[], %(ts)s::timestamptz[], %(a)s::text[], %(b)s::text[])"
    " AS v(id, ts, a, b) WHERE t.id = v.id"
)


def _update_from(head: LiteralString) -> sql.Composed:
    """``UPDATE <table> t SET …`` joined to the per-id value arrays."""
    return sql.SQL(head) + _FROM


UPDATES: tuple[_Update, ...] = (
    _Update(
        "core.clientes",
        _update_from(
            "UPDATE core.clientes t SET telefono = v.a,"
            " contacto = t.contacto || jsonb_build_object('nota', v.b), actualizado_en = v.ts"
        ),
        lambda rng: (_phone(rng), _note(rng)),
    ),
    _Update(
        "core.empleados",
        _update_from(
            "UPDATE core.empleados t SET coste_hora = v.a::numeric, activo = v.b::boolean,"
            " actualizado_en = v.ts"
        ),
        lambda rng: (f"{rng.randint(14, 45)}.{rng.randint(0, 99):02d}", str(rng.random() > 0.05)),
    ),
    _Update(
        "compras.materiales",
        _update_from(
            "UPDATE compras.materiales t"
            " SET precio_referencia = round(t.precio_referencia * v.a::numeric, 2),"
            " atributos = t.atributos || jsonb_build_object('revision', v.b), actualizado_en = v.ts"
        ),
        lambda rng: (rng.choice(("1.02", "1.03", "1.05", "0.98")), rng.choice(w.APELLIDOS)),
    ),
    _Update(
        "obras.proyectos",
        _update_from(
            "UPDATE obras.proyectos t SET estado = CASE t.estado"
            " WHEN 'presupuesto' THEN 'adjudicado' WHEN 'adjudicado' THEN 'en_curso'"
            " WHEN 'pausado' THEN 'en_curso' WHEN 'en_curso' THEN v.a::obras.estado_proyecto"
            " ELSE t.estado END,"
            " metadatos = t.metadatos || jsonb_build_object('ultima_visita', v.b),"
            " actualizado_en = v.ts"
        ),
        lambda rng: (
            rng.choice(("en_curso", "en_curso", "terminado", "pausado")),
            f"{rng.choice(w.NOMBRES)} {rng.choice(w.APELLIDOS)}",
        ),
    ),
    _Update(
        "obras.partidas",
        _update_from(
            "UPDATE obras.partidas t SET avance = least(100, t.avance + v.a::numeric),"
            " descripcion = CASE WHEN v.b = '' THEN t.descripcion ELSE v.b END,"
            " actualizado_en = v.ts"
        ),
        lambda rng: (
            rng.choice(("5", "10", "12.5", "25")),
            f"{rng.choice(w.TAREAS)} (modificado)" if rng.random() < 0.3 else "",
        ),
    ),
    _Update(
        "obras.partes_trabajo",
        _update_from(
            "UPDATE obras.partes_trabajo t SET horas = v.a::numeric, observaciones = v.b,"
            " actualizado_en = v.ts"
        ),
        lambda rng: (rng.choice(("4.00", "6.00", "8.00", "9.50")), _note(rng)),
    ),
    _Update(
        "compras.pedidos",
        _update_from(
            "UPDATE compras.pedidos t SET estado = CASE t.estado"
            " WHEN 'pendiente' THEN v.a WHEN 'enviado' THEN 'recibido' ELSE t.estado END,"
            " notas = v.b, actualizado_en = v.ts"
        ),
        lambda rng: (rng.choice(("enviado", "enviado", "cancelado")), _note(rng)),
    ),
    _Update(
        "compras.lineas_pedido",
        _update_from(
            "UPDATE compras.lineas_pedido t SET cantidad = v.a::numeric,"
            " descuento = v.b::numeric, actualizado_en = v.ts"
        ),
        lambda rng: (
            f"{rng.randint(1, 200)}.{rng.randint(0, 999):03d}",
            rng.choice(("0", "0", "5", "10")),
        ),
    ),
    _Update(
        "finanzas.facturas",
        _update_from(
            "UPDATE finanzas.facturas t SET estado = CASE t.estado"
            " WHEN 'borrador' THEN 'emitida' WHEN 'emitida' THEN v.a::finanzas.estado_factura"
            " WHEN 'vencida' THEN 'pagada' ELSE t.estado END,"
            " notas = v.b, actualizado_en = v.ts"
        ),
        lambda rng: (rng.choice(("pagada", "pagada", "vencida")), _note(rng)),
    ),
    _Update(
        "docs.fotos",
        _update_from(
            "UPDATE docs.fotos t SET descripcion = v.a,"
            " etiquetas = CASE WHEN v.b = ANY (t.etiquetas) THEN t.etiquetas"
            " ELSE t.etiquetas || v.b END, actualizado_en = v.ts"
        ),
        lambda rng: (rng.choice(w.DESCRIPCIONES_FOTO), rng.choice(w.ETIQUETAS)),
    ),
)


def _portion(rng: random.Random, expected: float) -> int:
    """``expected`` rounded at random (2.3 -> 2 or 3, 3 seven times in ten).

    Keeps tiny databases changing a little every day instead of rounding to nothing.
    """
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def choose_ids(rng: random.Random, max_id: int, *, worst_case: bool) -> list[int]:
    """Ids (of 1..max_id) to update today, sorted. See the module docstring for the mix."""
    if max_id < 1:
        return []
    if worst_case:
        k = min(max_id, _portion(rng, WORST_CASE_UPDATE_SHARE * max_id))
        return sorted(rng.sample(range(1, max_id + 1), k))
    k = _portion(rng, UPDATE_SHARE * max_id)
    k_old = _portion(rng, k * OLD_SHARE_OF_UPDATES)
    split = int(max_id * (1 - NEWEST))
    newest, old = range(split + 1, max_id + 1), range(1, split + 1)
    k_new = min(len(newest), k - k_old)
    k_old = min(len(old), k - k_new)
    return sorted(rng.sample(newest, k_new) + rng.sample(old, k_old))


def _max_ids(conn: psycopg.Connection[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in g.SEQUENCES:
        schema, name = table.split(".")
        row = conn.execute(
            sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        out[table] = int(row[0]) if row is not None else 0
    return out


def day_of_work(
    conninfo_kwargs: g.ConnKwargs,
    seed: int,
    day: int = 1,
    *,
    worst_case: bool = False,
) -> dict[str, Change]:
    """Apply day ``day`` of simulated ERP work; return rows inserted/updated per table.

    Runs in one transaction as an ordinary session (triggers and foreign keys on).
    Raises psycopg errors; then nothing of the day is applied.
    """
    if day < 1:
        raise ValueError("days are numbered from 1")
    today = g.TODAY + timedelta(days=day)
    salt = f"day{day}{'-worst' if worst_case else ''}"
    ctx = g.Ctx(seed=seed, salt=salt, first=today, last=today)
    changes: dict[str, Change] = {}

    def note(table: str, inserted: int = 0, updated: int = 0) -> None:
        old = changes.get(table, Change(0, 0))
        changes[table] = Change(old.inserted + inserted, old.updated + updated)

    with g._connect(conninfo_kwargs) as conn, conn.transaction():
        g.set_clock(conn, datetime.combine(today, time(18, 0), tzinfo=UTC))
        before = _max_ids(conn)

        # Updates first, so they touch rows that existed before today.
        paid: list[int] = []
        for update in UPDATES:
            rng = ctx.rng("update", update.table)
            chosen = choose_ids(rng, before[update.table], worst_case=worst_case)
            if not chosen:
                continue
            stamps = [ctx.stamp(rng, today) for _ in chosen]
            values = [update.values(rng) for _ in chosen]
            params = {
                "ids": chosen,
                "ts": stamps,
                "a": [v[0] for v in values],
                "b": [v[1] for v in values],
            }
            cur = conn.execute(update.statement, params)
            note(update.table, updated=cur.rowcount)
            if update.table == "finanzas.facturas":
                paid = chosen

        # New rows: parents first, so that children can reference today's parents.
        rng = ctx.rng("growth")
        for table in g.SEQUENCES:
            n = _portion(rng, NEW_SHARE * before[table])
            ctx.new_ids[table] = range(before[table] + 1, before[table] + 1 + n)
            ctx.max_ids[table] = before[table] + n
        ids = ctx.new_ids
        simple: tuple[tuple[str, tuple[str, ...], Callable[[g.Ctx, range], Any]], ...] = (
            ("core.clientes", g.CLIENTES_COLS, g.gen_clientes),
            ("core.empleados", g.EMPLEADOS_COLS, g.gen_empleados),
            ("compras.proveedores", g.PROVEEDORES_COLS, g.gen_proveedores),
            ("compras.materiales", g.MATERIALES_COLS, g.gen_materiales),
            ("obras.proyectos", g.PROYECTOS_COLS, g.gen_proyectos),
            ("obras.partidas", g.PARTIDAS_COLS, g.gen_partidas),
            ("obras.partes_trabajo", g.PARTES_COLS, g.gen_partes_trabajo),
            ("compras.pedidos", g.PEDIDOS_COLS, g.gen_pedidos),
            ("finanzas.facturas", g.FACTURAS_COLS, g.gen_facturas),
            ("docs.fotos", g.FOTOS_COLS, g.gen_fotos),
        )
        for table, columns, gen in simple:
            if ids[table]:
                note(table, inserted=g.copy_rows(conn, table, columns, gen(ctx, ids[table])))
        lines = g.gen_lineas_pedido(
            ctx, ids["compras.pedidos"], before["compras.lineas_pedido"] + 1
        )
        note(
            "compras.lineas_pedido",
            inserted=g.copy_rows(conn, "compras.lineas_pedido", g.LINEAS_PEDIDO_COLS, lines),
        )
        invoice_lines = g.gen_lineas_factura(
            ctx, ids["finanzas.facturas"], before["finanzas.lineas_factura"] + 1
        )
        note(
            "finanzas.lineas_factura",
            inserted=g.copy_rows(
                conn, "finanzas.lineas_factura", g.LINEAS_FACTURA_COLS, invoice_lines
            ),
        )
        if ids["docs.documentos"]:
            docs = g.create_large_objects(conn, ctx, ids["docs.documentos"])
            note(
                "docs.documentos",
                inserted=g.copy_rows(conn, "docs.documentos", g.DOCUMENTOS_COLS, docs),
            )
        if paid:
            cur = conn.execute(
                "INSERT INTO finanzas.pagos"
                " (factura_id, fecha, importe, metodo, referencia, actualizado_en)"
                " SELECT f.id, %(day)s, f.total, 'transferencia', 'REF-DIA-' || f.id, %(ts)s"
                "   FROM finanzas.facturas f"
                "  WHERE f.id = ANY (%(ids)s::bigint[]) AND f.estado = 'pagada'"
                "    AND NOT EXISTS (SELECT FROM finanzas.pagos p WHERE p.factura_id = f.id)"
                "  ORDER BY f.id",
                {"day": today, "ts": datetime.combine(today, time(17, 0), tzinfo=UTC), "ids": paid},
            )
            note("finanzas.pagos", inserted=cur.rowcount)
        after = conn.execute("SELECT coalesce(max(id), 0) FROM auditoria.cambios").fetchone()
        if after is not None and after[0] > before["auditoria.cambios"]:
            note("auditoria.cambios", inserted=int(after[0]) - before["auditoria.cambios"])
        g.sync_sequences(conn)
        conn.execute("REFRESH MATERIALIZED VIEW finanzas.mv_facturacion_mensual")
    return changes
