"""The backup's roles script, read once for restore --globals and the drill's roles check
(operations/restore.py: read_globals): decoded in the encoding it declares, and bytes not
in it said by each in its own words, before anything is changed."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from respaldo.errors import RestoreError
from respaldo.operations import drill, restore
from respaldo.operations.backup import GLOBALS_STREAM

pytestmark = pytest.mark.unit

LATIN1 = "SET client_encoding = 'LATIN1';\nCREATE ROLE \"contabilidad_año\";\n".encode("latin-1")
# Declares UTF8, holds a LATIN1 byte: what no decoding can read.
BROKEN = "SET client_encoding = 'UTF8';\nCREATE ROLE \"año\";\n".encode("latin-1")


class _Reader:
    """A stream reader holding one globals stream, in two chunks."""

    def __init__(self, script: bytes) -> None:
        self.script = script
        self.read: list[str] = []

    def stream(self, manifest: Any, name: str) -> Iterator[bytes]:
        self.read.append(name)
        half = len(self.script) // 2
        yield self.script[:half]
        yield self.script[half:]


MANIFEST: Any = SimpleNamespace(streams=[SimpleNamespace(name=GLOBALS_STREAM)])


def test_the_globals_are_read_whole_and_decoded_in_their_declared_encoding() -> None:
    reader = _Reader(LATIN1)
    script = restore.read_globals(reader, MANIFEST)  # type: ignore[arg-type]
    assert reader.read == [GLOBALS_STREAM]
    assert script.size == len(LATIN1)
    assert 'CREATE ROLE "contabilidad_año";' in script.text
    (check,) = drill._roles_check(_Reader(LATIN1), MANIFEST)  # type: ignore[arg-type]
    assert (check.name, check.ok, check.detail) == (
        "roles",
        True,
        f"{len(LATIN1)} bytes read whole",
    )


def test_bytes_not_in_the_declared_encoding_fail_the_check_and_stop_the_restore() -> None:
    with pytest.raises(UnicodeDecodeError):
        restore.read_globals(_Reader(BROKEN), MANIFEST)  # type: ignore[arg-type]
    (check,) = drill._roles_check(_Reader(BROKEN), MANIFEST)  # type: ignore[arg-type]
    assert not check.ok
    assert check.detail.startswith("not in the encoding their script declares: ")
    # Before any role is created: the server is never asked (no connection given).
    with pytest.raises(RestoreError) as raised:
        restore._restore_globals(_Reader(BROKEN), MANIFEST, None, None)  # type: ignore[arg-type]
    assert str(raised.value).startswith(
        "the backup's roles cannot be read in the encoding their script declares: "
    )
    assert "nothing was changed" in (raised.value.hint or "")
