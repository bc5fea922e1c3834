"""How a logical backup records its large objects (manifest ``meta.large_objects``), so
that a restore checks them as it checks the tables' row counts.

Row counts cover the tables only: ``pg_largeobject`` is a catalog, and a restore that lost
or cut short large objects (an ERP's attachments) would otherwise be called verified.
The record, taken in the snapshot pg_dump dumps::

    {"format": 1, "count": 12, "bytes": 3456789, "part_size": 1048576,
     "digest": "-81985529216486895"}

``count`` is the number of large objects, ``bytes`` the sum of their sizes and
``digest`` the sum (a decimal integer, no overflow) over every ``part_size`` part of
every large object of the first 8 bytes, as a signed big-endian integer, of
``sha256(int8send(oid) || int8send(offset) || part)``. A sum, so that the order in which
the server returns the parts does not matter; the oid and offset are hashed with the
part, so that data moved between objects or within one is a difference too.

The parts are read with ``lo_get``, as an application reads them, not from
``pg_largeobject``'s pages: a sparse object (written past its end) is stored without the
pages of its holes, and pg_restore writes it back whole (zeros), so its pages differ while
its contents do not; and a server of another block size cuts the pages differently.
``lo_get`` needs what pg_dump needs to read them (SELECT on each large object, or a
superuser). Ownership and grants are not part of the record.

Backups that predate the record have no ``large_objects`` key: their large objects are
not checked, and the restore says so. Opens no connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from respaldo.phrases import N_, counted

META_KEY = "large_objects"
"""Where a manifest's ``meta`` holds the record."""

FORMAT = 1
"""The digest's definition above. A record of another (a later respaldo's) is not one this
respaldo can compute again: it checks nothing then and says so, rather than fail a sound
restore; a record without the key is of this one."""

PART_SIZE = 1024 * 1024
"""Bytes of a large object hashed at once: one ``lo_get`` (the server holds the part in
memory while it hashes it; a whole object could be gigabytes)."""

# One row per part: a recursive walk, part after part, stopping at the first part shorter
# than a whole one (an empty object yields one empty part, and is counted). The working
# table holds a hash per part, never a part's bytes. The part size is formatted in by
# summary_query (an int, never text from outside).
_PARTS = """
WITH RECURSIVE part(loid, off, len, digest) AS (
    SELECT m.oid, 0::bigint, pg_catalog.length(g.p),
           pg_catalog.sha256(pg_catalog.int8send(m.oid::bigint) || pg_catalog.int8send(0) || g.p)
      FROM pg_catalog.pg_largeobject_metadata m,
           LATERAL (SELECT pg_catalog.lo_get(m.oid, 0, {size}) AS p) g
  UNION ALL
    SELECT part.loid, o.n, pg_catalog.length(g.p),
           pg_catalog.sha256(pg_catalog.int8send(part.loid::bigint) || pg_catalog.int8send(o.n)
                             || g.p)
      FROM part,
           LATERAL (SELECT part.off + {size} AS n) o,
           LATERAL (SELECT pg_catalog.lo_get(part.loid, o.n, {size}) AS p) g
     WHERE part.len = {size}
)
SELECT pg_catalog.count(DISTINCT loid), COALESCE(pg_catalog.sum(len), 0),
       COALESCE(pg_catalog.sum(('x' || pg_catalog.encode(pg_catalog.substr(digest, 1, 8), 'hex'))
                               ::bit(64)::bigint::numeric), 0)
  FROM part
"""


def summary_query(part_size: int = PART_SIZE) -> sql.Composed:
    """The query of one row, (count, bytes, digest), of the database's large objects as
    its transaction sees them, hashed in parts of ``part_size`` bytes (a restore hashes
    in its backup's part size)."""
    return sql.SQL(_PARTS).format(size=sql.Literal(int(part_size)))


@dataclass(frozen=True)
class LargeObjects:
    """The record of a database's large objects (see the module docstring)."""

    count: int
    bytes: int
    digest: str
    part_size: int = PART_SIZE

    @classmethod
    def from_row(cls, row: tuple[Any, ...], part_size: int = PART_SIZE) -> LargeObjects:
        """From the row of :func:`summary_query`."""
        return cls(int(row[0]), int(row[1]), str(int(row[2])), part_size)

    def to_meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "count": self.count,
            "bytes": self.bytes,
            "part_size": self.part_size,
            "digest": self.digest,
        }


def recorded(meta: dict[str, Any]) -> LargeObjects | None:
    """The record of a manifest's ``meta``; None for a backup that predates it, or whose
    record is of another :data:`FORMAT`."""
    found = meta.get(META_KEY)
    if not isinstance(found, dict) or found.get("format", FORMAT) != FORMAT:
        return None
    return LargeObjects(
        int(found["count"]),
        int(found["bytes"]),
        str(found["digest"]),
        int(found.get("part_size", PART_SIZE)),
    )


def differences(expected: LargeObjects, actual: LargeObjects) -> list[str]:
    """What differs between the backup's record and the restored database's, one phrase
    each; empty when they match. The contents are named only when count and sizes match
    (else they differ for that reason already)."""
    wrong: list[str] = []
    if actual.count != expected.count:
        # counted(): "1 large objects" before; both are phrases of respaldo.reasons.
        wrong.append(
            counted(
                actual.count,
                N_("{count} large object, {expected} expected"),
                N_("{count} large objects, {expected} expected"),
                expected=expected.count,
            )
        )
    if actual.bytes != expected.bytes:
        wrong.append(f"{actual.bytes} bytes of large objects, {expected.bytes} expected")
    if not wrong and actual.digest != expected.digest:
        wrong.append(
            f"the large objects' contents differ (digest {actual.digest}, "
            f"{expected.digest} expected)"
        )
    return wrong
