"""A backup, restore or restore test that a request started is audited twice: when it
started, and when its job ended, with how it ended; a job that failed is never left as
a success in the audit log (a real SQLite catalog, a local repository, a file set and a
database on a closed port)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import AuditAction, Role
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.repositories import init_repositories
from tests.ports import closed_port
from tests.unit.api.conftest import FAST_KDF, token_headers


def test_the_end_of_a_job_a_request_started_is_audited_with_its_outcome(
    tmp_path: Path,
) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a file\n")
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp_path / 'repo'}"}],
        databases=[{"name": "erp", "dsn": f"postgresql://erp@127.0.0.1:{closed_port()}/erp"}],
        file_sets=[{"name": "docs", "paths": [str(tmp_path / "tree")]}],
        cache_dir=tmp_path / "cache",
        passphrase="correct horse (test)",
    )
    init_repositories(settings, kdf=FAST_KDF)
    with Context.open(settings, create=True) as context:
        headers = token_headers(context, "ops", Role.ADMIN)
        with TestClient(create_app(settings, context), headers=headers) as client:
            ended = {}
            for kind, database in (("full", "erp"), ("files", "docs")):
                answer = client.post("/admin/backups", json={"type": kind, "database": database})
                assert answer.status_code == 202, answer.text
                job = answer.json()["jobId"]
                client.app.state.workers.wait(job)  # type: ignore[attr-defined]
                ended[kind] = client.get(f"/admin/jobs/{job}").json()
        entries = audit.entries(context, user="token:ops", action=AuditAction.BACKUP_CREATE)
    assert ended["full"]["status"] == "failed"
    assert ended["files"]["status"] == "completed"
    outcomes = sorted((e.target, e.outcome.value, e.detail or "") for e in entries)
    full = [o for o in outcomes if o[0] == ended["full"]["resultId"]]
    files = [o for o in outcomes if o[0] == ended["files"]["resultId"]]
    # Started (success: the request was carried out), then how the job ended.
    assert [o[1] for o in full] == ["failure", "success"], full
    assert [o[1] for o in files] == ["success", "success"], files
    failure = next(o for o in full if o[1] == "failure")
    assert failure[2].startswith(f"job {ended['full']['id']}: ")
    # The start's entry names the kind as the status and the alerts do (before: "full
    # backup of erp, job N" beside their "logical").
    assert ("success", f"logical backup of erp, job {ended['full']['id']}") in [
        (o[1], o[2]) for o in full
    ], full
    assert ("success", f"files backup of docs, job {ended['files']['id']}") in [
        (o[1], o[2]) for o in files
    ], files
