"""A long-lived cluster holding a big sample ERP database, made once and reused by benches.

Run::

    .venv/bin/python -m bench.bigdb create --dir $BIGDATA/s10 --scale 11 --workers 2
    .venv/bin/python -m bench.bigdb status --dir $BIGDATA/s10
    .venv/bin/python -m bench.bigdb destroy --dir $BIGDATA/s10

Loading 10 GB takes the better part of an hour on a shared 2-core machine, too long to
repeat for every benchmark run. ``create`` starts a cluster under ``--dir`` (the same
settings as :class:`sample.cluster.TempCluster`, whose code it uses), fills database
``erp`` at ``--scale`` and leaves the server running; its connection details go to
``DIR/cluster.json`` (mode 0600: it holds the superuser's password). The benchmarks take
``--cluster DIR`` to measure that database instead of loading their own
(:func:`attach`); ``destroy`` stops the server and removes everything.

The load is :func:`sample.generate.load`'s rows spread over ``--workers`` processes, one
table at a time per process, biggest first (each table in its own transaction; the
database is not used until every table is in). The rows of each table are exactly those
``load`` writes for the same scale and seed, except the order of their physical
insertion across tables, which no benchmark depends on.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sample import generate as g
from sample.cluster import TempCluster

from bench.logical_bench import DB, MIB
from bench.measure import log

STATE = "cluster.json"


def _state_path(directory: Path) -> Path:
    return directory / STATE


def save(cluster: TempCluster, directory: Path) -> None:
    """Write what :func:`attach` needs (password included) to ``DIR/cluster.json``, 0600."""
    path = _state_path(directory)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    state = {
        "base": str(cluster.base),
        "bindir": str(cluster.bindir),
        "port": cluster.port,
        "superuser": cluster.superuser,
        "password": cluster.password.get_secret_value(),
        "os_user": cluster.os_user,
        "host": cluster.host,
        "settings": cluster.settings,
    }
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)


def attach(directory: Path) -> TempCluster:
    """The running cluster made by ``create`` in ``directory`` (started again if stopped).

    The returned object is not registered for removal at exit: a benchmark that uses it
    leaves it running for the next one.
    """
    state = json.loads(_state_path(directory).read_text())
    cluster = TempCluster(
        base=Path(state["base"]),
        bindir=Path(state["bindir"]),
        port=int(state["port"]),
        superuser=state["superuser"],
        password=SecretStr(state["password"]),
        os_user=state["os_user"],
        host=state["host"],
        settings=dict(state["settings"]),
    )
    if not (cluster.datadir / "postmaster.pid").exists():
        cluster.start()
        save(cluster, directory)
    return cluster


# --- loading in parallel ----------------------------------------------------------------

# table -> (columns, rows of the table in ctx, relative cost): the cost orders the queue.
Maker = Callable[[g.Ctx], Iterable[g.Row]]


def _own(gen: Callable[[g.Ctx, range], Iterable[g.Row]], table: str) -> Maker:
    return lambda ctx: gen(ctx, ctx.new_ids[table])


def _lines(gen: Callable[[g.Ctx, range, int], Iterable[g.Row]], parent: str) -> Maker:
    return lambda ctx: gen(ctx, ctx.new_ids[parent], 1)


TABLES: dict[str, tuple[tuple[str, ...], Maker, float]] = {
    "core.clientes": (g.CLIENTES_COLS, _own(g.gen_clientes, "core.clientes"), 2),
    "core.empleados": (g.EMPLEADOS_COLS, _own(g.gen_empleados, "core.empleados"), 0.3),
    "compras.proveedores": (
        g.PROVEEDORES_COLS, _own(g.gen_proveedores, "compras.proveedores"), 0.2
    ),
    "compras.materiales": (g.MATERIALES_COLS, _own(g.gen_materiales, "compras.materiales"), 1),
    "obras.proyectos": (g.PROYECTOS_COLS, _own(g.gen_proyectos, "obras.proyectos"), 1),
    "obras.partidas": (g.PARTIDAS_COLS, _own(g.gen_partidas, "obras.partidas"), 15),
    "obras.partes_trabajo": (
        g.PARTES_COLS, _own(g.gen_partes_trabajo, "obras.partes_trabajo"), 60
    ),
    "compras.pedidos": (g.PEDIDOS_COLS, _own(g.gen_pedidos, "compras.pedidos"), 8),
    "compras.lineas_pedido": (
        g.LINEAS_PEDIDO_COLS, _lines(g.gen_lineas_pedido, "compras.pedidos"), 12
    ),
    "finanzas.facturas": (g.FACTURAS_COLS, _own(g.gen_facturas, "finanzas.facturas"), 12),
    "finanzas.lineas_factura": (
        g.LINEAS_FACTURA_COLS, _lines(g.gen_lineas_factura, "finanzas.facturas"), 20
    ),
    "finanzas.pagos": (g.PAGOS_COLS, _lines(g.gen_pagos, "finanzas.facturas"), 8),
    "docs.fotos": (g.FOTOS_COLS, _own(g.gen_fotos, "docs.fotos"), 40),
    "auditoria.cambios": (g.CAMBIOS_COLS, _own(g.gen_cambios, "auditoria.cambios"), 2),
}  # fmt: skip


def _context(scale: float, seed: int) -> g.Ctx:
    ctx = g.Ctx(seed=seed, salt="load", first=g.HISTORY_START, last=g.TODAY)
    for table, n in g.row_counts(scale).items():
        ctx.new_ids[table] = range(1, n + 1)
        ctx.max_ids[table] = n
    return ctx


def _load_one(conninfo: dict[str, Any], scale: float, seed: int, table: str) -> tuple[str, int]:
    """One table's rows in one transaction, as :func:`sample.generate.load` writes them."""
    ctx = _context(scale, seed)
    with g._connect(conninfo) as conn, conn.transaction():
        g.set_clock(conn, datetime.combine(g.TODAY, dtime(18, 0), tzinfo=UTC))
        conn.execute("SET LOCAL session_replication_role = replica")
        if table == "docs.documentos":
            rows: Iterable[g.Row] = g.create_large_objects(conn, ctx, ctx.new_ids[table])
            return table, g.copy_rows(conn, table, g.DOCUMENTOS_COLS, rows)
        columns, maker, _ = TABLES[table]
        return table, g.copy_rows(conn, table, columns, maker(ctx))


def load_parallel(conninfo: dict[str, Any], scale: float, seed: int, workers: int) -> int:
    """Roles, schema, then every table in ``workers`` processes; return the rows written."""
    g.create_roles(conninfo)
    g.create_schema(conninfo)
    order = [*sorted(TABLES, key=lambda t: -TABLES[t][2]), "docs.documentos"]
    written = 0
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_load_one, conninfo, scale, seed, t) for t in order]
        for future in futures:
            table, n = future.result()
            written += n
            log(f"  {table}: {n:,} rows")
    with g._connect(conninfo) as conn:
        g.sync_sequences(conn)
        conn.execute("REFRESH MATERIALIZED VIEW finanzas.mv_facturacion_mensual")
    return written


def create(
    directory: Path, scale: float, seed: int, workers: int, bindir: Path | None = None
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if _state_path(directory).exists():
        raise SystemExit(f"{directory} holds a cluster already: destroy it first")
    cluster = TempCluster.create(base_dir=directory, bindir=bindir)
    try:
        save(cluster, directory)
        cluster.execute(f"CREATE DATABASE {DB}")
        t0 = time.perf_counter()
        log(f"loading scale {scale} (seed {seed}) with {workers} workers…")
        rows = load_parallel(cluster.conninfo_kwargs(DB), scale, seed, workers)
        loaded = time.perf_counter() - t0
        cluster.execute("VACUUM (ANALYZE)", dbname=DB)
        cluster.execute("CHECKPOINT")
        size = int(cluster.scalar("SELECT pg_database_size(%s)", (DB,)))
        log(
            f"{rows:,} rows, {size / MIB:.0f} MiB loaded in {loaded:.0f} s "
            f"(vacuumed: {time.perf_counter() - t0:.0f} s)"
        )
        (directory / "database.json").write_text(
            json.dumps(
                {
                    "scale": scale,
                    "seed": seed,
                    "rows": rows,
                    "size_bytes": size,
                    "load_seconds": loaded,
                },
                indent=2,
            )
        )
    except BaseException:
        cluster.destroy()
        _state_path(directory).unlink(missing_ok=True)
        raise
    # Keep it: the point is to outlive this process.
    atexit.unregister(cluster.destroy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bigdb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("create", "status", "destroy"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, required=True, help="where the cluster lives")
        if name == "create":
            p.add_argument("--scale", type=float, required=True, help="1.0 is about 890 MiB")
            p.add_argument("--seed", type=int, default=1)
            p.add_argument("--workers", type=int, default=2, help="loading processes (2)")
            p.add_argument(
                "--bindir",
                type=Path,
                help="PostgreSQL's bin directory (default: the system's newest)",
            )
    args = parser.parse_args(argv)
    if args.command == "create":
        create(args.dir, args.scale, args.seed, args.workers, args.bindir)
    elif args.command == "status":
        cluster = attach(args.dir)
        size = int(cluster.scalar("SELECT pg_database_size(%s)", (DB,)))
        print(f"port {cluster.port}: {DB} {size / MIB:.0f} MiB", file=sys.stderr)
    else:
        if not _state_path(args.dir).exists():
            raise SystemExit(f"{args.dir} holds no cluster made by create: nothing to destroy")
        attach(args.dir).destroy()
        _state_path(args.dir).unlink(missing_ok=True)
        # Its description goes with it, so that create can use the directory again.
        (args.dir / "database.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
