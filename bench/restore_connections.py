"""Count the server sessions one ``respaldo restore --jobs N`` opens, and what each is for.

    .venv/bin/python -m bench.restore_connections --workdir /tmp/conns [--baseline-src SRC]

Starts a throwaway cluster with ``log_connections`` and ``log_statement = all``, loads the
sample ERP database at a small scale, backs it up once, then restores it with respaldo
(and, with ``--baseline-src``, another checkout's respaldo) and with ``createdb`` +
``pg_restore -j N``, each alone, and restore-tests it (``respaldo drill``) with each
respaldo. For each it reads the server log of that run and lists every session in the
order it started: its database, its ``application_name`` and its first statements, and
counts them by phase (before the first ``pg_restore`` session, ``pg_restore``'s,
respaldo's own to the new database, respaldo's to others, those of others by database).
The count is deterministic (no timing): the figure of docs/benchmarks.md's "Session 19",
"Session 20" and "Session 21".
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sample import generate
from sample.cluster import TempCluster

from bench.logical_bench import DB, Bench, Setup, respaldo_argv

SETTINGS = {
    "log_connections": "on",
    "log_statement": "all",
    "log_line_prefix": "%m [%p] ",
}

_LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (\w+):  (.*)$")
_AUTHORIZED = re.compile(
    r"connection authorized: user=\S+ database=(\S+)(?: application_name=(.*))?"
)
_STATEMENT = ("statement: ", "execute ")


@dataclass
class Session:
    pid: int
    database: str
    application: str
    statements: list[str] = field(default_factory=list)


def sessions_in(log_text: str) -> list[Session]:
    """The sessions authorized in ``log_text``, in order, with their statements."""
    found: dict[int, Session] = {}
    order: list[Session] = []
    last: Session | None = None
    for line in log_text.splitlines():
        match = _LINE.match(line)
        if match is None:
            # A statement's next line (the server indents it with a tab).
            if (
                last is not None
                and last.statements
                and line.startswith("\t")
                and len(last.statements[-1]) < 200
            ):
                last.statements[-1] += " " + line.strip()
            continue
        pid, level, message = int(match[1]), match[2], match[3]
        authorized = _AUTHORIZED.match(message)
        if authorized:
            session = Session(pid, authorized[1], (authorized[2] or "").strip())
            found[pid] = session
            order.append(session)
            continue
        last = found.get(pid)
        if last is not None and level == "LOG" and message.startswith(_STATEMENT):
            # "statement: …" (simple protocol) or "execute <unnamed>: …" (parameters).
            last.statements.append(message.split(": ", 1)[1].strip())
    return order


def _short(statement: str) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= 90 else text[:87] + "…"


def report(title: str, sessions: Sequence[Session], target: str) -> list[str]:
    """One line per session, then the counts by phase."""
    lines = [f"## {title}: {len(sessions)} sessions", ""]
    first_restore = next(
        (i for i, s in enumerate(sessions) if s.application == "pg_restore"), len(sessions)
    )
    for i, s in enumerate(sessions, 1):
        what = "; ".join(_short(x) for x in s.statements[:3]) or "(no statement)"
        more = f" (+{len(s.statements) - 3})" if len(s.statements) > 3 else ""
        new = "NEW" if s.database.startswith(("respaldo_staging_", target)) else s.database
        lines.append(f"{i:3} {new:10} {s.application[:28]:28} {what}{more}")
    own_new = [
        s
        for s in sessions
        if s.application != "pg_restore" and s.database.startswith(("respaldo_staging_", target))
    ]
    lines += [
        "",
        f"before the first pg_restore session: {first_restore}",
        f"pg_restore: {sum(s.application == 'pg_restore' for s in sessions)}",
        f"respaldo's own to the new database: {len(own_new)}",
        f"respaldo's own to other databases: "
        f"{sum(s.application != 'pg_restore' for s in sessions) - len(own_new)}",
    ]
    by_database = Counter(
        s.database for s in sessions if s.application != "pg_restore" and s not in own_new
    )
    lines += [f"  on {name}: {n}" for name, n in sorted(by_database.items())] + [""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--baseline-src", type=Path)
    args = parser.parse_args(argv)
    args.quiet_wait = 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "cluster").mkdir(exist_ok=True)
    out: list[str] = []
    with TempCluster.create(base_dir=args.workdir / "cluster", settings=SETTINGS) as cluster:
        cluster.execute(f"CREATE DATABASE {DB}")
        generate.load(cluster.conninfo_kwargs(DB), args.scale, 1)
        bench = Bench(args, cluster, lambda text: print(text, file=sys.stderr))
        setup = Setup(16384, 1, args.workdir / "setup")
        bench.init(setup)
        backup_id = bench.backup(setup, "first")["backup_id"]
        dump = args.workdir / "a.dump"
        bench.pg_dump_file(dump)

        def counted(title: str, target: str, run: list[list[str]], env: dict[str, str]) -> None:
            cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')
            start = cluster.logfile.stat().st_size
            for command in run:
                subprocess.run(command, env=env, check=True, capture_output=True)
            with cluster.logfile.open("rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace")
            out.extend(report(title, sessions_in(text), target))
            cluster.execute(f'DROP DATABASE IF EXISTS "{target}"')

        def restore(src: Path | None) -> list[list[str]]:
            return [
                respaldo_argv(
                    setup,
                    "restore",
                    backup_id,
                    "--target-database",
                    "conn_r",
                    "--jobs",
                    str(args.jobs),
                    src=src,
                )
            ]

        counted(f"respaldo restore --jobs {args.jobs}", "conn_r", restore(None), bench.respaldo_env)
        if args.baseline_src is not None:
            counted(
                f"respaldo restore --jobs {args.jobs} ({args.baseline_src})",
                "conn_r",
                restore(args.baseline_src),
                bench.respaldo_env,
            )

        def drill(src: Path | None) -> list[list[str]]:
            return [respaldo_argv(setup, "drill", backup_id, src=src)]

        # A restore test's throwaway database: respaldo_drill_<hex>.
        counted("respaldo drill", "respaldo_drill_", drill(None), bench.respaldo_env)
        if args.baseline_src is not None:
            counted(
                f"respaldo drill ({args.baseline_src})",
                "respaldo_drill_",
                drill(args.baseline_src),
                bench.respaldo_env,
            )
        c = cluster
        conn = [f"--host={c.host}", f"--port={c.port}", f"--username={c.superuser}"]
        counted(
            f"createdb + pg_restore -j {args.jobs}",
            "conn_p",
            [
                [bench.tool("createdb"), "--no-password", "--template=template0", *conn, "conn_p"],
                [
                    bench.tool("pg_restore"),
                    "--exit-on-error",
                    "--no-password",
                    f"--jobs={args.jobs}",
                    "-d",
                    bench.dsn("conn_p"),
                    str(dump),
                ],
            ],
            bench.pg_env,
        )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
