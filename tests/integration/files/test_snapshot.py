"""``respaldo snapshot``: every configured source backed up at once, and pinned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sample.cluster import TempCluster

from respaldo.catalog import BackupRecords, open_catalog
from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from respaldo.operations.repositories import open_repository
from tests.configs import local_config
from tests.integration.cli import secret_file
from tests.integration.physical.conftest import FAST_KDF

pytestmark = pytest.mark.integration


def test_snapshot_pins_a_backup_of_every_source(
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "snapshot test passphrase")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "a.pdf").write_bytes(os.urandom(20_000))
    password = secret_file(tmp_path / "db.pass", pg.password.get_secret_value())
    config = local_config(
        tmp_path,
        f"""
[[databases]]
name = "erp"
dsn = "postgresql://{pg.superuser}@{pg.host}:{pg.port}/{erp_db}"
password_file = "{password}"
[[file_sets]]
name = "uploads"
paths = ["{uploads}"]
""",
    )
    initialize(load_settings(config), kdf=FAST_KDF)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = invoke(["--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("snapshot")
    assert code == 0, err
    ids = out.split()
    assert len(ids) == 2
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        with catalog.begin() as session:
            records = {r.id: r for r in BackupRecords(session).list()}
        assert {records[i].backup_type.value for i in ids} == {"full", "files"}
        assert all(records[i].pinned for i in ids)
        repo = open_repository(load_settings(config))
        snapshots = {repo.load_manifest(i).meta["snapshot"] for i in ids}
        assert len(snapshots) == 1
        assert snapshots.pop() in err

        code, _, err = run("unpin", ids[0])
        assert code == 0, err
        assert "unpinned" in err
        with catalog.begin() as session:
            assert BackupRecords(session).get(ids[0]).pinned is False
            assert BackupRecords(session).get(ids[1]).pinned is True
        assert run("pin", ids[0])[0] == 0
        with catalog.begin() as session:
            assert BackupRecords(session).get(ids[0]).pinned is True
        code, _, err = run("unpin", "20260101T000000Z-00000000")
        assert code == 1
        assert "no backup" in err
    finally:
        catalog.close()
