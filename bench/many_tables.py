"""A database of many small tables in many schemas, for restores whose cost is the number
of entries in the dump, not its bytes.

Run::

    .venv/bin/python -m bench.many_tables create --dir /tmp/mt --tables 20000 --schemas 2000
    .venv/bin/python -m bench.many_tables destroy --dir /tmp/mt

``create`` starts a cluster under ``--dir`` (:class:`sample.cluster.TempCluster`'s
settings, ``max_locks_per_transaction`` raised so that pg_dump can lock every table),
makes database ``many`` with ``--schemas`` schemas of ``--tables / --schemas`` tables
each, leaves the server running (its connection details in ``DIR/cluster.json``, as
:mod:`bench.bigdb` does) and writes what the measured commands need below ``DIR``:

- ``DIR/dump.pgcustom``: ``pg_dump -Fc`` of the database;
- ``DIR/respaldo``: a respaldo configuration and local repository holding one backup
  (its id in ``DIR/backup_id``);
- ``DIR/env.sh``: ``PGPASSFILE``, ``RESPALDO_PASSPHRASE`` and the connection settings,
  for a shell that runs ``pg_restore -d NEW DIR/dump.pgcustom`` against
  ``respaldo --config DIR/respaldo/respaldo.toml restore ID --target-database NEW``
  (drop ``NEW`` between runs).

Each table is what an ERP's catalog tables look like from pg_dump's side: a serial
primary key (a sequence, its default, its value), a foreign key to the schema's previous
table, an index and two rows: about nine entries in the table of contents per table.
Each schema is made in a transaction of its own.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from sample.cluster import TempCluster

from bench.bigdb import _state_path, attach, save
from bench.logical_bench import PASSPHRASE, Setup, respaldo_argv
from bench.measure import log, secret_file

DB = "many"


def schema_sql(schema: int, tables: int) -> str:
    """The statements that make schema ``s<schema>`` and its ``tables`` tables. Pure."""
    name = f"s{schema:05d}"
    out = [f"CREATE SCHEMA {name};"]
    for t in range(tables):
        ref = f", ref integer REFERENCES {name}.t{t - 1:02d} (id)" if t else ""
        out.append(
            f"CREATE TABLE {name}.t{t:02d} (id serial PRIMARY KEY{ref}, v text);"
            f"CREATE INDEX ON {name}.t{t:02d} (v);"
            f"INSERT INTO {name}.t{t:02d} (v) VALUES ('a'), ('b');"
        )
    return "\n".join(out)


def create(directory: Path, tables: int, schemas: int, bindir: Path | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if _state_path(directory).exists():
        raise SystemExit(f"{directory} holds a cluster already: destroy it first")
    cluster = TempCluster.create(
        base_dir=directory, bindir=bindir, settings={"max_locks_per_transaction": "1024"}
    )
    try:
        save(cluster, directory)
        cluster.execute(f"CREATE DATABASE {DB}")
        t0 = time.perf_counter()
        per = tables // schemas
        with cluster.connect(DB) as conn:
            conn.autocommit = True
            for s in range(schemas):
                with conn.transaction():
                    conn.execute(schema_sql(s, per).encode())
        cluster.execute("VACUUM (ANALYZE)", dbname=DB)
        cluster.execute("CHECKPOINT")
        log(f"{schemas * per} tables in {schemas} schemas in {time.perf_counter() - t0:.0f} s")
        _prepare(cluster, directory)
    except BaseException:
        cluster.destroy()
        _state_path(directory).unlink(missing_ok=True)
        raise
    atexit.unregister(cluster.destroy)


def _prepare(cluster: TempCluster, directory: Path) -> None:
    """The pg_dump file, the respaldo backup and env.sh (see the module's docstring)."""
    password = cluster.password.get_secret_value()
    password_file = secret_file(directory / "db.pass", password + "\n")
    pgpass = secret_file(
        directory / "pgpass",
        f"{cluster.host}:{cluster.port}:*:{cluster.superuser}:"
        + password.replace("\\", "\\\\").replace(":", "\\:")
        + "\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RESPALDO_"))}
    pg = {
        "PGPASSFILE": str(pgpass),
        "PGHOST": cluster.host,
        "PGPORT": str(cluster.port),
        "PGUSER": cluster.superuser,
    }
    env_pg = {**env, **pg}
    env_respaldo = {**env, "RESPALDO_PASSPHRASE": PASSPHRASE}
    t0 = time.perf_counter()
    dump = directory / "dump.pgcustom"
    subprocess.run(
        [str(cluster.bindir / "pg_dump"), "-Fc", "-f", str(dump), "-d", DB],
        env=env_pg,
        check=True,
    )
    log(f"pg_dump -Fc: {time.perf_counter() - t0:.0f} s, {dump.stat().st_size:,} bytes")
    setup = Setup(avg=64 * 1024, level=1, root=directory / "respaldo", dbname=DB)
    setup.write_config(cluster, password_file)
    subprocess.run(respaldo_argv(setup, "init"), env=env_respaldo, check=True)
    t0 = time.perf_counter()
    done = subprocess.run(
        respaldo_argv(setup, "backup", DB, "--json"),
        env=env_respaldo,
        check=True,
        capture_output=True,
        text=True,
    )
    log(f"respaldo backup: {time.perf_counter() - t0:.0f} s")
    backup_id = str(json.loads(done.stdout)["id"])
    (directory / "backup_id").write_text(backup_id + "\n")
    lines = [f"export {k}={v!r}" for k, v in {**pg, "RESPALDO_PASSPHRASE": PASSPHRASE}.items()]
    lines.append(f"export PGBIN={str(cluster.bindir)!r}")
    lines.append(f"export RESPALDO_CONFIG={str(setup.config)!r}")
    lines.append(f"export BACKUP_ID={backup_id!r}")
    (directory / "env.sh").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.many_tables", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("create", "destroy"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, required=True, help="where the cluster lives")
        if name == "create":
            p.add_argument("--tables", type=int, default=20_000)
            p.add_argument("--schemas", type=int, default=2_000)
            p.add_argument("--bindir", type=Path, help="PostgreSQL's bin directory")
    args = parser.parse_args(argv)
    if args.command == "create":
        create(args.dir, args.tables, args.schemas, args.bindir)
    else:
        if not _state_path(args.dir).exists():
            raise SystemExit(f"{args.dir} holds no cluster made by create: nothing to destroy")
        attach(args.dir).destroy()
        _state_path(args.dir).unlink(missing_ok=True)
        shutil.rmtree(args.dir / "respaldo", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
