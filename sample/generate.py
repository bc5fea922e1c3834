"""Fill the sample ERP database with deterministic data, streamed through COPY.

``load(conninfo_kwargs, scale, seed)`` gives the same rows, byte for byte, for the same
``scale`` and ``seed`` on any machine: every table draws from its own RNG seeded from
``seed`` and the table name, and nothing depends on the clock (``erp.ahora`` pins the time
that triggers stamp). Rows are generated one at a time and streamed into ``COPY``, so
memory does not grow with ``scale``. Ids are dense (1..n) and dates rise with ids, as in
a real system where new rows get higher ids; ``sample.day_of_work`` relies on both.

Scale 1.0 is about 1 GB on disk (a quarter of it incompressible bytea "photos", the rest
ordinary rows and their indexes); tests use about 0.001 (a few MB with the empty
database). Row numbers per table are ``BASE_ROWS`` times ``scale``, at least 1.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from sample import words as w

HERE = Path(__file__).resolve().parent
ROLES_SQL = HERE / "erp_roles.sql"
SCHEMA_SQL = HERE / "erp_schema.sql"

TODAY = date(2025, 6, 30)
"""The simulated present: history runs from HISTORY_START to here, day N is TODAY + N."""
HISTORY_START = date(2019, 1, 1)
LO_OID_BASE = 1_000_000
"""Large objects get explicit oids (LO_OID_BASE + document id) so dumps stay identical."""

# Rows at scale 1.0. Child tables whose rows come per parent (invoice and order lines,
# payments) are not listed: their size follows from their parents.
BASE_ROWS: Mapping[str, int] = {
    "core.clientes": 20_000,
    "core.empleados": 4_000,
    "compras.proveedores": 3_000,
    "compras.materiales": 15_000,
    "obras.proyectos": 8_000,
    "obras.partidas": 300_000,
    "obras.partes_trabajo": 1_500_000,
    "compras.pedidos": 100_000,
    "finanzas.facturas": 150_000,
    "docs.fotos": 2_500,
    "docs.documentos": 40,
    "auditoria.cambios": 50_000,
}

Row = tuple[Any, ...]
ConnKwargs = Mapping[str, Any]
Progress = Callable[[str, int], None]

_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _nif(prefix: str, number: int) -> str:
    return f"{prefix}{number:07d}{_NIF_LETTERS[number % 23]}"


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _milli(thousandths: int) -> str:
    return f"{thousandths // 1000}.{thousandths % 1000:03d}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def row_counts(scale: float) -> dict[str, int]:
    """Rows per table of ``BASE_ROWS`` at ``scale`` (at least one each)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    return {table: max(1, round(n * scale)) for table, n in BASE_ROWS.items()}


@dataclass
class Ctx:
    """What row generators share: the seed, the date window and the id ranges.

    Row ``i`` of a table created in this run lies at fraction ``frac`` of its id range
    and gets the date at that fraction of ``first..last``; it references parents near
    the same fraction of theirs (a 2020 work report belongs to a 2020 project).
    """

    seed: int
    salt: str
    first: date
    last: date
    new_ids: dict[str, range] = field(default_factory=dict)
    max_ids: dict[str, int] = field(default_factory=dict)

    def rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(str(p) for p in (self.seed, self.salt, *parts)))

    def id_rng(self, tag: int, row_id: int) -> random.Random:
        # One RNG per row, for rows generated twice (totals, then lines) identically.
        return random.Random((self.seed << 40) ^ (tag << 34) ^ row_id)

    def frac(self, table: str, row_id: int) -> float:
        ids = self.new_ids[table]
        return (row_id - ids.start + 0.5) / max(1, len(ids))

    def date_at(self, frac: float) -> date:
        return self.first + timedelta(days=int(frac * (self.last - self.first).days))

    def stamp(self, rng: random.Random, day: date) -> datetime:
        return datetime.combine(day, time(rng.randint(7, 19), rng.randint(0, 59)), tzinfo=UTC)

    def parent(self, rng: random.Random, table: str, frac: float) -> int:
        """A parent id near ``frac`` of the parent table (uniform one time in five)."""
        n = self.max_ids[table]
        if rng.random() < 0.2:
            return rng.randint(1, n)
        center = max(1, min(n, round(frac * n)))
        width = max(1, n // 10)
        return rng.randint(max(1, center - width), center)


# --- row generators: (ctx, ids) -> rows in COPY column order ----------------------------

CLIENTES_COLS = (
    "id", "nif", "razon_social", "email", "telefono", "direccion", "ciudad", "provincia",
    "codigo_postal", "contacto", "limite_credito", "activo", "creado_en", "actualizado_en",
)  # fmt: skip


def gen_clientes(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("clientes", ids.start)
    for i in ids:
        day = ctx.date_at(ctx.frac("core.clientes", i))
        ciudad, provincia, cp = rng.choice(w.CIUDADES)
        if rng.random() < 0.7:
            nombre = f"{rng.choice(w.ACTIVIDADES)} {rng.choice(w.APELLIDOS)}"
            razon = f"{nombre} {rng.choice(w.FORMAS_JURIDICAS)}"
        else:
            nombre = f"{rng.choice(w.NOMBRES)} {rng.choice(w.APELLIDOS)}"
            razon = f"{nombre} {rng.choice(w.APELLIDOS)}"
        slug = nombre.lower().replace(" ", ".").replace("á", "a").replace("é", "e")
        contacto = {
            "persona": f"{rng.choice(w.NOMBRES)} {rng.choice(w.APELLIDOS)}",
            "cargo": rng.choice(("gerente", "administración", "compras", "propietario")),
            "prefiere": rng.choice(("email", "teléfono", "whatsapp")),
            "idioma": rng.choice(("es", "es", "es", "ca", "eu", "gl", "en")),
        }
        created = ctx.stamp(rng, day)
        yield (
            i,
            _nif("B", i),
            razon,
            f"{slug}{i}@{rng.choice(('gmail.com', 'empresa.es', 'correo.es', 'hotmail.com'))}",
            f"+34 {rng.randint(600, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
            f"{rng.choice(w.VIAS)} {rng.choice(w.NOMBRES_VIA)}, {rng.randint(1, 200)}",
            ciudad,
            provincia,
            f"{cp}{rng.randint(0, 999):03d}",
            _json(contacto),
            _money(rng.randrange(0, 50_000_000, 100_000)),
            rng.random() > 0.05,
            created,
            created,
        )


EMPLEADOS_COLS = (
    "id", "dni", "nombre", "apellidos", "categoria", "certificaciones", "coste_hora",
    "fecha_alta", "activo", "actualizado_en",
)  # fmt: skip


def gen_empleados(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("empleados", ids.start)
    for i in ids:
        day = ctx.date_at(ctx.frac("core.empleados", i))
        certs = sorted(rng.sample(w.CERTIFICACIONES, rng.randint(0, 4)))
        yield (
            i,
            f"{i:08d}{_NIF_LETTERS[i % 23]}",
            rng.choice(w.NOMBRES),
            f"{rng.choice(w.APELLIDOS)} {rng.choice(w.APELLIDOS)}",
            rng.choice(w.CATEGORIAS_EMPLEADO),
            certs,
            _money(rng.randint(1400, 4500)),
            day,
            rng.random() > 0.1,
            ctx.stamp(rng, day),
        )


PROVEEDORES_COLS = (
    "id", "nif", "razon_social", "email", "telefono", "categoria", "condiciones_pago",
    "actualizado_en",
)  # fmt: skip


def gen_proveedores(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("proveedores", ids.start)
    for i in ids:
        day = ctx.date_at(ctx.frac("compras.proveedores", i))
        categoria = rng.choice(w.CATEGORIAS_PROVEEDOR)
        razon = (
            f"{categoria.capitalize()} {rng.choice(w.APELLIDOS)} {rng.choice(w.FORMAS_JURIDICAS)}"
        )
        condiciones = {"dias": rng.choice((30, 60, 90)), "metodo": rng.choice(w.METODOS_PAGO)}
        yield (
            i,
            _nif("A", i),
            razon,
            f"pedidos{i}@{rng.choice(w.APELLIDOS).lower()}.es",
            f"+34 9{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
            categoria,
            _json(condiciones),
            ctx.stamp(rng, day),
        )


MATERIALES_COLS = (
    "id", "codigo", "descripcion", "unidad", "precio_referencia", "proveedor_id", "atributos",
    "actualizado_en",
)  # fmt: skip


def gen_materiales(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("materiales", ids.start)
    for i in ids:
        frac = ctx.frac("compras.materiales", i)
        base = rng.choice(w.MATERIALES)
        atributos = {"marca": rng.choice(w.APELLIDOS), "formato": rng.choice(w.UNIDADES)}
        if rng.random() < 0.3:
            atributos["norma"] = f"UNE-EN {rng.randint(100, 20000)}"
        yield (
            i,
            f"MAT-{i:06d}",
            f"{base}, ref. {rng.randint(1000, 9999)}",
            rng.choice(w.UNIDADES),
            _money(rng.randint(50, 250_000)),
            ctx.parent(rng, "compras.proveedores", frac),
            _json(atributos),
            ctx.stamp(rng, ctx.date_at(frac)),
        )


PROYECTOS_COLS = (
    "id", "codigo", "cliente_id", "jefe_obra_id", "nombre", "descripcion", "direccion",
    "estado", "presupuesto", "fecha_inicio", "fecha_fin_prevista", "etiquetas", "metadatos",
    "ubicacion", "creado_en", "actualizado_en",
)  # fmt: skip


def _estado_proyecto(rng: random.Random, age_days: int) -> str:
    if age_days < 60:
        return rng.choice(("presupuesto", "presupuesto", "adjudicado", "en_curso"))
    if age_days < 700:
        return rng.choice(("en_curso", "en_curso", "en_curso", "pausado", "adjudicado"))
    return rng.choice(("terminado", "terminado", "terminado", "cancelado", "en_curso"))


def gen_proyectos(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("proyectos", ids.start)
    for i in ids:
        frac = ctx.frac("obras.proyectos", i)
        start = ctx.date_at(frac)
        ciudad, provincia, _ = rng.choice(w.CIUDADES)
        tipo = rng.choice(w.TIPOS_OBRA)
        metadatos = {
            "licencia": f"{provincia[:2].upper()}-{start.year}-{rng.randint(1, 9999):04d}",
            "superficie_m2": rng.randint(60, 25_000),
            "plantas": rng.randint(1, 12),
            "direccion_facultativa": f"{rng.choice(w.NOMBRES)} {rng.choice(w.APELLIDOS)}",
            "certificacion_energetica": rng.choice("ABCDE"),
        }
        created = ctx.stamp(rng, start)
        yield (
            i,
            f"OB-{start.year}-{i:06d}",
            ctx.parent(rng, "core.clientes", frac),
            ctx.parent(rng, "core.empleados", frac),
            f"{tipo} en {ciudad}",
            f"{tipo} de {rng.randint(2, 120)} unidades en {ciudad} ({provincia}). "
            f"{rng.choice(w.OBSERVACIONES).capitalize()}.",
            f"{rng.choice(w.VIAS)} {rng.choice(w.NOMBRES_VIA)}, {rng.randint(1, 200)}, {ciudad}",
            _estado_proyecto(rng, (TODAY - start).days),
            _money(rng.randint(3_000_000, 900_000_000)),
            start,
            start + timedelta(days=rng.randint(90, 900)),
            sorted(rng.sample(w.ETIQUETAS, rng.randint(0, 3))),
            _json(metadatos),
            f"({rng.uniform(-9.0, 3.3):.5f},{rng.uniform(36.0, 43.7):.5f})",
            created,
            created,
        )


PARTIDAS_COLS = (
    "id", "proyecto_id", "capitulo", "codigo", "descripcion", "unidad", "cantidad",
    "precio_unitario", "avance", "actualizado_en",
)  # fmt: skip


def gen_partidas(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("partidas", ids.start)
    for i in ids:
        frac = ctx.frac("obras.partidas", i)
        capitulo = rng.choice(w.CAPITULOS)
        yield (
            i,
            ctx.parent(rng, "obras.proyectos", frac),
            capitulo,
            f"{capitulo[:2]}.{rng.randint(1, 40):02d}.{rng.randint(1, 99):02d}",
            f"{rng.choice(w.TAREAS)} con {rng.choice(w.MATERIALES).lower()}",
            rng.choice(w.UNIDADES),
            _milli(rng.randint(1_000, 5_000_000)),
            _money(rng.randint(100, 90_000)),
            _money(rng.choice((0, 0, 2500, 5000, 7500, 10000))),
            ctx.stamp(rng, ctx.date_at(frac)),
        )


PARTES_COLS = (
    "id", "fecha", "proyecto_id", "empleado_id", "horas", "tarea", "observaciones", "clima",
    "actualizado_en",
)  # fmt: skip


def gen_partes_trabajo(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("partes_trabajo", ids.start)
    for i in ids:
        frac = ctx.frac("obras.partes_trabajo", i)
        day = ctx.date_at(frac)
        clima = None
        if rng.random() < 0.6:
            clima = _json({"cielo": rng.choice(w.CLIMA), "temp": rng.randint(-3, 42)})
        yield (
            i,
            day,
            ctx.parent(rng, "obras.proyectos", frac),
            ctx.parent(rng, "core.empleados", frac),
            _money(rng.choice((200, 400, 600, 800, 800, 800, 900, 1000))),
            rng.choice(w.TAREAS),
            rng.choice(w.OBSERVACIONES) if rng.random() < 0.5 else None,
            clima,
            ctx.stamp(rng, day),
        )


# Orders and invoices are generated twice, once for their totals and once for their
# lines, from one RNG per document: consistent totals without holding lines in memory.
_TAG_PEDIDO = 1
_TAG_FACTURA = 2


class _Line(NamedTuple):
    ref_id: int | None
    text: str
    qty_milli: int
    price_cents: int
    pct: int

    @property
    def base_cents(self) -> int:
        return round(self.qty_milli * self.price_cents / 1000)


class _Doc(NamedTuple):
    day: date
    party_id: int
    proyecto_id: int
    estado: str
    lines: list[_Line]


def _pedido(ctx: Ctx, pid: int) -> _Doc:
    rng = ctx.id_rng(_TAG_PEDIDO, pid)
    frac = ctx.frac("compras.pedidos", pid)
    day = ctx.date_at(frac)
    age = (TODAY - day).days
    estado = (
        rng.choice(("pendiente", "enviado"))
        if age < 15
        else rng.choice(("recibido", "recibido", "recibido", "cancelado"))
    )
    lines = [
        _Line(
            ctx.parent(rng, "compras.materiales", frac),
            "",
            rng.randint(1_000, 200_000),
            rng.randint(50, 60_000),
            rng.choice((0, 0, 0, 5, 10)),
        )
        for _ in range(rng.randint(1, 9))
    ]
    return _Doc(
        day,
        ctx.parent(rng, "compras.proveedores", frac),
        ctx.parent(rng, "obras.proyectos", frac),
        estado,
        lines,
    )


PEDIDOS_COLS = (
    "id", "numero", "proveedor_id", "proyecto_id", "fecha", "estado", "total", "notas",
    "actualizado_en",
)  # fmt: skip


def gen_pedidos(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("pedidos", ids.start)
    for i in ids:
        doc = _pedido(ctx, i)
        total = sum(line.base_cents * (100 - line.pct) // 100 for line in doc.lines)
        notas = rng.choice(w.OBSERVACIONES) if rng.random() < 0.3 else None
        yield (
            i,
            f"PC-{doc.day.year}-{i:07d}",
            doc.party_id,
            doc.proyecto_id,
            doc.day,
            doc.estado,
            _money(total),
            notas,
            ctx.stamp(rng, doc.day),
        )


LINEAS_PEDIDO_COLS = (
    "id", "pedido_id", "material_id", "cantidad", "precio", "descuento", "actualizado_en",
)  # fmt: skip


def gen_lineas_pedido(ctx: Ctx, pedidos: range, first_id: int) -> Iterator[Row]:
    line_id = first_id
    for pid in pedidos:
        doc = _pedido(ctx, pid)
        stamp = datetime.combine(doc.day, time(8, 0), tzinfo=UTC)
        for line in doc.lines:
            yield (
                line_id,
                pid,
                line.ref_id,
                _milli(line.qty_milli),
                _money(line.price_cents),
                _money(line.pct * 100),
                stamp,
            )
            line_id += 1


def _factura(ctx: Ctx, fid: int) -> _Doc:
    rng = ctx.id_rng(_TAG_FACTURA, fid)
    frac = ctx.frac("finanzas.facturas", fid)
    day = ctx.date_at(frac)
    age = (TODAY - day).days
    if age < 30:
        estado = rng.choice(("borrador", "emitida", "emitida", "emitida"))
    elif age < 120:
        estado = rng.choice(("emitida", "pagada", "pagada", "vencida"))
    else:
        estado = rng.choice(("pagada",) * 12 + ("vencida", "anulada"))
    lines = [
        _Line(
            ctx.parent(rng, "obras.partidas", frac) if rng.random() < 0.8 else None,
            f"Certificación: {rng.choice(w.TAREAS).lower()}",
            rng.randint(1_000, 500_000),
            rng.randint(500, 400_000),
            rng.choice((21, 21, 21, 10, 4)),
        )
        for _ in range(rng.randint(1, 8))
    ]
    return _Doc(
        day,
        ctx.parent(rng, "core.clientes", frac),
        ctx.parent(rng, "obras.proyectos", frac),
        estado,
        lines,
    )


FACTURAS_COLS = (
    "id", "numero", "cliente_id", "proyecto_id", "fecha_emision", "fecha_vencimiento", "estado",
    "base_imponible", "iva", "total", "datos_fiscales", "notas", "actualizado_en",
)  # fmt: skip


def gen_facturas(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("facturas", ids.start)
    for i in ids:
        doc = _factura(ctx, i)
        base = sum(line.base_cents for line in doc.lines)
        iva = sum(round(line.base_cents * line.pct / 100) for line in doc.lines)
        fiscal = {
            "regimen": rng.choice(("general", "general", "inversion_sujeto_pasivo")),
            "retencion_pct": rng.choice((0, 0, 0, 1, 15)),
            "serie": "F",
        }
        notas = rng.choice(w.OBSERVACIONES) if rng.random() < 0.2 else None
        yield (
            i,
            f"F-{i:08d}",
            doc.party_id,
            doc.proyecto_id,
            doc.day,
            doc.day + timedelta(days=rng.choice((30, 60, 90))),
            doc.estado,
            _money(base),
            _money(iva),
            _money(base + iva),
            _json(fiscal),
            notas,
            ctx.stamp(rng, doc.day),
        )


LINEAS_FACTURA_COLS = (
    "id", "factura_id", "partida_id", "concepto", "cantidad", "precio", "tipo_iva",
    "actualizado_en",
)  # fmt: skip


def gen_lineas_factura(ctx: Ctx, facturas: range, first_id: int) -> Iterator[Row]:
    line_id = first_id
    for fid in facturas:
        doc = _factura(ctx, fid)
        stamp = datetime.combine(doc.day, time(9, 0), tzinfo=UTC)
        for line in doc.lines:
            yield (
                line_id,
                fid,
                line.ref_id,
                line.text,
                _milli(line.qty_milli),
                _money(line.price_cents),
                _money(line.pct * 100),
                stamp,
            )
            line_id += 1


PAGOS_COLS = ("id", "factura_id", "fecha", "importe", "metodo", "referencia", "actualizado_en")


def gen_pagos(ctx: Ctx, facturas: range, first_id: int) -> Iterator[Row]:
    """One payment per paid invoice (two partial ones sometimes), after its issue date."""
    pago_id = first_id
    for fid in facturas:
        doc = _factura(ctx, fid)
        if doc.estado != "pagada":
            continue
        rng = ctx.id_rng(_TAG_FACTURA + 8, fid)
        total = sum(line.base_cents + round(line.base_cents * line.pct / 100) for line in doc.lines)
        parts = [total] if rng.random() < 0.85 or total < 200 else [total // 2, total - total // 2]
        day = doc.day
        for amount in parts:
            day = min(ctx.last, day + timedelta(days=rng.randint(10, 90)))
            yield (
                pago_id,
                fid,
                day,
                _money(amount),
                rng.choice(w.METODOS_PAGO),
                f"REF{rng.randint(0, 10**10):010d}",
                datetime.combine(day, time(10, 0), tzinfo=UTC),
            )
            pago_id += 1


FOTOS_COLS = (
    "id", "proyecto_id", "tomada_en", "descripcion", "etiquetas", "tipo_mime", "ancho", "alto",
    "datos", "sha256", "actualizado_en",
)  # fmt: skip


def gen_fotos(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("fotos", ids.start)
    for i in ids:
        frac = ctx.frac("docs.fotos", i)
        taken = ctx.stamp(rng, ctx.date_at(frac))
        # Random bytes behind a JPEG header: photos are already compressed, so neither
        # PostgreSQL nor respaldo can shrink them, which is what real uploads look like.
        datos = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(rng.randint(40_000, 160_000))
        yield (
            i,
            ctx.parent(rng, "obras.proyectos", frac),
            taken,
            rng.choice(w.DESCRIPCIONES_FOTO),
            sorted(rng.sample(w.ETIQUETAS, rng.randint(0, 2))),
            "image/jpeg",
            rng.choice((4032, 4000, 3264)),
            rng.choice((3024, 3000, 2448)),
            datos,
            hashlib.sha256(datos).digest(),
            taken,
        )


def _document_bytes(rng: random.Random, i: int) -> bytes:
    # Half text, half noise: plans and contracts are PDFs with compressed streams inside.
    text = "".join(
        f"{rng.choice(w.CAPITULOS)}: {rng.choice(w.TAREAS)}; {rng.choice(w.MATERIALES)}\n"
        for _ in range(rng.randint(500, 2500))
    ).encode()
    return b"%PDF-1.7\n% documento " + str(i).encode() + b"\n" + text + rng.randbytes(len(text))


CAMBIOS_COLS = (
    "id", "tabla", "registro_id", "campo", "valor_anterior", "valor_nuevo", "usuario",
    "cambiado_en",
)  # fmt: skip


def gen_cambios(ctx: Ctx, ids: range) -> Iterator[Row]:
    rng = ctx.rng("cambios", ids.start)
    for i in ids:
        frac = ctx.frac("auditoria.cambios", i)
        if rng.random() < 0.5:
            tabla, ref = "obras.proyectos", ctx.parent(rng, "obras.proyectos", frac)
            old, new = rng.choice((("presupuesto", "adjudicado"), ("adjudicado", "en_curso"),
                                   ("en_curso", "terminado"), ("en_curso", "pausado")))  # fmt: skip
        else:
            tabla, ref = "finanzas.facturas", ctx.parent(rng, "finanzas.facturas", frac)
            old, new = rng.choice((("borrador", "emitida"), ("emitida", "pagada"),
                                   ("emitida", "vencida"), ("vencida", "pagada")))  # fmt: skip
        yield (
            i,
            tabla,
            ref,
            "estado",
            old,
            new,
            rng.choice(("erp_app", "erp_contabilidad")),
            ctx.stamp(rng, ctx.date_at(frac)),
        )


# --- loading ------------------------------------------------------------------------------


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: Iterable[str], rows: Iterable[Row]
) -> int:
    """Stream ``rows`` into ``table`` with COPY; return how many were sent."""
    schema, name = table.split(".")
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, name), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    sent = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            sent += 1
    return sent


def create_large_objects(conn: psycopg.Connection[Any], ctx: Ctx, ids: range) -> list[Row]:
    """Create the documents' large objects; return their ``docs.documentos`` rows."""
    rng = ctx.rng("documentos", ids.start)
    rows: list[Row] = []
    for i in ids:
        frac = ctx.frac("docs.documentos", i)
        data = _document_bytes(rng, i)
        conn.execute("SELECT pg_catalog.lo_from_bytea(%s::oid, %s)", (LO_OID_BASE + i, data))
        conn.execute(
            sql.SQL("ALTER LARGE OBJECT {} OWNER TO erp_propietario").format(
                sql.Literal(LO_OID_BASE + i)
            )
        )
        tipo = rng.choice(w.TIPOS_DOCUMENTO)
        rows.append(
            (
                i,
                ctx.parent(rng, "obras.proyectos", frac),
                f"{tipo.replace(' ', '_')}_{i:05d}.pdf",
                tipo,
                LO_OID_BASE + i,
                len(data),
                ctx.stamp(rng, ctx.date_at(frac)),
            )
        )
    return rows


DOCUMENTOS_COLS = ("id", "proyecto_id", "nombre", "tipo", "contenido", "tamano", "subido_en")

# Sequences to move past explicitly given ids: (table, column) -> its sequence.
SEQUENCES = (
    "core.clientes", "core.empleados", "compras.proveedores", "compras.materiales",
    "obras.proyectos", "obras.partidas", "obras.partes_trabajo", "compras.pedidos",
    "compras.lineas_pedido", "finanzas.facturas", "finanzas.lineas_factura", "finanzas.pagos",
    "docs.fotos", "docs.documentos", "auditoria.cambios",
)  # fmt: skip


def sync_sequences(conn: psycopg.Connection[Any]) -> None:
    """Set every id sequence (and the invoice number) past the highest id in use."""
    for table in SEQUENCES:
        schema, name = table.split(".")
        conn.execute(
            sql.SQL(
                "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, 'id'),"
                " coalesce(max(id), 0) + 1, false) FROM {}"
            ).format(sql.Literal(table), sql.Identifier(schema, name))
        )
    conn.execute(
        "SELECT pg_catalog.setval('finanzas.numero_factura_seq',"
        " coalesce(max(id), 0) + 1, false) FROM finanzas.facturas"
    )


def set_clock(conn: psycopg.Connection[Any], moment: datetime) -> None:
    """Pin ``core.ahora()`` (what triggers stamp) for the current transaction."""
    conn.execute("SELECT pg_catalog.set_config('erp.ahora', %s, true)", (moment.isoformat(),))


def _connect(conninfo_kwargs: ConnKwargs) -> psycopg.Connection[Any]:
    return psycopg.connect(**{"autocommit": True, **conninfo_kwargs})


def create_roles(conninfo_kwargs: ConnKwargs) -> None:
    """Create the sample's cluster-wide roles (``erp_roles.sql``). Idempotent.

    Needs a superuser or a role with CREATEROLE.
    """
    with _connect(conninfo_kwargs) as conn:
        conn.execute(ROLES_SQL.read_bytes())


def create_schema(conninfo_kwargs: ConnKwargs) -> None:
    """Create the sample's objects (``erp_schema.sql``) in an empty database.

    Not idempotent: raises psycopg errors if the objects exist. The roles must exist.
    """
    with _connect(conninfo_kwargs) as conn:
        conn.execute(SCHEMA_SQL.read_bytes())


def load(
    conninfo_kwargs: ConnKwargs,
    scale: float,
    seed: int,
    *,
    install: bool = True,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Fill the database named by ``conninfo_kwargs`` (psycopg.connect keywords).

    With ``install`` (the default) roles and schema are created first, so the database
    must be empty; otherwise the schema must be there with empty tables. Runs in one
    transaction: an error leaves no data behind. As a superuser, triggers and foreign key
    checks are skipped during the load (``session_replication_role = replica``): the
    generated rows are consistent by construction, and checking each one would double
    the load time. Returns the rows written per table. Raises psycopg errors.
    """
    counts = row_counts(scale)
    if install:
        create_roles(conninfo_kwargs)
        create_schema(conninfo_kwargs)
    ctx = Ctx(seed=seed, salt="load", first=HISTORY_START, last=TODAY)
    for table, n in counts.items():
        ctx.new_ids[table] = range(1, n + 1)
        ctx.max_ids[table] = n
    written: dict[str, int] = {}

    def put(table: str, columns: Iterable[str], rows: Iterable[Row]) -> None:
        written[table] = copy_rows(conn, table, columns, rows)
        if progress is not None:
            progress(table, written[table])

    with _connect(conninfo_kwargs) as conn, conn.transaction():
        set_clock(conn, datetime.combine(TODAY, time(18, 0), tzinfo=UTC))
        superuser = conn.execute("SELECT current_setting('is_superuser')").fetchone()
        if superuser is not None and superuser[0] == "on":
            conn.execute("SET LOCAL session_replication_role = replica")
        ids = ctx.new_ids
        put("core.clientes", CLIENTES_COLS, gen_clientes(ctx, ids["core.clientes"]))
        put("core.empleados", EMPLEADOS_COLS, gen_empleados(ctx, ids["core.empleados"]))
        put(
            "compras.proveedores",
            PROVEEDORES_COLS,
            gen_proveedores(ctx, ids["compras.proveedores"]),
        )
        put("compras.materiales", MATERIALES_COLS, gen_materiales(ctx, ids["compras.materiales"]))
        put("obras.proyectos", PROYECTOS_COLS, gen_proyectos(ctx, ids["obras.proyectos"]))
        put("obras.partidas", PARTIDAS_COLS, gen_partidas(ctx, ids["obras.partidas"]))
        put(
            "obras.partes_trabajo",
            PARTES_COLS,
            gen_partes_trabajo(ctx, ids["obras.partes_trabajo"]),
        )
        put("compras.pedidos", PEDIDOS_COLS, gen_pedidos(ctx, ids["compras.pedidos"]))
        put(
            "compras.lineas_pedido",
            LINEAS_PEDIDO_COLS,
            gen_lineas_pedido(ctx, ids["compras.pedidos"], 1),
        )
        put("finanzas.facturas", FACTURAS_COLS, gen_facturas(ctx, ids["finanzas.facturas"]))
        put(
            "finanzas.lineas_factura",
            LINEAS_FACTURA_COLS,
            gen_lineas_factura(ctx, ids["finanzas.facturas"], 1),
        )
        put("finanzas.pagos", PAGOS_COLS, gen_pagos(ctx, ids["finanzas.facturas"], 1))
        put("docs.fotos", FOTOS_COLS, gen_fotos(ctx, ids["docs.fotos"]))
        put(
            "docs.documentos",
            DOCUMENTOS_COLS,
            create_large_objects(conn, ctx, ids["docs.documentos"]),
        )
        put("auditoria.cambios", CAMBIOS_COLS, gen_cambios(ctx, ids["auditoria.cambios"]))
        sync_sequences(conn)
        conn.execute("REFRESH MATERIALIZED VIEW finanzas.mv_facturacion_mensual")
    return written
