"""The restored database's own properties: owner, grants, settings, comment, limit.

A logical restore goes into a staging database that respaldo creates, so pg_restore
never runs the archive's ``DATABASE`` entries (it does so only with ``--create``). This
module gives the staging database those properties, as ``pg_dump --create`` would have
recreated them (see :mod:`respaldo.postgres.dbprops`):

1. :func:`read_database_properties` renders them from the backup's dump (only its table
   of contents is read) before anything is created;
2. :func:`check_properties` runs them on the fresh staging database and rolls back: a
   role the backup names and this server lacks stops the restore before it starts;
3. :func:`apply_database_properties` runs them for good, once the data is restored and
   checked, before the rename or swap;
4. with ``--replace``, :func:`keep_within_replaced` then makes sure the swapped-in
   database lets in nobody the replaced one kept out: its owner becomes the replaced
   database's, and every privilege the replaced database did not give is revoked. Each
   difference, both ways, is a warning.

Every failure raises RestoreError before the swap: the target is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from respaldo.errors import QueryFailed, RestoreError, option
from respaldo.postgres import ConnInfo
from respaldo.postgres.dbprops import (
    Archive,
    DatabaseProperties,
    apply_properties,
    database_privileges,
    read_properties,
    revoke_privilege,
    set_owner,
)
from respaldo.postgres.server import Connection

NOTHING_CHANGED = "nothing was changed"


def read_database_properties(
    dump: Callable[[], Archive], *, no_owner: bool, bindir: Path | None = None
) -> tuple[DatabaseProperties, list[str]]:
    """The backed-up database's properties from its dump, and warnings.

    ``dump`` yields the backup's dump stream from its start (called twice; only the
    start is read). ``no_owner`` leaves out the owner (``--no-owner``); ``bindir`` is the
    pg_restore's (see operations.restore.restore_tools). Raises
    RestoreError if the dump's database entries hold a statement respaldo does not know
    (it will not guess which database such a statement is about), IntegrityError or
    PostgresError.
    """
    try:
        properties = read_properties(dump, no_owner=no_owner, bindir=bindir)
    except UnicodeDecodeError as exc:
        # A SQL_ASCII database's comment or settings may hold bytes of no encoding; they
        # cannot be sent to the server on respaldo's UTF-8 connections.
        raise RestoreError(
            "the backed-up database's own properties (its comment or settings) are not "
            f"valid {exc.encoding}: {exc.reason} at byte {exc.start}",
            hint=f"{NOTHING_CHANGED}; give the source database a comment and settings "
            "in valid UTF-8 (ALTER DATABASE, COMMENT ON DATABASE) and take a new backup; "
            "a restore test of such a backup fails the same way",
        ) from None
    except ValueError as exc:
        raise RestoreError(
            f"the backed-up database's own properties cannot be read from the dump: {exc}",
            hint=f"{NOTHING_CHANGED}; please report this with the pg_dump version of the backup",
        ) from None
    if properties.source is None:
        return properties, [
            "the backup's dump holds no properties of the database itself (owner, grants, "
            "settings, comment): the restored database has the server's defaults"
        ]
    return properties, []


def _server_reason(exc: QueryFailed) -> str:
    # QueryFailed reads "<what> failed on <target>: <the server's message>".
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


def _apply(
    admin: ConnInfo,
    properties: DatabaseProperties,
    name: str,
    *,
    commit: bool,
    conn: Connection | None,
) -> None:
    try:
        apply_properties(admin, properties.statements_for(name), commit=commit, conn=conn)
    except QueryFailed as exc:
        raise RestoreError(
            "the backed-up database's owner, grants or settings cannot be applied: "
            f"{_server_reason(exc)}",
            hint=f"{NOTHING_CHANGED}; a role they name may be missing on this server: restore "
            f"with {option('with_globals')} to create the backup's roles first, or create it "
            "by hand",
        ) from None


def check_properties(
    admin: ConnInfo,
    properties: DatabaseProperties,
    staging: str,
    conn: Connection | None = None,
) -> None:
    """Run the properties on ``staging`` and roll them back; RestoreError if they fail.
    On ``conn``, a session of ``admin`` the caller keeps, if given."""
    if not properties.empty:
        _apply(admin, properties, staging, commit=False, conn=conn)


def apply_database_properties(
    admin: ConnInfo,
    properties: DatabaseProperties,
    staging: str,
    conn: Connection | None = None,
) -> None:
    """Give ``staging`` the backed-up database's properties (one transaction; on
    ``conn``, a session of ``admin`` the caller keeps, if given)."""
    if not properties.empty:
        _apply(admin, properties, staging, commit=True, conn=conn)


def keep_within_replaced(admin: ConnInfo, staging: str, target: str) -> list[str]:
    """Make ``staging`` allow no more than ``target``, the database it will replace.

    Its owner becomes ``target``'s owner; each privilege ``target`` does not give is
    revoked (as its grantor, with what was granted on from it). Returns warnings naming
    what was left out, and what ``target`` gave that the backup does not (not carried
    over: the backup's grants are the ones restored). Raises RestoreError if the result
    still allows more than ``target`` did.
    """
    old = database_privileges(admin, target)
    warnings: list[str] = []
    new = database_privileges(admin, staging)
    if new.owner != old.owner:
        set_owner(admin, staging, old.owner)
        warnings.append(
            f"the backed-up database was owned by {new.owner}; the restored one is owned by "
            f"{old.owner}, as the replaced one was"
        )
        new = database_privileges(admin, staging)
    withheld = sorted(p for p in new.privileges if not old.allows(p))
    for privilege in withheld:
        option_only = privilege.grantable and old.allows(privilege._replace(grantable=False))
        revoke_privilege(admin, staging, privilege, option_only=option_only)
    after = database_privileges(admin, staging)
    wider = sorted({p.describe() for p in after.privileges if not old.allows(p)})
    if wider:
        raise RestoreError(
            f"the restored database would allow what {target} does not: {', '.join(wider)}",
            hint=f"{NOTHING_CHANGED}; restore under another name and grant by hand",
        )
    if withheld:
        warnings.append(
            f"left out because {target} did not grant them (grant them by hand if they are "
            f"meant): {', '.join(sorted({p.describe() for p in withheld}))}"
        )
    lost = sorted({p.describe() for p in old.privileges if not after.allows(p)})
    if lost:
        warnings.append(
            f"granted by the replaced {target} but not by the backup, so not carried over: "
            f"{', '.join(lost)}"
        )
    return warnings
