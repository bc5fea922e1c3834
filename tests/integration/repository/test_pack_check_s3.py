"""The check of a backup's packs before its manifest, on real S3-compatible servers: the
sizes a LIST gives (the one request for a backup of many packs) and those a HEAD gives
tell a pack lost or cut short after a backup deduplicated against it."""

from __future__ import annotations

import pytest

from respaldo.repository import pack_check
from tests.servers.s3 import S3Endpoint
from tests.unit.repository.helpers import init_repo, random_bytes, write_backup
from tests.unit.repository.test_pack_check import fails_then_heals, lose_a_pack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("server", "how", "listed"),
    [
        ("s3_server", "truncated", True),  # the size a LIST gives
        ("moto_server", "missing", False),  # a HEAD's 404
    ],
)
def test_a_backup_over_a_lost_pack_on_s3_fails_and_the_next_one_heals(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    server: str,
    how: str,
    listed: bool,
) -> None:
    endpoint: S3Endpoint = request.getfixturevalue(server)
    if listed:
        monkeypatch.setattr(pack_check, "STAT_AT_MOST", 0)
    repo = init_repo(endpoint.storage())
    data = random_bytes(150_000, seed=7)
    write_backup(repo, "b1", {"dump": data})
    victim = lose_a_pack(repo.storage, how)
    fails_then_heals(repo, data, victim, how)
