"""The CLI's start-up cost: commands that do not serve do not import the server.

Every backup from cron and every ``wal-fetch`` of a recovery starts a new process; the
HTTP server (uvicorn, FastAPI) and the scheduler (APScheduler) would add about 0.2 s and
13 MB to each.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# prometheus_client: only `respaldo metrics` and the service need it; procrastinate:
# only workers and a PostgreSQL catalog's queue; apprise: only sending a notification.
HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "apscheduler",
    "prometheus_client",
    "procrastinate",
    "apprise",
)


def test_the_cli_imports_no_server_until_serve_runs() -> None:
    code = (
        f"import sys, respaldo.cli.main; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_wal_commands_load_notification_settings_without_apprise(tmp_path: object) -> None:
    # wal-push runs once per WAL file: a configured notification target must not cost it
    # apprise (about half a second) unless a push fails and there is something to send.
    from pathlib import Path

    config = Path(str(tmp_path)) / "respaldo.toml"
    config.write_text(
        '[catalog]\nurl = "sqlite:////nonexistent/catalog.db"\n'
        '[[notifications.targets]]\nname = "hook"\nurl = "json://127.0.0.1/x"\n'
    )
    code = (
        "import sys; from respaldo.config import load_settings; "
        f"load_settings({str(config)!r}, check_urls=False); print('apprise' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
