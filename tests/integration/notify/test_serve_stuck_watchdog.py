"""A real ``respaldo serve`` whose watchdog check hangs on a lock held in its real
PostgreSQL catalog (taken once serve listens): the stall monitor alerts through a real
webhook ("watchdog check stuck ... in reading the catalog"), ``/health`` answers 503
meanwhile, and once the lock is released the check ends, the alert is resolved and
``/health`` is 200 again.

Before, every later check was skipped with only APScheduler's "maximum number of running
instances reached" in the log, no alert went out again and ``/health`` said 200.
Synchronisation is on the webhook's messages, never on sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from respaldo.config import CatalogSettings, load_settings
from respaldo.operations.initialize import initialize
from tests.integration.api.conftest import CatalogRole, catalog_role  # noqa: F401
from tests.integration.logical.conftest import FAST_KDF
from tests.integration.logical.test_serve import health, listening_port
from tests.ports import closed_port
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, hook: str | None, stuck_minutes: float = 0.05) -> Path:
    """serve's config on a local repository, with no schedule: a watchdog check every
    0.6 s, told stuck after ``stuck_minutes``, its alerts to the webhook ``hook`` (none:
    no target). The default of 3 s: a check that waits on the lock is stuck soon (the
    test waits on the alert itself, not on this time), and a check that does not is never
    taken for stuck. At 0.3 s, a plain serve of this config under load (2 cores, load 8)
    told 29 ordinary checks stuck in 40 s ('stuck for 0 min in reading the catalog', 'in
    sending alert ...'), each raised and resolved: an alert or /health read at the wrong
    moment was another run's. At 1.2 s it told none."""
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("stuck watchdog passphrase\n")
    passphrase.chmod(0o600)
    target = "" if hook is None else f'[[notifications.targets]]\nname = "hook"\nurl = "{hook}"\n'
    config = tmp_path / "respaldo.toml"
    config.write_text(
        f"""
passphrase_file = "{passphrase}"
cache_dir = "{tmp_path / "cache"}"

[[repositories]]
name = "local"
url = "file://{tmp_path / "repo"}"

[[databases]]
name = "erp"
dsn = "postgresql://nobody@127.0.0.1:{closed_port()}/erp"

[schedules]
time_zone = "UTC"
full = "off"
incremental = "off"
restore_test = "off"
cleanup = "off"
verify = "off"

[rpo]
watchdog_minutes = 0.01
watchdog_stuck_minutes = {stuck_minutes}

[server]
listen = "127.0.0.1:0"
run_jobs = false

[notifications]
{target}"""
    )
    return config


@pytest.fixture
def catalog(catalog_role: CatalogRole, tmp_path: Path) -> Iterator[psycopg.Connection[Any]]:  # noqa: F811
    """The catalog created, and a session of the catalog's server on it, as its superuser
    (for the lock); rolled back and closed after the test."""
    with catalog_role.context(tmp_path / "create"):
        pass
    conn = psycopg.connect(**catalog_role.pg.conninfo_kwargs(catalog_role.name))
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@contextmanager
def _serving(config: Path, catalog: str) -> Iterator[subprocess.Popen[str]]:
    """``respaldo serve`` with its catalog's URL (a password in it) in the environment."""
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), "serve"]
    env = {**os.environ, "RESPALDO_CATALOG__URL": catalog}
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _titled(hook: Webhook, words: str) -> list[dict[str, Any]]:
    return [m["json"] for m in hook.inbox.items if words in m["json"]["message"]]


@contextmanager
def _stuck(
    catalog_role: CatalogRole,  # noqa: F811
    catalog: psycopg.Connection[Any],
    webhook: Webhook,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``respaldo serve`` on the catalog, once its watchdog check was told stuck on a
    lock of ``catalog`` (taken once serve listens): the process and its port."""
    config = _config(tmp_path, webhook.url)
    settings = load_settings(config).model_copy(
        update={"catalog": CatalogSettings(url=catalog_role.url)}
    )
    initialize(settings, kdf=FAST_KDF)
    with _serving(config, catalog_role.url) as process:
        port = listening_port(process)
        # The next watchdog check waits on this lock, held until the test rolls back: a
        # real block (drill_runs: the status reads it, /health does not).
        catalog.execute("LOCK TABLE drill_runs IN ACCESS EXCLUSIVE MODE")
        wait_for("the stuck alert", lambda: bool(_titled(webhook, "watchdog check stuck")))
        yield process, port


def _stuck_alerts(hook: Webhook) -> list[dict[str, Any]]:
    return [m for m in _titled(hook, "watchdog check stuck") if "CRITICAL" in m["title"]]


def _waits_on_a_lock(catalog: psycopg.Connection[Any]) -> bool:
    """Whether another session of the catalog's database waits on a lock (the snapshot
    of pg_stat_activity, kept for the transaction, cleared first: it holds the lock)."""
    catalog.execute("SELECT pg_stat_clear_snapshot()")
    row = catalog.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
        "pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row is not None and row[0] > 0


def test_a_watchdog_check_stuck_on_a_catalog_lock_is_alerted_resolved_and_ends_on_sigterm(
    catalog_role: CatalogRole,  # noqa: F811
    catalog: psycopg.Connection[Any],
    webhook: Webhook,  # noqa: F811
    tmp_path: Path,
) -> None:
    """One serve for two stuck checks (starting it is most of the test's time): the first
    alerted and resolved once the lock is released, the second still stuck at SIGTERM."""
    with _stuck(catalog_role, catalog, webhook, tmp_path) as (process, port):
        (alert,) = _titled(webhook, "watchdog check stuck")
        assert "in reading the catalog" in alert["message"], alert
        assert "CRITICAL" in alert["title"], alert
        status, body = health(port)
        assert status == 503, body
        assert body["checks"]["ok"] is False, body
        assert "stuck" in body["checks"]["error"], body
        assert body["catalog"]["ok"] is True, body  # the catalog answers: only the check hangs

        catalog.rollback()  # the lock is released: the check ends
        wait_for(
            "the resolved message",
            lambda: any("RESOLVED" in m["title"] for m in _titled(webhook, "watchdog check")),
        )
        status, body = health(port)
        assert body["checks"] == {"name": "checks", "ok": True, "error": None}, body
        assert status == 200, body
        # Not asserted: that no other check was told stuck meanwhile. A check of this
        # config that outlasts 3 s on a loaded machine is stuck by its own setting, which
        # says nothing of the product.

        # Stuck again, then SIGTERM. Before, the stop waited for the stuck check's thread
        # (and the interpreter joined it at exit): serve never ended on SIGTERM until its
        # service manager killed it.
        told = len(_stuck_alerts(webhook))
        catalog.execute("LOCK TABLE drill_runs IN ACCESS EXCLUSIVE MODE")
        # Told stuck again, and waiting on the lock: a check told stuck by a loaded
        # machine's slowness alone would not be the one that waits.
        wait_for("the second stuck alert", lambda: len(_stuck_alerts(webhook)) > told)
        wait_for("a watchdog check to wait on the lock again", lambda: _waits_on_a_lock(catalog))
        process.terminate()
        _, err = process.communicate()  # the test's own timeout bounds a hang
    assert process.returncode == 0, err
    assert "SIGTERM: stopping" in err, err
    assert "watchdog check has run for" in err and "reading the catalog" in err, err
    # Still locked: the check was left, not ended.
    assert catalog.info.transaction_status is psycopg.pq.TransactionStatus.INTRANS
