"""Restoring some tables or schemas of a logical backup (``restore --table/--schema``).

The selection is made from the dump's table of contents alone (its start: nothing else
is read) before anything is created, so that a misspelt name costs nothing; what a
selection carries is described in :mod:`respaldo.postgres.toc`. The restore itself is
the ordinary one (:mod:`respaldo.operations.restore`) with pg_restore given the selected
entries as ``--use-list``.

A default may name a sequence by text only (``nextval('s'::text)``, or a function whose
body calls ``nextval('s')``): the dump records no dependency on it, so the table of
contents alone would leave it out and the restored table's inserts would fail. The
definitions the selection takes (tables, defaults, functions) are read from the dump's
table of contents too (pg_restore renders them without reading any data), and the
sequences they name come along with their values; one the backup does not hold is named
in a warning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from respaldo.errors import InvalidInput, option
from respaldo.postgres.dbprops import Archive, read_offline
from respaldo.postgres.encodings import decode_script
from respaldo.postgres.toc import (
    Selection,
    TocEntry,
    UnknownName,
    declared_encoding,
    read_listing,
    select,
    sequence_uses,
)
from respaldo.privatedir import private_directory

# The definitions that may name a sequence an insert uses: a column's default (in the
# table's own definition or apart), and the functions a default or trigger calls.
_NAMING = frozenset({"TABLE", "DEFAULT", "FUNCTION"})


def names_encoding(
    recorded: str | None,
    dump: Callable[[], Archive],
    *,
    bindir: Path | None = None,
    work_dir: Path | None = None,
) -> str | None:
    """The encoding the names in ``dump``'s table of contents are in: the one the backup
    recorded (``meta.encoding``), or for a backup of an older respaldo, which recorded
    none, the one the dump declares (a LATIN1 database's ``año`` read as UTF-8 could be
    neither listed with its row count nor named in ``--table``)."""
    if recorded:
        return recorded
    return declared_encoding(dump(), bindir=bindir, tmp_dir=work_dir)


def read_selection(
    dump: Callable[[], Archive],
    tables: Sequence[str],
    schemas: Sequence[str],
    *,
    bindir: Path | None = None,
    encoding: str | None = None,
    work_dir: Path | None = None,
) -> Selection:
    """The entries of the dump ``dump()`` yields that restore ``tables`` and ``schemas``
    (pg_restore from ``bindir``: one that can read the dump; ``encoding``: the backed-up
    database's, which names are printed in).

    Raises InvalidInput (field ``tables`` or ``schemas``) for a name the dump does not
    hold, with its closest names in the hint, or for a malformed name; PostgresError,
    IntegrityError while reading the table of contents. ``dump`` is called twice (the
    second time to render the selected definitions; a list file goes in ``work_dir``).
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
        selection = select(entries, tables, schemas)
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
        # Unquoted, a name with a dot has a reading at each dot (postgres.toc._readings);
        # quoted ('"b.c"', in two schemas) it has one and lacks only its schema.
        if exc.ambiguous and "." in exc.name and '"' not in exc.name:
            raise InvalidInput(
                field,
                f"{exc.what} {exc.name!r} can be read as more than one table; nothing was restored",
                hint=f"put double quotes around the part with a dot in it: {', '.join(exc.close)}",
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
    return _with_named_sequences(
        selection, entries, tables, schemas, dump, bindir=bindir, work_dir=work_dir
    )


def _with_named_sequences(
    selection: Selection,
    entries: Sequence[TocEntry],
    tables: Sequence[str],
    schemas: Sequence[str],
    dump: Callable[[], Archive],
    *,
    bindir: Path | None,
    work_dir: Path | None,
) -> Selection:
    """``selection`` with the sequences its definitions name by text (see the module
    docstring), and a line for each in :attr:`Selection.brought`."""
    naming = [e for e in selection.entries if e.kind in _NAMING]
    if not naming:
        return selection
    with private_directory("selection", work_dir) as tmp:
        use_list = tmp / "definitions.list"
        use_list.write_text("".join(e.line + "\n" for e in naming), encoding="utf-8")
        script = read_offline([f"--use-list={use_list}", "--file=-"], dump(), bindir=bindir)
    taken = {e.dump_id for e in selection.entries}
    sequences = [e for e in entries if e.kind == "SEQUENCE"]
    wanted: dict[int, None] = {}
    notes: dict[str, None] = {}
    for use in sequence_uses(decode_script(script)):
        schema, name = use.name
        found = [s for s in sequences if s.tag == name and schema in (None, s.namespace)]
        if len(found) == 1 and found[0].dump_id not in taken:
            wanted[found[0].dump_id] = None
            notes[
                f"sequence {found[0].qualified} is restored too, with its value: "
                f"{use.where} names it"
            ] = None
        elif len(found) > 1:
            notes[
                f"{use.where} names sequence {use.literal!r}, which is in more than one "
                f"schema of the backup ({', '.join(s.qualified for s in found)}): none is "
                "restored for it; restore its schema too with --schema"
            ] = None
        elif not found:
            notes[
                f"{use.where} names sequence {use.literal!r}, which the backup does not "
                "hold: an insert that takes that default will fail until it is created"
            ] = None
    if wanted:
        selection = select(entries, tables, schemas, wanted)
    return dataclasses.replace(selection, brought=tuple(notes))
