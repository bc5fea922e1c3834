"""The configured server is a standby: after a failover the database's name (DNS, the
config's ``dsn``) still leads to the old primary, made again as a standby of the new one,
or the config named a standby from the start. A standby with ``archive_mode = on``
archives nothing, so its statistics stay at "nothing archived, nothing waiting": the
status's WAL item was green, whatever its primary did (here ``archive_command = true``:
nothing stored). ``respaldo check`` warned; the status now says it too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.physical.conftest import Archiving, archiving_cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def archiving_alone(
    pg_major: int | None, capsys: pytest.CaptureFixture[str]
) -> Iterator[Archiving]:
    """An archiving cluster of this test alone: its config is pointed at its standby."""
    with archiving_cluster(pg_major) as archiving:
        archiving.capsys = capsys
        yield archiving


def test_a_standby_configured_as_the_server_is_not_green(archiving_alone: Archiving) -> None:
    archiving = archiving_alone
    primary = archiving.pg
    archiving.backup()
    standby = primary.standby()
    try:
        config = archiving.config.read_text()
        archiving.config.write_text(config.replace(f":{primary.port}/", f":{standby.port}/"))
        primary.execute("ALTER SYSTEM SET archive_command = '/bin/true'")
        primary.scalar("SELECT pg_reload_conf()")
        primary.scalar("SELECT pg_switch_wal()")
        run = archiving.run("status", "--json")
        (erp,) = run.json()["databases"]
        (item,) = [i for i in erp["items"] if i["check"] == "archive"]
        assert item["level"] == "amber", item
        assert item["reason"].startswith("the server is a standby: it archives no WAL"), item
        assert "set the database's dsn to the primary" in item["reason"]
        check = archiving.run("check", "erp")
        assert "the server is a standby" in check.err
    finally:
        standby.destroy()
