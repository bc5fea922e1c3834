"""``python -m sample``: create, fill and age the sample ERP database from shell scripts.

The connection comes from the standard libpq environment (``PGHOST``, ``PGPORT``,
``PGUSER``, ``PGDATABASE``, ``PGPASSWORD`` or ``PGPASSFILE``/``~/.pgpass``) or from
``--dsn`` (key=value or URI; keep passwords out of it, they would show in ``ps``).

    python -m sample create-roles
    python -m sample load --scale 0.01 --seed 1
    python -m sample day --seed 1 --day 1 [--worst-case]
    python -m sample stats

Exit status 0 on success, 1 on a database error (message on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from sample import generate
from sample.day_of_work import day_of_work


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"conninfo": args.dsn}


def _stats(conninfo_kwargs: dict[str, Any]) -> dict[str, Any]:
    with psycopg.connect(**conninfo_kwargs, autocommit=True) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        counts: dict[str, int] = {}
        for table in generate.SEQUENCES:
            schema, name = table.split(".")
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
            ).fetchone()
            counts[table] = int(row[0]) if row is not None else 0
    return {"database_size": int(size[0]) if size is not None else 0, "rows": counts}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--dsn", default="", help="libpq connection string (default: PG* env)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("create-roles", help="create the cluster-wide roles (idempotent)")
    sub.add_parser("create-schema", help="create the schema in an empty database")
    p_load = sub.add_parser("load", help="create roles and schema, then fill with data")
    p_load.add_argument("--scale", type=float, default=0.01, help="1.0 is about 1 GB")
    p_load.add_argument("--seed", type=int, default=1)
    p_load.add_argument(
        "--no-install", action="store_true", help="the schema exists already; only fill it"
    )
    p_day = sub.add_parser("day", help="apply one day of ERP work")
    p_day.add_argument("--seed", type=int, default=1)
    p_day.add_argument("--day", type=int, default=1, help="day number, from 1, in order")
    p_day.add_argument(
        "--worst-case", action="store_true", help="update 1%% of rows uniformly at random"
    )
    sub.add_parser("stats", help="print row counts and database size as JSON")
    args = parser.parse_args(argv)
    kwargs = _kwargs(args)

    try:
        if args.command == "create-roles":
            generate.create_roles(kwargs)
        elif args.command == "create-schema":
            generate.create_schema(kwargs)
        elif args.command == "load":
            started = time.monotonic()
            written = generate.load(
                kwargs,
                args.scale,
                args.seed,
                install=not args.no_install,
                progress=lambda table, n: print(f"{table}\t{n}", file=sys.stderr),
            )
            seconds = time.monotonic() - started
            print(f"loaded {sum(written.values())} rows in {seconds:.1f} s", file=sys.stderr)
        elif args.command == "day":
            changes = day_of_work(kwargs, args.seed, args.day, worst_case=args.worst_case)
            for table, change in changes.items():
                print(f"{table}\tinserted={change.inserted}\tupdated={change.updated}")
        elif args.command == "stats":
            print(json.dumps(_stats(kwargs), indent=2))
    except psycopg.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
