"""``wal-push`` as the server runs it (a process per segment) imports only what a push needs.

Each module kept out here cost every segment tens to hundreds of milliseconds (measured
with ``python -X importtime``; bench/startup_bench.py): pydantic and pydantic-settings
(the full config), SQLAlchemy and Alembic (the catalog), numpy (the chunk index), argon2
(the key comes from the key cache), typer and rich (the CLI), psycopg, apprise. A later
change that brings one back fails here. The push itself is checked whole: the segment is
archived sealed (not in clear), reads back equal, and failures still say why.
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
from respaldo.operations.wal import open_wal_repository
from respaldo.repository.wal import get_wal
from tests.configs import local_config
from tests.unit.operations.support import FAST_KDF
from tests.unit.postgres.support import make_segment

pytestmark = pytest.mark.unit

PASSPHRASE = "wal push light test passphrase"
SYSID = 7300000000000000042
HEAVY = (
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "numpy",
    "argon2",
    "typer",
    "rich",
    "psycopg",
    "apprise",
)


def _config(root: Path, extra: str = "") -> Path:
    return local_config(
        root,
        '[[databases]]\nname = "erp"\ndsn = "postgresql://nobody@127.0.0.1:1/erp"\n',
        settings=extra,
    )


def _segment(root: Path, segno: int) -> tuple[Path, bytes]:
    data = make_segment(SYSID, 1, segno)
    path = root / "pg_wal" / f"00000001{segno // 4096:08X}{segno % 4096:08X}"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path, data


def _push(config: Path, *args: str) -> dict[str, object]:
    """``wal-push`` in a process of its own, as archive_command runs it: its status, what
    it wrote to stderr and which of HEAVY it imported."""
    code = (
        "import contextlib, io, json, sys\n"
        "from respaldo.cli.wal_fast import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        f"    status = main(['--config', {str(config)!r}, 'wal-push', *{list(args)!r}])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'status': status, 'stderr': err.getvalue(), 'heavy': heavy}))\n"
    )
    env = {**os.environ, "RESPALDO_PASSPHRASE": PASSPHRASE}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    path = _config(tmp_path)
    initialize(load_settings(path), kdf=FAST_KDF)
    return path


def test_a_push_imports_nothing_heavy_and_archives_the_segment_sealed(
    config: Path, tmp_path: Path
) -> None:
    first, _ = _segment(tmp_path, 1)
    assert _push(config, str(first))["status"] == 0  # derives the key, caches it
    segment, data = _segment(tmp_path, 2)
    pushed = _push(config, str(segment))
    assert pushed == {"status": 0, "stderr": "", "heavy": []}
    repo = open_wal_repository(load_settings(config))
    assert get_wal(repo, str(SYSID), "00000001", segment.name) == data
    stored = tmp_path / "repo" / "wal" / str(SYSID) / "00000001" / segment.name
    assert data[4096:8192] not in stored.read_bytes()  # sealed, not in clear


def test_a_failed_push_says_why_and_stores_nothing(config: Path, tmp_path: Path) -> None:
    segment, _ = _segment(tmp_path, 3)
    pushed = _push(config, "--database", "crm", str(segment))
    assert pushed["status"] == 1
    assert pushed["stderr"] == (
        "respaldo: error: database 'crm' is not configured\nrespaldo: hint: configured: erp\n"
    )
    assert not (tmp_path / "repo" / "wal").exists()


def test_a_config_the_short_cut_leaves_to_the_full_loader_fails_as_before(
    config: Path, tmp_path: Path
) -> None:
    config.write_text("compression_level = 0\n" + config.read_text())
    segment, _ = _segment(tmp_path, 4)
    pushed = _push(config, str(segment))
    assert pushed["status"] == 1
    assert (
        f"respaldo: error: invalid config file {config}: compression_level: Input should "
        "be greater than or equal to 1" in str(pushed["stderr"])
    )
    assert not (tmp_path / "repo" / "wal").exists()
