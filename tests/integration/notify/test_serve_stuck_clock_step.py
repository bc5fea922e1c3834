"""A real ``respaldo serve`` whose machine clock is stepped an hour ahead while its
watchdog check runs does not call that check stuck for 60 minutes.

The stall monitor and ``/health`` judged a check's age on the wall clock: stepped ahead
an hour (an NTP correction, a VM resumed), a check that had run a second was "stuck for
60 min": a critical alert, ``/health`` 503 and a red status item until it ended. Seen
with the first check of a serve started just before the step.

Here the check is held on a lock of its real PostgreSQL catalog (as in
test_serve_stuck_watchdog), known to wait on it from ``pg_stat_activity``; serve's wall
clock comes from libfaketime reading a file the test rewrites (monotonic clock left
alone, as a step leaves it); ``/health`` judges the checks at each request. A clock
stepped back an hour changes nothing a stuck check is told by: the monitor still tells
one that really hangs (test_serve_stuck_watchdog).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from respaldo.config import CatalogSettings, load_settings
from respaldo.operations.initialize import initialize
from tests.faketime import stepped_clock
from tests.integration.api.conftest import CatalogRole, catalog_role  # noqa: F401
from tests.integration.logical.conftest import FAST_KDF
from tests.integration.logical.test_serve import health, listening_port
from tests.integration.notify.test_serve_stuck_watchdog import _config, _waits_on_a_lock
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_clock_stepped_ahead_while_a_check_runs_does_not_make_it_stuck(
    catalog_role: CatalogRole,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, None, stuck_minutes=30)
    settings = load_settings(config).model_copy(
        update={"catalog": CatalogSettings(url=catalog_role.url)}
    )
    initialize(settings, kdf=FAST_KDF)
    clock, env = stepped_clock(tmp_path)
    env["RESPALDO_CATALOG__URL"] = catalog_role.url
    argv = [sys.executable, "-m", "respaldo.cli.main", "--config", str(config), "serve"]
    serve = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    lock: psycopg.Connection[Any] = psycopg.connect(
        **catalog_role.pg.conninfo_kwargs(catalog_role.name)
    )
    try:
        port = listening_port(serve)
        # The next watchdog check waits on this lock (the status reads drill_runs).
        lock.execute("LOCK TABLE drill_runs IN ACCESS EXCLUSIVE MODE")

        def waiting() -> bool:
            assert serve.poll() is None
            # The snapshot of pg_stat_activity is kept for the lock's transaction and
            # cleared at each look: read once before the check waited (a loaded
            # machine), it never showed the wait (timed out 3 runs in 3 at load 8).
            return _waits_on_a_lock(lock)

        wait_for("serve's watchdog check to wait on the lock", waiting)
        status, body = health(port)
        assert (status, body["checks"]["ok"]) == (200, True), body  # the premise
        clock.write_text("+3600\n")  # the step: an hour ahead
        # /health judges the checks as it answers: before, "stuck" at once (60 min).
        status, body = health(port)
        assert body["checks"] == {"name": "checks", "ok": True, "error": None}, body
        assert status == 200, body
    finally:
        lock.rollback()
        lock.close()
        serve.terminate()
        _, err = serve.communicate()
    assert "stuck" not in err, err
