"""New keys need a passphrase of at least 12 characters; old short ones still open."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.operations.repositories import MIN_PASSPHRASE_LENGTH
from respaldo.repository import ChunkerParams, Repository
from respaldo.storage.local import LocalStorage
from tests.unit.operations.support import FAST_KDF, Installation, fast_new_keys, write_config

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _fast_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the passphrase's length allows is the point here, not the KDF's cost
    # (test_key_changes.py checks that the commands use the default).
    fast_new_keys(monkeypatch)


SHORT = "sesame"


def _run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = invoke(["--config", str(config), *argv])
    return code, capsys.readouterr().err


def _keys(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "keys").iterdir())


def test_the_minimum_is_twelve() -> None:
    assert MIN_PASSPHRASE_LENGTH == 12


@pytest.mark.parametrize("passphrase", ["x", SHORT, "eleven char", " " * 12])
def test_init_refuses_a_short_passphrase_and_creates_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    passphrase: str,
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", passphrase)
    config = write_config(tmp_path)
    code, err = _run(capsys, config, "init")
    assert code == 1
    assert "respaldo: error: the new passphrase is too weak" in err
    assert f"at least {MIN_PASSPHRASE_LENGTH} characters" in err
    assert SHORT not in err and "eleven char" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["respaldo.toml"]


def test_init_accepts_twelve_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "twelve chars")
    config = write_config(tmp_path, secondary=False)
    code, err = _run(capsys, config, "init")
    assert code == 0, err
    assert len(_keys(tmp_path / "repo")) == 1


def test_a_repository_with_an_old_short_passphrase_still_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Made before the minimum existed (straight through the repository layer).
    Repository.init(
        LocalStorage(tmp_path / "repo"),
        SHORT,
        chunker=ChunkerParams(256, 1024, 4096),
        kdf=FAST_KDF,
    )
    monkeypatch.setenv("RESPALDO_PASSPHRASE", SHORT)
    config = write_config(tmp_path, secondary=False)
    code, err = _run(capsys, config, "init")
    assert code == 0, err
    assert "exists, opened" in err
    code, err = _run(capsys, config, "key", "list")
    assert code == 0, err
    # ...but it cannot be copied into a new key for a new mirror.
    config = write_config(tmp_path, secondary=True)
    code, err = _run(capsys, config, "init")
    assert code == 1
    assert "too weak" in err and "respaldo key passwd" in err
    assert not (tmp_path / "second").exists()


@pytest.mark.parametrize("command", ["add", "passwd"])
def test_key_add_and_passwd_refuse_a_short_passphrase(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    inst = Installation.create(tmp_path)
    before = _keys(tmp_path / "repo")
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", "short one")
    code, err = _run(capsys, inst.config, "key", command)
    assert code == 1
    assert "respaldo: error: the new passphrase is too weak" in err
    assert _keys(tmp_path / "repo") == before
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", "a long enough new passphrase")
    code, err = _run(capsys, inst.config, "key", command)
    assert code == 0, err
