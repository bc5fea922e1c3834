"""What a one-shot command (``respaldo restore``, ``respaldo backup``) pays before it works.

Every backup from cron and every restore starts a new process, and on a small database
the start-up was most of respaldo's CPU: the imports alone were twice ``pg_restore``'s
whole CPU time at 0.1 GB (docs/benchmarks.md). These tests pin what the start-up must
not bring back (measured with ``python -X importtime`` and bench/startup_bench.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize
from tests.configs import local_config
from tests.unit.operations.support import FAST_KDF

pytestmark = pytest.mark.unit

PASSPHRASE = "one-shot start-up test passphrase"

# What no one-shot backup or restore imports: the service (HTTP server, scheduler, metrics,
# queue), Alembic (only to migrate a catalog behind the newest schema), argon2 (the key
# comes from the key cache), the alerts and their translations (only to send one),
# pydantic-settings (only to parse RESPALDO_* variables other than the passphrase).
NEVER = (
    "pydantic_settings",
    "fastapi",
    "uvicorn",
    "starlette",
    "apscheduler",
    "prometheus_client",
    "procrastinate",
    "apprise",
    "alembic",
    "argon2",
    "babel",
    "respaldo.operations.alerts",
    "respaldo.i18n",
    "respaldo.notify",
)
# The other kinds of backup and restore (a command runs one; each is imported when it runs).
NOT_FOR_FILES_BACKUP = (
    "respaldo.operations.backup",
    "respaldo.operations.pardump",
    "respaldo.operations.physical",
    "respaldo.postgres.basebackup",
)
# (The restore of a files backup reads its stream with the logical restore's reader.)
NOT_FOR_FILES_RESTORE = (
    "respaldo.operations.physical_restore",
    "respaldo.operations.physical_chain",
    "respaldo.postgres.basebackup",
)


def _run(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_command_runs_with_the_collector_on_and_the_start_up_heap_frozen(
    tmp_path: object,
) -> None:
    """The imports run with the cyclic collector off (walking their objects again and again
    cost about 0.3 CPU-s of a small restore); the command itself runs with it on, as
    always (memory stays flat), and what the imports built is frozen.

    And numpy's OpenBLAS starts one thread (it started a thread per core, half of numpy's
    import; the chunk index never multiplies matrices): checked in the same process, as
    each start costs seconds; a value the environment gives is kept (the test below)."""
    seen = _list_in_a_process_of_its_own(None, tmp_path)
    assert seen["enabled"] is True
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000
    assert seen["blas"] == "1"


def _list_in_a_process_of_its_own(blas: str | None, tmp_path: object) -> dict[str, object]:
    """``respaldo list`` as the console script runs it, with OPENBLAS_NUM_THREADS unset or
    ``blas``: the collector's state and freeze count, and the variable, when it exits."""
    code = (
        "import atexit, gc, json, os, sys\n"
        "from respaldo.cli import entry\n"
        "atexit.register(lambda: print(json.dumps("
        "{'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(),"
        " 'blas': os.environ.get('OPENBLAS_NUM_THREADS')})))\n"
        f"sys.argv = ['respaldo', '--config', {str(tmp_path)!r} + '/missing.toml', 'list']\n"
        "entry.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if blas is not None:
        env["OPENBLAS_NUM_THREADS"] = blas
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert done.stdout, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_numpy_keeps_the_blas_threads_the_environment_gives(tmp_path: object) -> None:
    """numpy's OpenBLAS threads: one unless told otherwise (the test above); a value the
    environment gives is kept."""
    assert _list_in_a_process_of_its_own("2", tmp_path)["blas"] == "2"


def test_in_process_callers_keep_their_collector_as_it_is() -> None:
    code = (
        "import contextlib, gc, io, json\n"
        "from respaldo.cli.main import invoke\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    invoke(['--config', '/nonexistent/respaldo.toml', 'list'])\n"
        "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))\n"
    )
    assert _run(code) == {"enabled": True, "frozen": 0}


def _one_shot(config: Path, *args: str, watch: tuple[str, ...]) -> dict[str, object]:
    """``respaldo ARGS`` in a process of its own, as the console script runs it: its
    status, its output and which of ``watch`` it imported."""
    code = (
        "import atexit, json, sys\n"
        "from respaldo.cli import entry\n"
        "atexit.register(lambda: print(json.dumps("
        f"[m for m in {watch!r} if m in sys.modules])))\n"
        f"sys.argv = ['respaldo', '--config', {str(config)!r}, *{list(args)!r}]\n"
        "entry.run()\n"
    )
    env = {**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    lines = done.stdout.splitlines()
    return {
        "status": done.returncode,
        "stdout": lines[:-1],
        "stderr": done.stderr,
        "imported": json.loads(lines[-1]),
    }


def test_a_one_shot_backup_and_restore_import_only_their_own_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A files backup and its restore, each a process of its own as cron or an operator
    runs them, import none of the service, Alembic, argon2 or the alerts, nor the code of
    the other kinds of backup and restore; and they still back up and restore."""
    tree = tmp_path / "app"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("first file\n")
    (tree / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    config = local_config(tmp_path, f'[[file_sets]]\nname = "app"\npaths = ["{tree}"]\n')
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    initialize(load_settings(config), kdf=FAST_KDF)
    # The first process on a machine derives the key (argon2) and caches it.
    assert _one_shot(config, "backup", "app", watch=())["status"] == 0

    backup = _one_shot(config, "backup", "app", watch=NEVER + NOT_FOR_FILES_BACKUP)
    assert backup["status"] == 0, backup["stderr"]
    assert backup["imported"] == []
    assert isinstance(backup["stdout"], list)
    backup_id = backup["stdout"][-1]

    target = tmp_path / "restored"
    restore = _one_shot(
        config,
        "restore",
        backup_id,
        "--target-dir",
        str(target),
        watch=NEVER + NOT_FOR_FILES_RESTORE,
    )
    assert restore["status"] == 0, restore["stderr"]
    assert restore["imported"] == []
    # A files restore puts each configured path under the target, as it was.
    inside = target / tree.relative_to("/")
    restored = {
        p.relative_to(inside).as_posix(): p.read_bytes() for p in inside.rglob("*") if p.is_file()
    }
    assert restored == {"a.txt": b"first file\n", "sub/b.bin": bytes(range(256)) * 40}
