"""The decryption recipe in docs/repository-format.md works on a real repository."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from respaldo.repository import BackupWriter, ChunkerParams, KdfParams, Repository
from respaldo.storage.local import LocalStorage

DOC = Path(__file__).parents[3] / "docs" / "repository-format.md"


def _recipe() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Decrypting a backup without respaldo", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the recipe's code block is missing"
    return match.group(1)


@pytest.mark.unit
def test_recipe_decrypts_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(
        LocalStorage(root),
        "correct horse",
        chunker=ChunkerParams(256, 1024, 4096),
        kdf=KdfParams(1, 1024, 1),
        pack_size=16 * 1024,
    )
    data = os.urandom(50_000) + b"compressible " * 5000
    with BackupWriter(repo, "20261128T083000Z-3f9a1c2e") as writer:
        writer.write_stream("dump", io.BytesIO(data))
        writer.commit(kind="full", source="erp", started_at=datetime.now(UTC))

    code = _recipe()
    code = code.replace('pathlib.Path("/var/backups/respaldo")', f"pathlib.Path({str(root)!r})")
    code = code.replace('passphrase = b"…"', 'passphrase = b"correct horse"')
    code = code.replace('backup_id = "…"', 'backup_id = "20261128T083000Z-3f9a1c2e"')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})  # noqa: S102 - running our own documentation
    assert (tmp_path / "dump").read_bytes() == data
