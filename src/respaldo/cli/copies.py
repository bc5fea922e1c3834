"""What the copies to the secondary repositories after a backup came to, on stderr: the
backup stands whatever they did (docs/configuration.md, secondaries), but a copy that
failed is said, with its reason, by every command that backs up."""

from __future__ import annotations

from respaldo.cli.app import err_console
from respaldo.cli.text import escape
from respaldo.operations.recorded import BackupResult


def print_copies(result: BackupResult) -> None:
    """One line per copy of ``result``'s backups, and one per mirror its WAL missed."""
    for outcome in result.copies:
        if outcome.ok:
            err_console.print(f"copied {outcome.backup_id} to {outcome.repository}")
        else:
            # The local backup stands; the copy is recorded failed and retried next time.
            err_console.print(
                f"[yellow]warning:[/] copy of {outcome.backup_id} to {outcome.repository} "
                f"failed: {escape(str(outcome.error))}",
                highlight=False,
            )
    for wal in result.wal_copies:
        if not wal.ok:
            err_console.print(f"[yellow]warning:[/] {escape(str(wal.error))}", highlight=False)
