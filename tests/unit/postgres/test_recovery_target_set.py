"""Whether a data directory recovers to a target, read as PostgreSQL reads its files:
postgresql.conf, then postgresql.auto.conf, the last occurrence of a setting winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.postgres.wal import recovery_target_set


@pytest.mark.parametrize(
    ("conf", "auto", "expected"),
    [
        ("", "", False),
        ("", "recovery_target = 'immediate'\n", True),
        ("", "recovery_target_time = '2026-12-06 10:00:00+00'\n", True),
        ("", "recovery_target_lsn='0/3000000'  # a comment\n", True),
        ("", "recovery_target_name 'before-upgrade'\n", True),
        ("", "recovery_target_xid = 1234\n", True),
        ("", "recovery_target_time = ''\nrecovery_target_timeline = 'latest'\n", False),
        ("recovery_target = 'immediate'\n", "", True),
        ("recovery_target = 'immediate'\n", "recovery_target = ''\n", False),
        ("", "recovery_target_lsn = '0/3000000'\nrecovery_target_lsn = ''\n", False),
        ("#recovery_target = 'immediate'\n", "", False),
        ("", "RECOVERY_TARGET = 'immediate'\n", True),
        ("", "restore_command = 'respaldo wal-fetch %f %p'\nport = 5433\n", False),
    ],
)
def test_the_last_setting_of_either_file_decides(
    tmp_path: Path, conf: str, auto: str, expected: bool
) -> None:
    (tmp_path / "postgresql.conf").write_text(conf)
    (tmp_path / "postgresql.auto.conf").write_text(auto)
    assert recovery_target_set(tmp_path) is expected


def test_a_directory_without_configuration_has_no_target(tmp_path: Path) -> None:
    assert recovery_target_set(tmp_path) is False


def test_an_unreadable_configuration_is_not_known(tmp_path: Path) -> None:
    (tmp_path / "postgresql.auto.conf").mkdir()  # reading it fails
    assert recovery_target_set(tmp_path) is None
