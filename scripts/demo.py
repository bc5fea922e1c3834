"""make demo: a throwaway PostgreSQL with a sample ERP database, backed up and proven.

Steps, each a real respaldo command shown as it runs:
1. a PostgreSQL cluster made with initdb in demo-data/ (run as the ``postgres`` OS user),
   holding the sample ERP database of a construction company;
2. ``respaldo init``: the catalog and an encrypted repository in demo-data/;
3. ``respaldo backup erp`` twice, with a day of ERP work in between (deduplication);
4. ``respaldo verify --all`` and ``respaldo restore`` into a new database, then a
   table-by-table comparison of the restored data with the source;
5. ``respaldo drill erp``: the automated restore test, which marks the backup verified.

6. ``respaldo serve`` started in the background on 127.0.0.1 (the schedule, the API and
   the web page, with an ``admin`` user whose password is in demo-data/admin.password),
   and the schedule listed.

The cluster and the service are left running so that ``respaldo -c demo-data/respaldo.toml
list`` and the HTTP server can be tried afterwards; ``make demo-stop`` (``demo.py --stop``)
stops both. A new ``make demo`` stops the previous one first.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sample  # noqa: E402
from psycopg import sql  # noqa: E402
from sample.cluster import TempCluster  # noqa: E402
from sample.day_of_work import day_of_work  # noqa: E402

DATA = ROOT / "demo-data"
# The restore test's checks of the sample ERP (see "respaldo drill").
VALIDATIONS = """
[[databases.validations]]
name = "at least one project"
sql = "SELECT count(*) > 0 FROM obras.proyectos"
expect = "True"

[[databases.validations]]
name = "no invoice line without its invoice"
sql = '''SELECT count(*) FROM finanzas.lineas_factura l
         LEFT JOIN finanzas.facturas f ON f.id = l.factura_id WHERE f.id IS NULL'''
expect = "0"
"""
SCALE = float(os.environ.get("DEMO_SCALE", "0.02"))  # about 20 MB of ERP rows
LISTEN = "127.0.0.1:8080"
SERVE_PID = DATA / "serve.pid"
CLUSTER_FILE = DATA / "cluster.json"


def respaldo(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    argv = [str(ROOT / ".venv" / "bin" / "respaldo"), "-c", str(DATA / "respaldo.toml"), *args]
    print(f"\n$ respaldo {' '.join(args)}", flush=True)
    done = subprocess.run(
        argv, env=env, input=stdin, stdout=subprocess.PIPE, text=True, check=False
    )
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"demo: 'respaldo {' '.join(args)}' failed with status {done.returncode}")
    return done.stdout


def table_checksums(cluster: TempCluster, dbname: str) -> dict[str, str]:
    tables = cluster.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
        dbname=dbname,
    )
    sums = {}
    for schema, table in tables:
        query = sql.SQL(
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
        )
        sums[f"{schema}.{table}"] = str(
            cluster.scalar(query.format(sql.Identifier(schema, table)), dbname=dbname)
        )
    return sums


def stop() -> None:
    """Stop a previous demo's service and cluster, if they run. Idempotent."""
    if SERVE_PID.exists():
        pid = int(SERVE_PID.read_text())
        try:
            os.kill(pid, signal.SIGTERM)  # serve cancels and records its jobs, then exits
            print(f"demo: stopping respaldo serve (pid {pid})", flush=True)
            for _ in range(600):
                os.kill(pid, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            pass
        SERVE_PID.unlink()
    if CLUSTER_FILE.exists():
        saved = json.loads(CLUSTER_FILE.read_text())
        datadir = Path(saved["datadir"])
        if (datadir / "postmaster.pid").exists():
            prefix = ["runuser", "-u", saved["os_user"], "--"] if saved["os_user"] else []
            pg_ctl = str(Path(saved["bindir"]) / "pg_ctl")
            print(f"demo: stopping the PostgreSQL cluster in {datadir}", flush=True)
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(datadir), "-m", "fast", "-w", "stop"], check=False
            )
        CLUSTER_FILE.unlink()


def start_service(env: dict[str, str]) -> int:
    """``respaldo serve`` in its own session, its output in demo-data/serve.log; returns
    once its HTTP server answers."""
    argv = [str(ROOT / ".venv" / "bin" / "respaldo"), "-c", str(DATA / "respaldo.toml"), "serve"]
    print(f"\n$ respaldo serve   (in the background, log in {DATA / 'serve.log'})", flush=True)
    with (DATA / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    SERVE_PID.write_text(f"{process.pid}\n")
    url = f"http://{LISTEN}/health"
    for _ in range(600):  # two minutes: a loaded machine starts it slowly
        if process.poll() is not None:
            tail = (DATA / "serve.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"demo: respaldo serve exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                answer.read()
            break
        except urllib.error.HTTPError:
            break  # 503 is an answer too: the server runs
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit(f"demo: respaldo serve did not answer on {url}")
    return process.pid


def main() -> None:
    if "--stop" in sys.argv[1:]:
        stop()
        return
    stop()
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir()
    print(f"demo: creating a throwaway PostgreSQL cluster in {DATA}", flush=True)
    cluster = TempCluster.create(base_dir=DATA)
    try:
        cluster.execute("CREATE DATABASE erp")
        started = time.monotonic()
        counts = sample.load(cluster.conninfo_kwargs("erp"), SCALE, 20261128)
        size = cluster.scalar("SELECT pg_size_pretty(pg_database_size('erp'))")
        print(
            f"demo: sample ERP loaded: {sum(counts.values())} rows in {len(counts)} tables, "
            f"{size}, {time.monotonic() - started:.0f} s",
            flush=True,
        )
        password_file = DATA / "erp.pass"
        password_file.write_text(cluster.password.get_secret_value() + "\n")
        password_file.chmod(0o600)
        passphrase_file = DATA / "passphrase"
        passphrase_file.write_text("demo passphrase, use a long random one in production\n")
        passphrase_file.chmod(0o600)
        # The web page's login: tokens signed with this secret, and an admin whose
        # password only this file holds.
        jwt_secret = DATA / "jwt.secret"
        jwt_secret.write_text(secrets.token_urlsafe(48) + "\n")
        jwt_secret.chmod(0o600)
        admin_password = DATA / "admin.password"
        admin_password.write_text(secrets.token_urlsafe(12) + "\n")
        admin_password.chmod(0o600)
        (DATA / "respaldo.toml").write_text(
            f"""# respaldo demo configuration (see docs/configuration.md)
passphrase_file = "{passphrase_file}"
cache_dir = "{DATA / "cache"}"

[catalog]
url = "sqlite:///{DATA / "catalog.db"}"

# What 'respaldo serve' runs (the specification's defaults), in the ERP's time zone.
[schedules]
time_zone = "America/Mexico_City"

[server]
listen = "{LISTEN}"
jwt_secret_file = "{jwt_secret}"

[[repositories]]
name = "local"
url = "file://{DATA / "repository"}"

[[databases]]
name = "erp"
dsn = "postgresql://{cluster.superuser}@127.0.0.1:{cluster.port}/erp"
password_file = "{password_file}"
retention_days = 7
"""
            + VALIDATIONS,
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESPALDO_")}
        respaldo("init", env=env)
        respaldo(
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            env=env,
            stdin=admin_password.read_text(),
        )
        first = respaldo("backup", "erp", env=env).strip().splitlines()[-1]
        print("\ndemo: a day of ERP work (new invoices, updated projects)…", flush=True)
        day_of_work(cluster.conninfo_kwargs("erp"), seed=1)
        respaldo("backup", "erp", env=env)
        respaldo("list", env=env)
        respaldo("verify", "--all", env=env)
        respaldo("restore", first, "--target-database", "erp_restored", env=env)
        # The first backup was taken before the day of work: compare it with a database
        # restored from it, so load a copy of the original for the comparison.
        cluster.execute("CREATE DATABASE erp_original")
        sample.load(cluster.conninfo_kwargs("erp_original"), SCALE, 20261128)
        source = table_checksums(cluster, "erp_original")
        restored = table_checksums(cluster, "erp_restored")
        differ = [t for t in source if source[t] != restored.get(t)]
        if differ:
            raise SystemExit(f"demo: restored tables differ from the source: {differ}")
        print(
            f"\ndemo: restored database matches the source table by table "
            f"({len(source)} tables compared by checksum). The backup is proven.",
            flush=True,
        )
        # The restore test respaldo runs on its own schedule: throwaway database, row
        # counts against the snapshot, the validation queries above; marks it verified.
        respaldo("drill", "erp", env=env)
        respaldo("list", env=env)
        CLUSTER_FILE.write_text(
            json.dumps(
                {
                    "datadir": str(cluster.datadir),
                    "bindir": str(cluster.bindir),
                    "os_user": cluster.os_user,
                }
            )
        )
        pid = start_service(env)
        respaldo("schedule", env=env)
    except BaseException:
        stop()
        cluster.destroy()
        raise
    # The demo goes on running: the cluster is not removed when this process exits.
    atexit.unregister(cluster.destroy)
    print(
        f"\ndemo: done. respaldo serve (pid {pid}) runs the schedule above; its page is at "
        f"http://{LISTEN}/ (user admin, password in {DATA / 'admin.password'});\n"
        f"the cluster keeps running. Repository and catalog are in {DATA}; try\n"
        f"  .venv/bin/respaldo -c {DATA / 'respaldo.toml'} list\n"
        f"  .venv/bin/respaldo -c {DATA / 'respaldo.toml'} jobs\n"
        f"  curl http://{LISTEN}/health\n"
        f"Stop the service and the cluster with: make demo-stop"
    )


if __name__ == "__main__":
    main()
