"""A ``--target-time`` refused before anything is written (in the future; at or after the
newest archived commit) and the warning of an offset that is not the installation's zone's
were English only: a Spanish installation's alert of the failed restore job, and the page,
showed them in English among Spanish words. Real cluster, repository and restore; the
alert goes to a real aiosmtpd on loopback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from psycopg import sql

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.i18n import translations
from respaldo.operations.context import Context
from respaldo.operations.restore_request import RestoreRequest, restore
from respaldo.reasons import reason
from tests.integration.physical.conftest import SHOP, Archiving, madrid_summer_target
from tests.servers.notify import Smtp, smtp  # noqa: F401

pytestmark = pytest.mark.integration


def _spanish(archiving: Archiving, smtp: Smtp) -> Path:  # noqa: F811
    """The archiving cluster's configuration, for a Madrid installation that alerts in
    Spanish."""
    config = archiving.base / f"es-{uuid.uuid4().hex[:8]}.toml"
    config.write_text(
        archiving.config.read_text()
        + f"""
[schedules]
time_zone = "Europe/Madrid"

[notifications]
language = "es"

[[notifications.targets]]
name = "ops-mail"
url = "{smtp.url()}"
levels = ["critical"]
"""
    )
    return config


def _refused_alert(config: Path, archiving: Archiving, smtp: Smtp, *args: str) -> str:  # noqa: F811
    """Restore with ``args``: refused, nothing written; the alert's body."""
    datadir = archiving.new_datadir()
    code = invoke(["--config", str(config), "restore", *args, "--target-datadir", str(datadir)])
    assert code == 1
    assert not datadir.exists()
    (mail,) = smtp.inbox.wait(1)
    body: str = mail.get_body(preferencelist=("plain",)).get_content()
    return " ".join(body.split())


def test_a_target_time_in_the_future_is_refused_in_spanish(
    archiving: Archiving,
    smtp: Smtp,  # noqa: F811
) -> None:
    config = _spanish(archiving, smtp)
    record = archiving.backup()
    tomorrow = datetime.now(timezone(timedelta(hours=-6))) + timedelta(days=1)
    said = _refused_alert(
        config, archiving, smtp, record["id"], "--target-time", tomorrow.isoformat()
    )
    assert (
        f"el objetivo de recuperación {tomorrow.isoformat()} está en el futuro: el reloj de "
        "esta máquina marca "
    ) in said, said
    assert "la recuperación reproduciría todo el WAL archivado" in said, said
    assert "compruebe la fecha y el desfase UTC del objetivo" in said, said
    assert "in the future" not in said and "give no target" not in said, said


def test_a_target_time_after_the_newest_archived_commit_is_refused_in_spanish(
    archiving: Archiving,
    smtp: Smtp,  # noqa: F811
) -> None:
    config = _spanish(archiving, smtp)
    pg = archiving.pg
    table = sql.Identifier(f"t_{uuid.uuid4().hex[:10]}")
    pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(table), dbname=SHOP)
    record = archiving.backup()
    pg.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table), dbname=SHOP)
    archiving.switch_and_archive()
    after = pg.scalar("SELECT clock_timestamp()").astimezone(timezone(timedelta(hours=-3)))
    said = _refused_alert(config, archiving, smtp, record["id"], "--target-time", after.isoformat())
    assert (
        f"el objetivo de recuperación {after.isoformat()} es posterior a la última "
        f"transacción que guarda el WAL archivado: su confirmación más reciente tras el "
        f"backup {record['id']} es de "
    ) in said, said
    assert "indique un objetivo anterior a " in said, said
    assert "is after the last transaction" not in said, said


def test_a_target_time_with_no_commit_archived_after_the_backup_is_refused_in_spanish(
    archiving: Archiving,
    smtp: Smtp,  # noqa: F811
) -> None:
    """A target of now right after a backup: no commit after its end is archived."""
    config = _spanish(archiving, smtp)
    record = archiving.backup()
    now = datetime.now(UTC)
    said = _refused_alert(config, archiving, smtp, record["id"], "--target-time", now.isoformat())
    assert (
        f"el objetivo de recuperación {now.isoformat()} no se puede alcanzar: el WAL "
        f"archivado tras el backup {record['id']} (hasta "
    ) in said, said
    # The argument the hint names, as the error's text names it (not "<<immediate>>").
    assert "recupere hasta el final del backup (immediate) o no indique ningún objetivo" in said
    assert "cannot be reached" not in said, said


def test_the_wrong_season_offset_warning_is_said_in_spanish(archiving: Archiving) -> None:
    """A Madrid installation, a target with the summer offset in December: the restore's
    warning, as the page and the alerts say it."""
    target = madrid_summer_target(archiving)
    record, summer = target.record, target.summer
    with Context.open(load_settings(target.config)) as ctx:
        outcome = restore(
            ctx,
            RestoreRequest(
                record["id"],
                target_datadir=archiving.new_datadir(),
                target_time=summer.isoformat(),
            ),
        )
    (warning,) = [w for w in outcome.warnings if "[schedules] time_zone" in w]
    spanish = reason(warning, translations("es").gettext)
    wall = summer.replace(tzinfo=None)
    assert spanish.startswith(f"el objetivo de recuperación {summer.isoformat(sep=' ')} es "), (
        spanish
    )
    assert (
        "en Europe/Madrid ([schedules] time_zone), cuyo desfase UTC entonces es +01:00, no "
        in spanish
    )
    assert "+02:00: la recuperación se detiene ahí; " in spanish, spanish
    assert f"las {wall:%H:%M:%S} de allí son {wall.isoformat(sep=' ')}+01:00 (CET)" in spanish
