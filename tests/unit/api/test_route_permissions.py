"""The permission matrix of every route: no token, malformed, expired, signed with
another key (every bad credential of the access tests) -> 401; each role, by password
login and by API token -> 2xx where the specification grants it, else 403.

Listing and reading need ``admin:read``; creating a backup ``admin:create``; restores,
restore tests, deletion, pinning and cancelling ``admin:approve``. ``/health`` is open.
One app for the module (a real SQLite catalog, a local repository, a file set and a
database on a closed port); what a route changes is made afresh for each case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, Permission, Role, TriggeredBy
from respaldo.operations import jobs, users
from respaldo.operations.api_tokens import create_token
from respaldo.operations.context import Context
from respaldo.operations.principal import local_principal
from respaldo.operations.repositories import init_repositories
from respaldo.operations.snapshot import backup_source
from tests.ports import closed_port
from tests.unit.access.conftest import CHEAP_HASHER, PASSWORD, SECRET, write_secret
from tests.unit.access.test_permissions import BAD_CREDENTIALS, GRANTED
from tests.unit.api.conftest import FAST_KDF, completed_backup

OPEN = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    permission: Permission | None
    success: int
    body: Callable[[dict[str, Any]], Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# {old}, {new}: two fresh completed full backups of erp (new is the newest); {files}: a
# files backup with its manifest; {job}: a fresh queued job.
ROUTES = [
    Route("GET", "/health", OPEN, 200),
    Route("GET", "/admin/backups", Permission.READ, 200),
    Route("GET", "/admin/backups/{files}", Permission.READ, 200),
    Route("GET", "/admin/jobs", Permission.READ, 200),
    Route("GET", "/admin/jobs/{job}", Permission.READ, 200),
    Route("GET", "/admin/restore-tests", Permission.READ, 200),
    Route("GET", "/admin/databases", Permission.READ, 200),
    Route("GET", "/admin/status", Permission.READ, 200),
    Route("GET", "/admin/retention", Permission.READ, 200),
    Route("POST", "/admin/backups", Permission.CREATE, 202, lambda _: {"type": "files"}),
    # A snapshot is a pinned backup: pinning needs approve.
    Route(
        "POST",
        "/admin/backups",
        Permission.APPROVE,
        202,
        lambda _: {"type": "snapshot", "database": "erp"},
    ),
    Route("POST", "/admin/backups/test", Permission.APPROVE, 202, lambda m: {"backupId": m["new"]}),
    Route("POST", "/admin/backups/{new}/restore", Permission.APPROVE, 202),
    Route("DELETE", "/admin/backups/{old}", Permission.APPROVE, 200),
    Route("POST", "/admin/backups/{old}/pin", Permission.APPROVE, 200),
    Route("POST", "/admin/backups/{old}/unpin", Permission.APPROVE, 200),
    Route("POST", "/admin/jobs/{job}/cancel", Permission.APPROVE, 202),
    Route("GET", "/admin/audit", Permission.APPROVE, 200),
]

CREDENTIALS = [*BAD_CREDENTIALS, *(f"login {r}" for r in Role), *(f"token {r}" for r in Role)]


@dataclass
class World:
    context: Context
    client: TestClient
    files: str
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("permissions")
    (tmp / "tree").mkdir()
    (tmp / "tree" / "a.txt").write_text("a file\n")
    settings = Settings(
        catalog={"url": f"sqlite:///{tmp / 'catalog.db'}"},
        repositories=[{"name": "local", "url": f"file://{tmp / 'repo'}"}],
        databases=[{"name": "erp", "dsn": f"postgresql://erp@127.0.0.1:{closed_port()}/erp"}],
        file_sets=[{"name": "docs", "paths": [str(tmp / "tree")]}],
        cache_dir=tmp / "cache",
        passphrase="correct horse (test)",
        server={"jwt_secret_file": write_secret(tmp / "jwt.key", SECRET)},
    )
    init_repositories(settings, kdf=FAST_KDF)
    with pytest.MonkeyPatch.context() as patch, Context.open(settings, create=True) as context:
        patch.setattr(users, "HASHER", CHEAP_HASHER)
        files = backup_source(context, "docs").record.id
        headers = {}
        with TestClient(create_app(settings, context), client=("192.0.2.7", 1)) as client:
            for role in Role:
                users.add_user(context, f"u-{role}", role, PASSWORD, actor=local_principal())
                answer = client.post(
                    "/auth/token", data={"username": f"u-{role}", "password": PASSWORD}
                )
                headers[f"login {role}"] = {
                    "Authorization": f"Bearer {answer.json()['access_token']}"
                }
                token = create_token(context, f"t-{role}", role, actor=local_principal()).token
                headers[f"token {role}"] = {"Authorization": f"Bearer {token}"}
            yield World(context, client, files, headers)


def _marks(world: World) -> dict[str, Any]:
    now = datetime.now(UTC)
    old = completed_backup(world.context, "erp", BackupKind.FULL, now - timedelta(hours=2))
    new = completed_backup(world.context, "erp", BackupKind.FULL, now - timedelta(hours=1))
    job = jobs.submit(
        world.context, jobs.JobRequest(JobKind.PRUNE, None, TriggeredBy.CLI, "test")
    ).id
    return {"old": old, "new": new, "files": world.files, "job": job}


def _allowed(credential: str, route: Route) -> bool:
    if route.permission is None:
        return True
    if credential in BAD_CREDENTIALS:
        return False
    role = Role(credential.split()[1])
    return route.permission in GRANTED[role]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_permission_matrix(world: World, route: Route, credential: str) -> None:
    marks = _marks(world)
    good = world.headers["login admin"]["Authorization"].removeprefix("Bearer ")
    headers = (
        BAD_CREDENTIALS[credential](good)
        if credential in BAD_CREDENTIALS
        else world.headers[credential]
    )
    body = route.body(marks) if route.body is not None else None
    answer = world.client.request(
        route.method, route.path.format(**marks), headers=headers, json=body
    )
    if isinstance(answer.json(), dict) and "jobId" in answer.json():
        world.client.app.state.workers.wait(answer.json()["jobId"])  # type: ignore[attr-defined]
    if _allowed(credential, route):
        assert answer.status_code == route.success, answer.text
    elif credential in BAD_CREDENTIALS:
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    else:
        assert answer.status_code == 403, answer.text
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json"


def test_every_route_of_the_api_is_in_the_matrix(world: World) -> None:
    # A new route must be added to ROUTES (with its permission) to pass.
    placeholders = {"{old}": "{backup_id}", "{new}": "{backup_id}", "{files}": "{backup_id}"}

    def template(path: str) -> str:
        for mark, name in {**placeholders, "{job}": "{job_id}"}.items():
            path = path.replace(mark, name)
        return path

    served = {
        (method.upper(), path)
        for path, operations in world.client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in operations
        if not path.startswith("/auth/")
    }
    assert served == {(r.method, template(r.path)) for r in ROUTES}
