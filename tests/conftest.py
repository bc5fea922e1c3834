"""Fixtures shared by every kind of test.

The autouse ``clean_env`` keeps the developer's own settings and credentials out of the
tests (borg's ``clean_env``): no RESPALDO_* or AWS_* variable survives into a test, and
HOME and the XDG directories point into a fresh temporary directory, so nothing reads or
writes the real ~/.cache, ~/.config or ~/.aws. Tests that need a variable set it with
``monkeypatch.setenv`` after the fixture has run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Session fixtures that start S3-compatible servers (SeaweedFS, moto), for every suite that
# asks for them: defined once here so that one session never starts two of a kind.
from tests.servers.s3 import moto_server, s3_server  # noqa: F401

ISOLATED_PREFIXES = ("RESPALDO_", "AWS_")


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
