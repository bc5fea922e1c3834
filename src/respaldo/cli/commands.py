"""Which module defines each top-level command, and the line ``respaldo --help`` shows for it.

``respaldo --help`` and every command start a new process. Importing all command modules
up front (SQLAlchemy, Alembic, pydantic-settings, psycopg, apprise among them) cost about
1.5 CPU-seconds before anything ran; :class:`respaldo.cli.main.LazyGroup` imports only the
module of the command that runs, and lists the commands from this table. The help lines
are copies of the commands' own (the first paragraph of each docstring, or a group's
``help=``); ``tests/unit/test_cli_imports.py`` fails when one differs from its command.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    name: str
    module: str
    """Module below ``respaldo.cli`` whose import registers the command on the app."""
    help: str


# In the order the help lists them (commands first, then groups, as Typer orders them).
COMMANDS: tuple[Entry, ...] = (
    Entry("audit", "audit_cmd", "Show the audit log: logins, changes, restores, refused requests."),
    Entry(
        "backup",
        "backup_cmd",
        "Back up a configured database or file set; prints the backup id as the last line.",
    ),
    Entry(
        "check",
        "check_cmd",
        "Check wal_level, WAL senders, replication role and pg_hba, archive_mode and "
        "archive_command, and the repository's record of the cluster; say how to fix "
        "each.",
    ),
    Entry(
        "copy",
        "copy_cmd",
        "Copy backups from the primary to a secondary repository; only missing chunks move.",
    ),
    Entry(
        "drill",
        "drill_cmd",
        "Restore a backup into a throwaway database (logical), a scratch data directory"
        " and server (physical) or a scratch directory (files) and check it. For a"
        " database: the newest backup of each kind it relies on (logical, physical), each"
        " tested; for a backup id, that backup. Exit status 3 if a test fails, 1 if one"
        " could not run.",
    ),
    Entry("drills", "drill_cmd", "List past restore tests, newest first."),
    Entry(
        "init",
        "init_cmd",
        "Create each configured repository and the catalog, where they do not exist yet.",
    ),
    Entry("list", "list_cmd", "List backups, newest first."),
    Entry("show", "list_cmd", "Show one backup's record."),
    Entry(
        "ls",
        "list_cmd",
        "List the schemas and tables (with row counts and sizes) a logical backup holds, "
        "without restoring it.",
    ),
    Entry(
        "metrics",
        "metrics_cmd",
        "Print the Prometheus metrics (the text of GET /metrics), or write them for "
        "node_exporter's textfile collector: run it from cron where no service runs.",
    ),
    Entry(
        "prune",
        "prune_cmd",
        "Show every backup with keep or expire and the rule that decided it; then delete "
        "the expired ones from every repository and reclaim their space.",
    ),
    Entry(
        "repair",
        "repair_cmd",
        "Replace the chunks and archived WAL files found damaged with good copies from mirrors.",
    ),
    Entry(
        "restore",
        "restore_cmd",
        "Verify and restore a backup: a logical one into a new database (or swapped in with "
        "--replace; or only some tables with --table/--schema), a physical one into a new data "
        "directory with point-in-time recovery, a files backup into an empty directory.",
    ),
    Entry(
        "rewind", "rewind_cmd", "Make a repository on a versioned S3 bucket look as it did at --to."
    ),
    Entry("schedule", "serve_cmd", "List what 'respaldo serve' runs, and when it next runs it."),
    Entry(
        "serve",
        "serve_cmd",
        "Run the schedule and the HTTP server (\\[server] listen) until SIGTERM or Ctrl-C.",
    ),
    Entry(
        "snapshot",
        "snapshot_cmd",
        "Back up every configured database and file set now and pin those backups: "
        "retention keeps them until 'respaldo unpin'. Prints their ids; exit 1 if any "
        "failed.",
    ),
    Entry("pin", "snapshot_cmd", "Pin a backup: retention never expires it until it is unpinned."),
    Entry(
        "unpin",
        "snapshot_cmd",
        "Release a pinned backup (a snapshot's, say) to the retention rules.",
    ),
    Entry(
        "status",
        "status_cmd",
        "Per database: the newest backups against their RPO, WAL archiving, the last "
        "restore test, offsite copies; each green, amber or red with the reason.",
    ),
    Entry(
        "verify",
        "verify_cmd",
        "Read every chunk of the given backups (or of all), check ids and checksums.",
    ),
    Entry(
        "wal-push",
        "wal_cmd",
        "Archive one WAL file into the primary repository (for archive_command).",
    ),
    Entry(
        "wal-fetch",
        "wal_cmd",
        "Fetch one archived WAL file (for restore_command). Exit 1: not in the archive; "
        "255: any other failure (the server then stops recovery instead of ending it).",
    ),
    Entry(
        "worker",
        "worker_cmd",
        "Run the queued jobs of a PostgreSQL catalog until SIGTERM or Ctrl-C.",
    ),
    Entry(
        "workers",
        "worker_cmd",
        "List the workers, their queues and the jobs they run; a worker whose heartbeat "
        "stopped is shown stale, then lost (for a day, with the jobs lost with it).",
    ),
    Entry("catalog", "catalog_cmd", "Maintain the catalog of backups."),
    Entry("index", "index_cmd", "Inspect and repair the chunk index."),
    Entry(
        "jobs",
        "jobs_cmd",
        "List, show and cancel jobs (backups, restores, drills, prunes, verifies).",
    ),
    Entry("key", "key_cmd", "Manage the passphrases that open a repository."),
    Entry("notify", "notify_cmd", "Notifications: try the configured targets."),
    Entry("report", "report_cmd", "Reports: the monthly restore-test report."),
    Entry("repository", "repository_cmd", "Repair a repository itself."),
    Entry("user", "user_cmd", "Local users of the HTTP API (roles viewer, operator, admin)."),
    Entry("token", "token_cmd", "API tokens for automation: create (shown once), list, revoke."),
)

BY_NAME = {entry.name: entry for entry in COMMANDS}
