"""PostgreSQL 18, and WAL segments of another size than 16 MiB (``initdb --wal-segsize``):
archived, checked and replayed as they are. The segment size is read from each segment's
own header, never assumed. The PostgreSQL 18 archiving cluster of this suite has 64 MiB
segments (tests/integration/majors.py), so this is also the suite's point-in-time
recovery on 18.
"""

from __future__ import annotations

import pytest
from sample.cluster import TempCluster

from respaldo.operations.repositories import open_repository
from respaldo.postgres.wal import parse_lsn, segment_name
from tests.integration.majors import ON_PG18
from tests.integration.physical.conftest import Archiving
from tests.integration.physical.test_physical_roundtrip import check_point_in_time_recovery

pytestmark = pytest.mark.integration

SEGMENT = 64 * 1024 * 1024


@ON_PG18
def test_64_mib_segments_archive_and_recover_to_a_point_in_time(
    archiving: Archiving, restored_servers: list[TempCluster]
) -> None:
    pg = archiving.pg
    assert pg.scalar("SHOW server_version_num").startswith("18")
    assert pg.scalar("SHOW wal_segment_size") == "64MB"
    backup_id = check_point_in_time_recovery(archiving, restored_servers)
    manifest = open_repository(archiving.settings()).load_manifest(backup_id)
    assert manifest.meta["wal_segment_size"] == SEGMENT
    # respaldo names segments as the server does for that size.
    start = str(manifest.meta["start_lsn"])
    own = segment_name(int(manifest.meta["timeline"]), parse_lsn(start), SEGMENT)
    assert own == pg.scalar("SELECT pg_walfile_name(%s::pg_lsn)", [start])
    assert manifest.meta["wal_segments"][0] == own
