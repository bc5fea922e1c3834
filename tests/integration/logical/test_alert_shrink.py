"""A backup that "succeeds" but holds next to nothing is told: the sample ERP database is
backed up, then emptied (a bad migration, the wrong database restored over it), and the
next backup, which completes, is much smaller than the one before: the watchdog mails a
critical alert through a real SMTP server (aiosmtpd). The next backup, as small, settles
it with one "resolved". In Spanish (``[notifications] language = "es"``) the alert writes
the sizes and the share as Spanish does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from respaldo.config import load_settings
from respaldo.operations import watchdog
from respaldo.operations.context import Context
from tests.integration.logical.conftest import Respaldo
from tests.servers.notify import Smtp

pytestmark = pytest.mark.integration


@pytest.fixture(params=["en"])
def mailed(respaldo: Respaldo, request: pytest.FixtureRequest) -> Iterator[tuple[Respaldo, Smtp]]:
    server = Smtp()
    try:
        language = f'language = "{request.param}"\n'
        target = f'[[notifications.targets]]\nname = "ops"\nurl = "{server.url()}"\n'
        respaldo.config.write_text(
            respaldo.config.read_text() + "\n[notifications]\n" + language + target
        )
        yield respaldo, server
    finally:
        server.close()


def _empty(respaldo: Respaldo) -> None:
    tables = respaldo.pg.scalar(
        "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
        "AND tablename <> 'schema_migrations'",
        dbname=respaldo.dbname,
    )
    respaldo.pg.execute(f"TRUNCATE {tables} CASCADE", dbname=respaldo.dbname)


def _size_condition(respaldo: Respaldo) -> tuple[str, str]:
    with Context.open(load_settings(respaldo.config)) as ctx:
        result = watchdog.check(ctx, datetime.now(UTC), wal_archived=(), servers=False)
    (item,) = [i for i in result.report.items if i.key == "size:erp:full"]
    actions = {c.key: c.action for c in result.conditions}
    return item.level, actions["size:erp:full"]


def test_a_backup_much_smaller_than_the_one_before_is_alerted_once(
    mailed: tuple[Respaldo, Smtp],
) -> None:
    respaldo, smtp = mailed
    respaldo.backup("erp")
    respaldo.backup("erp")
    assert _size_condition(respaldo) == ("green", "quiet")

    _empty(respaldo)
    respaldo.backup("erp")  # completes: nothing failed
    assert _size_condition(respaldo) == ("red", "raised")
    told = [str(m["Subject"]) for m in smtp.inbox.items]
    (subject,) = [s for s in told if "smaller" in s]
    assert subject.startswith(
        "[respaldo] CRITICAL: the newest logical backup of erp is much smaller than the one "
        "before: "
    ), subject
    assert subject.endswith("(limit 50%)"), subject

    # The database really is this small now: the next backup settles it.
    respaldo.backup("erp")
    assert _size_condition(respaldo) == ("green", "resolved")


@pytest.mark.parametrize("mailed", ["es"], indirect=True)
def test_the_spanish_alert_writes_the_sizes_as_spanish_does(
    mailed: tuple[Respaldo, Smtp],
) -> None:
    respaldo, smtp = mailed
    respaldo.backup("erp")
    _empty(respaldo)
    respaldo.backup("erp")
    assert _size_condition(respaldo) == ("red", "raised")
    told = [str(m["Subject"]) for m in smtp.inbox.items]
    (subject,) = [s for s in told if "mucho menor" in s]
    # "418 KB, el 39 % de 1,1 MB (límite 50 %)": a decimal comma, a space before "%"
    # (a no-break space, which the mail's subject may carry as a plain one).
    assert re.fullmatch(
        r"\[respaldo\] CRÍTICO: el backup lógico más reciente de erp es mucho menor que el "
        r"anterior: \d+(,\d)? [kKMG]?B, el \d+\s% de \d+(,\d)? [KMG]?B "
        r"\(límite 50\s%\)",
        subject,
    ), subject
