"""The autouse ``clean_env`` fixture (tests/conftest.py).

It lives beside the storage tests because they are the first to need it: an S3 backend
must never pick up the developer's own AWS_* credentials or ~/.aws while tests run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import isolate_env

pytestmark = pytest.mark.unit


def test_isolate_env_removes_respaldo_and_aws_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "from the developer's shell")
    monkeypatch.setenv("RESPALDO_CONFIG", "/etc/respaldo/respaldo.toml")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real secret")
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("PATH_LIKE_RESPALDO_", "kept")
    isolate_env(monkeypatch, tmp_path)
    assert [k for k in os.environ if k.startswith(("RESPALDO_", "AWS_"))] == []
    assert os.environ["PATH_LIKE_RESPALDO_"] == "kept"


def test_isolate_env_moves_home_and_xdg_directories(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("XDG_CACHE_HOME", "/root/.cache")
    isolate_env(monkeypatch, tmp_path)
    assert os.environ["HOME"] == str(tmp_path)
    assert Path("~").expanduser() == tmp_path
    for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        assert Path(os.environ[key]).is_relative_to(tmp_path), key


def test_every_test_runs_isolated(clean_env: Path, tmp_path: Path) -> None:
    assert [k for k in os.environ if k.startswith(("RESPALDO_", "AWS_"))] == []
    assert os.environ["HOME"] == str(clean_env)
    assert os.environ["XDG_CACHE_HOME"] == str(clean_env / ".cache")
    # HOME is not inside the test's own tmp_path.
    assert not clean_env.is_relative_to(tmp_path)
