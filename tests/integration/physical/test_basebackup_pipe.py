"""pg_basebackup's stdout pipe is widened, so that the server, pg_basebackup and the
reader work at the same time (see respaldo.postgres.basebackup.PIPE_SIZE); the stream
that arrives through it is the same, checked against the server's manifest."""

from __future__ import annotations

import fcntl

import pytest

from respaldo.postgres import ConnInfo
from respaldo.postgres.basebackup import PIPE_SIZE, BaseBackupReader, pg_basebackup
from tests.integration.physical.conftest import Archiving

pytestmark = pytest.mark.integration


def test_pg_basebackup_writes_into_a_wide_pipe_and_the_backup_checks(
    archiving: Archiving,
) -> None:
    conninfo = ConnInfo.from_settings(archiving.settings().database("erp"))
    with pg_basebackup(conninfo, label="respaldo pipe test") as command:
        size = fcntl.fcntl(command.stdout.fileno(), fcntl.F_GETPIPE_SZ)
        reader = BaseBackupReader(command.stdout)
        while reader.read(1 << 20):
            pass
    info = reader.finish()  # raises BaseBackupInvalid unless every file matched
    assert size == PIPE_SIZE
    assert info.checksum_algorithm == "CRC32C"  # PostgreSQL's default, checked at C speed
    assert info.system_identifier == int(
        archiving.pg.scalar("SELECT system_identifier FROM pg_control_system()")
    )
