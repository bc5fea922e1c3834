"""Fixtures shared by every kind of test.

The autouse ``clean_env`` keeps the developer's own settings and credentials out of the
tests (borg's ``clean_env``): no RESPALDO_* or AWS_* variable survives into a test, and
HOME and the XDG directories point into a fresh temporary directory, so nothing reads or
writes the real ~/.cache, ~/.config or ~/.aws. Tests that need a variable set it with
``monkeypatch.setenv`` after the fixture has run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Session fixtures that start S3-compatible servers (SeaweedFS, moto), for every suite that
# asks for them: defined once here so that one session never starts two of a kind.
from tests.servers.s3 import moto_server, s3_server  # noqa: F401

ISOLATED_PREFIXES = ("RESPALDO_", "AWS_")

# No per-example time limit for property tests: Hypothesis's default (200 ms) fails a test
# whose example the machine held up that long (DeadlineExceeded, or "Unreliable test
# timings" when the replay is quick), which a loaded CI machine does now and then, with
# nothing wrong. pytest-timeout still bounds a hang. A test's own @settings keeps this.
settings.register_profile("respaldo", deadline=None)
settings.load_profile("respaldo")


def isolate_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Drop RESPALDO_* and AWS_* and move HOME and XDG_* under ``home``, undone by monkeypatch."""
    for key in list(os.environ):
        if key.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Isolate the environment of every test; returns the temporary HOME."""
    # A directory of its own, not inside tmp_path, so that tests that inspect their
    # tmp_path never see it.
    home = tmp_path_factory.mktemp("home")
    isolate_env(monkeypatch, home)
    return home


@pytest.fixture
def enterable_dir() -> Iterator[Path]:
    """A fresh directory other OS users (the server's ``postgres``) can enter: pytest's
    own temporary directories are private to root."""
    path = Path(tempfile.mkdtemp(prefix="respaldo-enterable-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)
