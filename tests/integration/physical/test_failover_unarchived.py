"""A failover respaldo did not do: a streaming standby (``pg_basebackup -R``) promoted to
timeline 2 while its primary is gone, archiving into the same repository under the same
configuration. The primary's last finished segments were never archived (its archiving
failed, or lagged, when it died): the standby had them by streaming, but a standby with
``archive_mode = on`` archives only its own timeline's WAL after the promotion. Recovery
of every backup taken before the promotion stops at that hole; the status's WAL item
looked at timeline 2 alone and was green.
"""

from __future__ import annotations

import pytest

from tests.integration.physical.conftest import Archiving, archive_verdict
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_hole_the_dead_primary_left_before_a_promotion_is_red(
    archiving_alone: Archiving,
) -> None:
    archiving = archiving_alone
    primary = archiving.pg
    before = archiving.backup()["id"]
    standby = primary.standby()
    try:
        # The primary's archiving fails for its last segments; the standby streams them.
        primary.execute("ALTER SYSTEM SET archive_command = 'false'")
        primary.scalar("SELECT pg_reload_conf()")
        for _ in range(2):
            primary.execute("CREATE TABLE IF NOT EXISTS t (v int); INSERT INTO t VALUES (1)")
            unarchived = str(primary.scalar("SELECT pg_walfile_name(pg_switch_wal())"))
        end = str(primary.scalar("SELECT pg_current_wal_insert_lsn()"))
        wait_for(
            "the standby to replay the primary's last WAL",
            lambda: bool(standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (end,))),
        )
        primary.stop("immediate")
        standby.promote()
        # The same configuration, pointed at the new primary.
        config = archiving.config.read_text()
        archiving.config.write_text(config.replace(f":{primary.port}/", f":{standby.port}/"))
        archiving.pg = standby
        standby.execute("INSERT INTO t VALUES (2)")
        archiving.switch_and_archive()
        system_id = str(standby.scalar("SELECT system_identifier FROM pg_control_system()"))
        wal = archiving.repo_dir / "wal" / system_id
        assert (wal / "00000002" / "00000002.history").exists()
        assert not (wal / "00000001" / unarchived).exists()

        level, reason = archive_verdict(archiving.run("status", "--json"))
        assert level == "red", reason
        assert reason.startswith("WAL segment 0000000100000000000000"), reason
        assert "is not in the repository (archived again from 00000002" in reason
        assert "take a physical backup now" in reason
        # What the status says: the restore test of the backup before the promotion fails.
        drill = archiving.run("drill", before)
        assert drill.code == 3, str(drill)
        assert "is missing from the archive" in drill.err

        # A physical backup of the new primary: recovery from it reaches the present.
        archiving.backup()
        level, reason = archive_verdict(archiving.run("status", "--json"))
        assert level == "green", reason
    finally:
        archiving.pg = primary
        standby.destroy()


def test_a_promoted_standby_whose_last_archived_file_is_its_partial_is_not_another_server(
    archiving_alone: Archiving,
) -> None:
    # A clean failover: every segment of the primary archived, its standby promoted and the
    # configuration pointed at it. The new primary archives timeline 2's history file, then
    # timeline 1's last segment as .partial, which stays its last archived file until its
    # first segment of timeline 2 is (no archive_timeout here: hours on a quiet database).
    # The status took that for a server on timeline 1 with another server's timeline 2
    # archived beside it: red, saying to remove timeline 2's files from the archive, the
    # new primary's own.
    archiving = archiving_alone
    primary = archiving.pg
    archiving.backup()
    standby = primary.standby()
    try:
        primary.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        archiving.switch_and_archive()
        end = str(primary.scalar("SELECT pg_current_wal_insert_lsn()"))
        wait_for(
            "the standby to replay the primary's last WAL",
            lambda: bool(standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (end,))),
        )
        primary.stop("fast")
        standby.promote()
        config = archiving.config.read_text()
        archiving.config.write_text(config.replace(f":{primary.port}/", f":{standby.port}/"))
        archiving.pg = standby
        wait_for(
            "the new primary to archive its old timeline's .partial segment",
            lambda: str(
                standby.scalar("SELECT last_archived_wal FROM pg_stat_archiver") or ""
            ).endswith(".partial"),
            timeout=240,
        )
        system_id = str(standby.scalar("SELECT system_identifier FROM pg_control_system()"))
        assert (archiving.repo_dir / "wal" / system_id / "00000002" / "00000002.history").exists()

        level, reason = archive_verdict(archiving.run("status", "--json"))
        assert "of this cluster is archived too" not in reason, reason
        assert level == "green", reason
    finally:
        archiving.pg = primary
        standby.destroy()
