"""Reading an object whole and opening it, with a second read before damage is believed.

An object read whole (a manifest, an index file, a quarantine record, an archived WAL
file) that fails authentication may be whole in the store and spoiled on its way (a bit
flipped on a connection without TLS, a gateway that cut the answer short). Taken for
damage, that costs far more than a second request: verification reports a good backup
as damaged, an index file is left out, a quarantine record that cannot be read puts the
repository in the state *quarantine damaged* (every backup stores everything anew,
garbage collection refuses to run), and a recovery's wal-fetch stops. So the object is
read once more; only the same bytes again (or a second failure) are damage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from respaldo.repository.crypto import SealError
from respaldo.storage.base import Storage

log = logging.getLogger(__name__)

T = TypeVar("T")

FAILURES: tuple[type[Exception], ...] = (SealError, ValueError, KeyError, TypeError)
"""What opening an object raises when its bytes are not what was written (sealing,
decoding, the document's shape)."""


def read_opened(storage: Storage, name: str, open_blob: Callable[[bytes], T]) -> T:
    """``open_blob(storage.get(name))``; if that fails with one of :data:`FAILURES`, the
    object is read a second time and opened again. Raises what the first opening raised
    when the second read gives the same bytes, what the second opening raised when it
    fails too, and the storage errors of either read."""
    blob = storage.get(name)
    try:
        return open_blob(blob)
    except FAILURES:
        again = storage.get(name)
        if again == blob:
            raise
    result = open_blob(again)
    log.warning(
        "%s in %s failed authentication and read whole a second time: the store (or the "
        "way to it) returned bad bytes",
        name,
        storage.location,
    )
    return result
