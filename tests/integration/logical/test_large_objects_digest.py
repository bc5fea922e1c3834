"""The large objects' digest is what docs/repository-format.md says it is: computed here
from the objects' bytes by the documented definition, it equals the server's. The record
is read back by any later respaldo (and by anyone checking a restore by hand), so its
definition is the format, edge cases included: an empty object, and one whose size is a
whole number of parts (its last part is an empty one, as the walk stops at the first part
shorter than a whole one)."""

from __future__ import annotations

import hashlib

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.postgres.server import large_objects

pytestmark = pytest.mark.integration

PART = 4
"""A small part size, so that parts and their edges are a few bytes."""

OBJECTS = {
    7001: b"",
    7002: b"a",
    7003: b"abcd",  # one whole part: an empty part follows
    7004: b"abcde",
    7005: b"abcdefgh",  # two whole parts
    4_000_000_000: b"oid past 2^31",  # an oid int4 would make negative
}


def _documented(objects: dict[int, bytes], part_size: int) -> int:
    """The digest by docs/repository-format.md, from the objects' bytes."""
    total = 0
    for oid, data in objects.items():
        offset = 0
        while True:
            part = data[offset : offset + part_size]
            hashed = hashlib.sha256(
                oid.to_bytes(8, "big", signed=True) + offset.to_bytes(8, "big", signed=True) + part
            ).digest()
            total += int.from_bytes(hashed[:8], "big", signed=True)
            if len(part) < part_size:
                break
            offset += part_size
    return total


def test_the_digest_is_the_documented_one(pg: TempCluster, new_dbname: str) -> None:
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(new_dbname)))
    for oid, data in OBJECTS.items():
        pg.execute("SELECT lo_from_bytea(%s, %s)", (oid, data), dbname=new_dbname)

    found = large_objects(pg.conninfo(new_dbname), part_size=PART)

    assert (found.count, found.bytes) == (len(OBJECTS), sum(map(len, OBJECTS.values())))
    assert found.digest == str(_documented(OBJECTS, PART))
    # Without the empty parts after whole ones, it would differ: the edge is in the digest.
    assert found.digest != str(_documented(OBJECTS, PART) - _empty_tails(OBJECTS, PART))


def test_no_large_objects_is_a_zero_digest(pg: TempCluster, new_dbname: str) -> None:
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(new_dbname)))
    found = large_objects(pg.conninfo(new_dbname))
    assert (found.count, found.bytes, found.digest) == (0, 0, "0")


def _empty_tails(objects: dict[int, bytes], part_size: int) -> int:
    """What the empty parts after whole ones add to the digest."""
    total = 0
    for oid, data in objects.items():
        if data and len(data) % part_size == 0:
            hashed = hashlib.sha256(
                oid.to_bytes(8, "big", signed=True) + len(data).to_bytes(8, "big", signed=True)
            ).digest()
            total += int.from_bytes(hashed[:8], "big", signed=True)
    return total
