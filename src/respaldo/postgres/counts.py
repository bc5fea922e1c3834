"""How a logical backup records its tables' row counts (manifest ``meta.row_counts``).

Two formats, told apart by ``meta.row_counts_format`` (absent: 1):

1. ``count(*)`` of each table, its inheritance children's rows included, keyed
   ``schema.table`` as the names are. A parent's count then was not what its dump held
   (only its own rows), and ``"a.b".c`` and ``a."b.c"`` shared one key (one count
   checked the other table, and one table went unchecked).
2. ``count(*) FROM ONLY`` each table (the rows its own dump holds), keyed by
   :func:`count_key`: a part with a dot or a double quote in it is quoted, so that every
   table has its own key. Plain names are keyed as in 1.

A restore, a restore test and ``ls`` count and look up a backup's tables in the format
the backup recorded. Pure.
"""

from __future__ import annotations

from typing import Any, LiteralString

ROW_COUNTS_FORMAT = 2
"""The format new backups record."""

FORMAT_KEY = "row_counts_format"
"""Where a manifest's ``meta`` says which format its ``row_counts`` are in."""


def counts_format(meta: dict[str, Any]) -> int:
    """The row-count format of a manifest's ``meta`` (1 for backups that predate 2)."""
    return int(meta.get(FORMAT_KEY) or 1)


def _part(name: str, fmt: int) -> str:
    if fmt >= 2 and ("." in name or '"' in name):
        return '"' + name.replace('"', '""') + '"'
    return name


def count_key(schema: str, table: str, fmt: int = ROW_COUNTS_FORMAT) -> str:
    """The key of table ``schema.table`` in row counts of format ``fmt``; in format 2 it
    is also a name ``restore --table`` takes."""
    return f"{_part(schema, fmt)}.{_part(table, fmt)}"


def count_query(fmt: int = ROW_COUNTS_FORMAT) -> LiteralString:
    """The statement (with one ``{}`` for the table's identifier) that counts a table's
    rows in format ``fmt``."""
    return "SELECT count(*) FROM ONLY {}" if fmt >= 2 else "SELECT count(*) FROM {}"


def _listed(name: str) -> str:
    # pg_restore --list prints a line break of a name as a space.
    return name.replace("\n", " ").replace("\r", " ")


def find_recorded(recorded: dict[str, int], key: str) -> str | None:
    """The key of ``recorded`` (row counts or sizes) for ``key``, a key made from names
    as a dump's table of contents shows them: itself, or else the one key that reads
    the same once its line breaks are spaces (pg_restore prints them so); None if there
    is no such key, or more than one."""
    if key in recorded:
        return key
    found = [k for k in recorded if ("\n" in k or "\r" in k) and _listed(k) == key]
    return found[0] if len(found) == 1 else None
