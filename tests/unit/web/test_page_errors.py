"""What the page says when reading fails: the API's status and its scrubbed words,
never the path of a secret file (a real SQLite catalog and a local repository)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.unit.access.conftest import SECRET, add_user, cheap_hashes, write_secret  # noqa: F401
from tests.unit.api.conftest import FAST_KDF, completed_backup, token_headers
from tests.unit.web.test_session import _login

from respaldo.config import Settings
from respaldo.domain import BackupKind, Role
from respaldo.operations.context import Context
from respaldo.operations.repositories import init_repositories
from respaldo.web.site import create_site

pytestmark = pytest.mark.unit


def test_a_backup_page_that_cannot_be_read_names_no_secret_file(tmp_path: Path) -> None:
    passphrase = write_secret(tmp_path / "passphrase", "correct horse (test) phrase")
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        cache_dir=tmp_path / "cache",
        passphrase_file=passphrase,
        server={"jwt_secret_file": write_secret(tmp_path / "jwt.key", SECRET)},
    )
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as context:
        backup = completed_backup(context, "erp", BackupKind.FULL, datetime.now(UTC))
        add_user(context, "ana", Role.ADMIN)
        api = token_headers(context, "admin", Role.ADMIN)
        # Made readable by others under the running service: the repository refuses it.
        passphrase.chmod(0o644)
        with TestClient(create_site(settings, context), follow_redirects=False) as browser:
            _login(browser, "ana")
            page = browser.get(f"/backups/{backup}")
            answer = browser.get(f"/admin/backups/{backup}", headers=api)
    assert answer.status_code == 503
    assert answer.json()["detail"] == "passphrase_file <secret file> is readable by group or others"
    assert page.status_code == answer.status_code
    assert str(passphrase) not in page.text
    assert "passphrase_file &lt;secret file&gt; is readable by group or others" in page.text
