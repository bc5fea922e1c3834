"""Which kinds of a database's backups its restore tests must prove.

A database backed up both logically (``full``: pg_dump) and physically (``incremental``:
pg_basebackup and the archived WAL) relies on both: a dump restores a database, a base
backup and its WAL a whole cluster to a point in time, and either can fail where the other
restores (a ``restore_command`` the server cannot run, a missing incremental parent, a
damaged dump). The scheduled restore test tested the newest logical backup alone, every
round, and the status's ``restore_test`` item was green from those passes: a physical
chain that could not restore was never found. So a kind counts when its newest completed
backup is within ``[rpo] restore_test_days`` (a kind the database no longer takes drops
out once its backups are that old: its own ``rpo`` item says they stopped), and both the
scheduled round (:func:`respaldo.operations.drill.run_restore_test_round`) and the status
(:mod:`respaldo.operations.status`) go by this rule."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from respaldo.domain import BackupKind
from respaldo.phrases import N_

DATABASE_KINDS = (BackupKind.FULL, BackupKind.INCREMENTAL)
"""A database's kinds of backup, in the order a round tests them (the cheaper first)."""

KIND_NAMES = {
    BackupKind.FULL: N_("logical backups"),
    BackupKind.INCREMENTAL: N_("physical backups"),
}
"""How the status names each kind's restore tests ("of its physical backups")."""


def relied_on(
    newest: Mapping[BackupKind, datetime | None], now: datetime, window: timedelta
) -> list[BackupKind]:
    """The kinds (of :data:`DATABASE_KINDS`) whose newest completed backup, ``newest``
    (its completion time, None: none), completed within ``window`` before ``now``. Pure."""
    return [
        kind
        for kind in DATABASE_KINDS
        if (at := newest.get(kind)) is not None and now - at <= window
    ]
