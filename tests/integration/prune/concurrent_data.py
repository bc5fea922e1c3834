"""Data of the concurrent backup-and-prune test, shared by the test and its child."""

from __future__ import annotations

import random

PACK_SIZE = 16 * 1024
BASE_SIZE = 150_000


def data_for(backup_id: str) -> bytes:
    """A "dump": a base every backup shares (so backups deduplicate against chunks that
    collection may be removing), changed in a few places that depend on the id."""
    out = bytearray(random.Random("base").randbytes(BASE_SIZE))
    rng = random.Random(backup_id)
    for _ in range(4):
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(3000)
    return bytes(out)
