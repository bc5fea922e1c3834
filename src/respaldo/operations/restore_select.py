"""Restoring some tables or schemas of a logical backup (``restore --table/--schema``).

The selection is made from the dump's table of contents alone (its start: nothing else
is read) before anything is created, so that a misspelt name costs nothing; what a
selection carries is described in :mod:`respaldo.postgres.toc`. The restore itself is
the ordinary one (:mod:`respaldo.operations.restore`) with pg_restore given the selected
entries as ``--use-list``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from respaldo.errors import InvalidInput, option
from respaldo.postgres.dbprops import Archive
from respaldo.postgres.toc import Selection, UnknownName, read_listing, select


def read_selection(
    dump: Callable[[], Archive],
    tables: Sequence[str],
    schemas: Sequence[str],
    *,
    bindir: Path | None = None,
    encoding: str | None = None,
) -> Selection:
    """The entries of the dump ``dump()`` yields that restore ``tables`` and ``schemas``
    (pg_restore from ``bindir``: one that can read the dump; ``encoding``: the backed-up
    database's, which names are printed in).

    Raises InvalidInput (field ``tables`` or ``schemas``) for a name the dump does not
    hold, with its closest names in the hint, or for a malformed name; PostgresError,
    IntegrityError while reading the table of contents.
    """
    for schema in schemas:
        if not schema.strip('"'):
            raise InvalidInput(
                "schemas",
                f"{schema!r} is not a schema name",
                hint=f"give {option('schemas')} a name",
            )
    entries = read_listing(dump(), bindir=bindir, encoding=encoding)
    try:
        return select(entries, tables, schemas)
    except UnknownName as exc:
        field = "tables" if exc.what == "table" else "schemas"
        if exc.other is not None:
            kind = exc.other.kind.lower()
            raise InvalidInput(
                field,
                f"{exc.other.name} is a {kind}, not a table; nothing was restored",
                hint=f"{option('schemas')} {exc.other.namespace} restores it with its schema "
                f"(when the tables it reads are in it); {option('tables')} takes tables",
            ) from None
        if exc.ambiguous:
            raise InvalidInput(
                field,
                f"{exc.what} {exc.name!r} is in more than one schema",
                hint=f"name it with its schema: {', '.join(exc.close)}",
            ) from None
        if exc.close:
            hint = f"did you mean {', '.join(exc.close)}? 'respaldo ls ID' lists the tables"
        else:
            hint = "'respaldo ls ID' lists the schemas and tables the backup holds"
        raise InvalidInput(
            field,
            f"the backup holds no {exc.what} {exc.name!r}; nothing was restored",
            hint=hint,
        ) from None
    except ValueError as exc:
        raise InvalidInput(
            "tables", str(exc), hint=f"give {option('tables')} as schema.table"
        ) from None
