"""Fixtures of the operation tests: the repository passphrase in the environment."""

from __future__ import annotations

import pytest

from tests.unit.operations.support import PASSPHRASE


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch, clean_env: object) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
