"""One physical backup timed by part, in a process of its own (``physical_bench --phases``).

Kept apart from physical_bench, which imports the sample generator (psycopg and more):
here nothing is imported before the backup command's own imports are timed.
"""

from __future__ import annotations

import time
from typing import Any


def phases(config: str, database: str) -> list[tuple[str, float, float]]:
    """One physical backup in this process, timed by part: (part, CPU s, wall s).

    The imports are made one group at a time, in the order the backup command needs them
    (each group's figure is what it adds to the groups before); the work is timed by
    wrapping the functions of respaldo.operations.physical and of the catalog's records.
    Parts nest: the stream and the commit are inside the body, the body inside the job.
    """
    import importlib

    marks: list[tuple[str, float, float]] = []
    last = [time.process_time(), time.perf_counter()]

    def mark(name: str) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        marks.append((name, cpu - last[0], wall - last[1]))
        last[0], last[1] = cpu, wall

    groups = [
        ("import the CLI (typer, rich)", ["typer", "rich.console", "rich.progress"]),
        ("import the config (pydantic, pydantic-settings)", ["respaldo.config"]),
        ("import SQLAlchemy (core, orm)", ["sqlalchemy", "sqlalchemy.orm"]),
        ("import psycopg", ["psycopg"]),
        ("import the catalog (models, dialects)", ["respaldo.catalog"]),
        ("import numpy (the chunk index)", ["numpy"]),
        (
            "import the rest of the backup command",
            ["respaldo.cli.app", "respaldo.cli.progress", "respaldo.cli.backup_cmd"],
        ),
    ]
    for name, modules in groups:
        for module in modules:
            importlib.import_module(module)
        mark(name)
    from respaldo.config import load_settings
    from respaldo.domain import BackupKind, JobKind
    from respaldo.operations import physical
    from respaldo.operations.context import Context
    from respaldo.operations.jobs import cli_request, run_now

    settings = load_settings(config)
    mark("load the settings")
    ctx = Context.open(settings)
    mark("open the catalog, settle what died")
    ctx.repository()
    mark("open the repository, load its index")
    timed_parts: dict[str, list[float]] = {}
    instrument(timed_parts)
    with ctx:
        run_now(
            ctx,
            cli_request(JobKind.BACKUP, database, {"type": BackupKind.INCREMENTAL}),
            lambda job_ctx: physical.backup_cluster(job_ctx, database),
            result_id=lambda done: done.view.id,
        )
        mark("the job: records, body, copies")
    mark("close")
    return marks + [(part, cpu, wall) for part, (cpu, wall) in timed_parts.items()]


def instrument(timed_parts: dict[str, list[float]]) -> None:
    """Wrap the parts of a physical backup (respaldo.operations.physical's steps, the
    writer's stream and commit) so that each call adds its (process CPU s, wall s) to
    ``timed_parts[part]``. For this bench only: the wrappers stay for the process's life.
    Parts nest: the stream and the commit are inside the body."""
    from respaldo.operations import physical
    from respaldo.postgres.basebackup import BaseBackupReader
    from respaldo.repository.writer import BackupWriter

    def wrap(owner: Any, attribute: str, part: str) -> None:
        inner = getattr(owner, attribute)

        def timed_call(*a: Any, **k: Any) -> Any:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                spent = timed_parts.setdefault(part, [0.0, 0.0])
                spent[0] += time.process_time() - cpu
                spent[1] += time.perf_counter() - wall

        setattr(owner, attribute, timed_call)

    wrap(physical, "connect", "  a database session (connect)")
    wrap(physical, "server_info", "  server_info")
    wrap(physical, "find_tools", "  find_tools (pg_basebackup --version...)")
    wrap(physical, "ensure_cluster_record", "  the repository's cluster record")
    wrap(physical, "choose_parent", "  choose_parent")
    wrap(BackupWriter, "__init__", "  the writer (its repository lease)")
    wrap(physical, "pg_basebackup", "  starting pg_basebackup")
    wrap(BackupWriter, "write_stream", "  pg_basebackup's stream, chunked, sealed")
    wrap(BaseBackupReader, "finish", "  the check against backup_manifest")
    wrap(BackupWriter, "commit", "  the writer's commit (packs, index, manifest)")
    wrap(physical, "_stream", "  body: the backup itself")
    wrap(physical, "recorded_backup", "  the backup's records and body")
