"""A physical backup whose tar does not match the server's ``backup_manifest`` fails, and
nothing of it is stored as a good backup.

Backups stored before respaldo asked for CRC32C carry SHA-256 manifests: they restore,
checked, alone and as the root of an incremental chain whose newer backups are CRC32C.

The server is asked for CRC32C file checksums (PostgreSQL's default) and respaldo checks
every file against them as the tar passes. Here the stream is damaged between
pg_basebackup and respaldo: one byte of a relation file, or one file's checksum in the
manifest (with the manifest's own SHA-256 made to match, so that only the per-file check
can see it). The backup must fail with the file named and leave no manifest, no backup in
the repository and a failed record.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import IO, Any

import pytest
from sample.cluster import TempCluster
from sample.day_of_work import day_of_work

from respaldo.operations import physical
from respaldo.operations.repositories import open_repository
from respaldo.postgres import basebackup
from respaldo.postgres.basebackup import BaseBackupReader
from tests.integration.logical.support import table_checksums
from tests.integration.majors import ON_PG18
from tests.integration.physical.conftest import SEED, SHOP, Archiving

pytestmark = pytest.mark.integration


def _damaged(stream: bytes, what: str) -> tuple[bytes, str]:
    """The tar ``stream`` with one file damaged (``what``: its data, or its checksum in
    the manifest); and that file's name."""
    data = bytearray(stream)
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tar:
        members = list(tar)
    if what == "data":
        victim = next(m for m in members if m.name.startswith("base/") and m.size > 8192)
        data[victim.offset_data + 100] ^= 0x01
        return bytes(data), victim.name
    member = next(m for m in members if m.name == "backup_manifest")
    text = bytes(data[member.offset_data : member.offset_data + member.size])
    manifest = json.loads(text)
    entry = next(e for e in manifest["Files"] if e["Path"] == "PG_VERSION")
    old = entry["Checksum"]
    assert manifest["Files"][0]["Checksum-Algorithm"] == "CRC32C"
    new = ("0" if old[0] != "0" else "1") + old[1:]
    text = text.replace(f'"Checksum": "{old}"'.encode(), f'"Checksum": "{new}"'.encode(), 1)
    # The manifest's own checksum covers everything up to its last line: make it match.
    body_end = text.rfind(b"\n", 0, text.rfind(b"\n")) + 1
    own = manifest["Manifest-Checksum"]
    text = text[:body_end] + text[body_end:].replace(
        own.encode(), hashlib.sha256(text[:body_end]).hexdigest().encode()
    )
    assert len(text) == member.size
    data[member.offset_data : member.offset_data + member.size] = text
    return bytes(data), "PG_VERSION"


class _Damaging:
    """pg_basebackup's stdout, read whole, handed on with one file damaged."""

    def __init__(self, raw: IO[bytes], what: str) -> None:
        self.raw, self.what = raw, what
        self.data: io.BytesIO | None = None
        self.victim = ""

    def read(self, size: int = -1, /) -> bytes:
        if self.data is None:
            damaged, self.victim = _damaged(self.raw.read(), self.what)
            self.data = io.BytesIO(damaged)
        return self.data.read(size)


@pytest.mark.parametrize("what", ["data", "manifest"])
def test_a_file_that_does_not_match_its_crc32c_fails_the_backup(
    archiving: Archiving, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    before = {r["id"] for r in archiving.run("list", "--json").json()}
    streams: list[_Damaging] = []

    def reader(raw: IO[bytes], **kwargs: Any) -> BaseBackupReader:
        streams.append(_Damaging(raw, what))
        return BaseBackupReader(streams[-1], **kwargs)  # type: ignore[arg-type]

    # physical.py looks the name up in its module at run time.
    monkeypatch.setattr(physical, "BaseBackupReader", reader)
    run = archiving.run("backup", "erp", "--type", "incremental")
    assert run.code != 0, str(run)
    (stream,) = streams
    assert f"{stream.victim} does not match its CRC32C" in run.err, str(run)
    assert "the backup is not stored" in run.err

    listed = archiving.run("list", "--json").json()
    (record,) = [r for r in listed if r["id"] not in before]
    assert record["status"] == "failed"
    assert record["manifest"] is None
    assert "does not match its CRC32C" in record["errorMessage"]
    repo = open_repository(archiving.settings())
    try:
        assert record["id"] not in repo.backup_ids()  # no manifest: no backup
    finally:
        repo.close()


@ON_PG18
def test_a_backup_stored_with_sha256_checksums_restores_under_a_crc32c_incremental(
    archiving: Archiving, monkeypatch: pytest.MonkeyPatch, restored_servers: list[TempCluster]
) -> None:
    def sha256_reader(raw: IO[bytes], **kwargs: Any) -> BaseBackupReader:
        return BaseBackupReader(raw, checksums=frozenset(["SHA256"]))

    with monkeypatch.context() as patch:  # the backup as respaldo took it before CRC32C
        patch.setattr(basebackup, "MANIFEST_CHECKSUMS", "SHA256")
        patch.setattr(physical, "BaseBackupReader", sha256_reader)
        old = archiving.backup()
    day_of_work(archiving.pg.conninfo_kwargs(SHOP), SEED, 2)
    expected = table_checksums(archiving.pg, SHOP)
    new = archiving.backup()
    repo = open_repository(archiving.settings())
    try:
        old_meta = repo.load_manifest(old["id"]).meta
        new_meta = repo.load_manifest(new["id"]).meta
    finally:
        repo.close()
    assert old_meta["backup_manifest_checksums"] == "SHA256"
    assert new_meta["backup_manifest_checksums"] == "CRC32C"
    # On the old one (itself maybe incremental on earlier backups of this cluster).
    assert new_meta["chain"][-1] == old["id"], new_meta.get("full_reason")

    restored, _, _ = archiving.restore_started(new["id"], restored_servers)
    assert table_checksums(restored, SHOP) == expected
