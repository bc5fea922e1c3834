"""The CLI's start-up cost: commands that do not serve do not import the server, and
``respaldo --help`` and ``wal-push`` import only what they use.

Every backup from cron and every ``wal-fetch`` of a recovery starts a new process; the
HTTP server (uvicorn, FastAPI) and the scheduler (APScheduler) would add about 0.2 s and
13 MB to each.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from respaldo.cli.commands import COMMANDS

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


# What `respaldo --help` (and every command's start) must not import: each costs tens to
# hundreds of milliseconds a process (measured with python -X importtime). A command
# imports what it needs when it runs.
START_UP_HEAVY = (
    *HEAVY,
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_settings",
    "psycopg",
    "apprise",
    "argon2",
    "cryptography",
    "zstandard",
    "numpy",
)


def _imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_command_modules_import_no_server_nor_alembic_nor_apprise() -> None:
    """No server until serve runs; Alembic only when the catalog needs migrating, apprise
    only when sending. (One process for both checks: each start costs seconds.)"""
    loaded = "from respaldo.cli.lazy import load_all; load_all()"
    imported = _imported_after(loaded, (*HEAVY, "alembic", "apprise"))
    assert [m for m in imported if m in HEAVY] == []
    assert [m for m in imported if m in ("alembic", "apprise")] == []


def test_help_imports_no_command_module_and_nothing_heavy() -> None:
    code = (
        "import io, contextlib\n"
        "from respaldo.cli.main import invoke\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert invoke(['--help']) == 0\n"
    )
    commands = tuple(f"respaldo.cli.{entry.module}" for entry in COMMANDS)
    imported = _imported_after(code, (*START_UP_HEAVY, *commands))  # one start for both
    assert [m for m in imported if m in START_UP_HEAVY] == []
    assert [m for m in imported if m in commands] == []


def test_the_command_table_is_every_command_with_its_own_help_line() -> None:
    """respaldo.cli.commands copies each command's name, module and help line: a command
    added, renamed or with a new first paragraph must be copied there too."""
    code = (
        "import typer\n"
        "from respaldo.cli.lazy import load_all\n"
        "load_all()\n"
        # every module of the package, in the table or not
        "import pkgutil, importlib, respaldo.cli as cli\n"
        "for m in pkgutil.iter_modules(cli.__path__):\n"
        "    importlib.import_module(f'respaldo.cli.{m.name}')\n"
        "from respaldo.cli.app import app\n"
        "from respaldo.cli.lazy import short_helps\n"
        "short_helps(app)\n"
        "group = typer.main.get_command(app)\n"
        "modules = {i.name: i.callback.__module__ for i in app.registered_commands}\n"
        "for g in app.registered_groups:\n"
        "    modules[g.name] = g.typer_instance.registered_commands[0].callback.__module__\n"
        "for name, command in group.commands.items():\n"
        "    module = modules[name].rsplit('.', 1)[1]\n"
        "    print(repr((name, module, command.short_help or command.help or '')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    real = [ast.literal_eval(line) for line in done.stdout.splitlines()]
    listed = [tuple(entry) for entry in COMMANDS]
    missing = [f"Entry{entry!r}" for entry in real if entry not in listed]
    stale = [f"Entry{entry!r}" for entry in listed if entry not in real]
    assert not missing and not stale, (
        "respaldo/cli/commands.py is out of date: add\n  "
        + "\n  ".join(missing)
        + "\nremove\n  "
        + "\n  ".join(stale)
    )


def test_wal_push_imports_neither_the_cli_nor_the_catalog_nor_postgres_drivers() -> None:
    code = (
        "import respaldo.cli.wal_fast, respaldo.config, respaldo.operations.wal\n"
        "import respaldo.repository.repo\n"
    )
    # crc32c: only the wal_level = minimal scan's rare candidate checks it.
    heavy = ("typer", "rich", "sqlalchemy", "alembic", "psycopg", "apprise", "numpy", "crc32c")
    assert _imported_after(code, heavy) == []


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


def test_commands_that_run_jobs_import_the_alerts_only_to_send_one() -> None:
    """A job imports respaldo.operations.alerts (its result models, the i18n catalogs, the
    notification layer: about 0.05 CPU-s) only when it fails or a target takes success
    notices; a physical backup of a small cluster is about a second of CPU in all."""
    code = "import respaldo.cli.backup_cmd, respaldo.operations.physical, respaldo.operations.copy"
    modules = ("respaldo.operations.alerts", "respaldo.i18n", "respaldo.notify", "babel")
    assert _imported_after(code, modules) == []


def test_a_backup_without_a_terminal_imports_no_progress_bars() -> None:
    """Rich's progress bars (17 modules with the live display, tables and spinners) only
    where they are drawn: the objects of every module imported stay for the whole run."""
    code = (
        "import respaldo.cli.backup_cmd\n"
        "from respaldo.cli.progress import progress_bars\n"
        "with progress_bars() as report:\n"
        "    report('backup', 1, 2)\n"
    )
    assert _imported_after(code, ("rich.progress", "rich.live", "rich.table")) == []
