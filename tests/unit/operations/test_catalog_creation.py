"""Only ``init`` (and ``catalog rebuild``) create a catalog; ``list`` says when an empty
catalog sits next to a repository that holds backups."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.operations.support import Installation, run_cli

pytestmark = pytest.mark.unit


def _config_with_catalog(inst: Installation, catalog: Path) -> Path:
    text = inst.config.read_text()
    original = f'url = "sqlite:///{inst.root / "catalog.db"}"'
    assert original in text
    path = inst.root / f"other-{catalog.name}.toml"
    path.write_text(text.replace(original, f'url = "sqlite:///{catalog}"'))
    return path


@pytest.fixture
def inst(tmp_path: Path) -> Installation:
    root = tmp_path / "site"
    root.mkdir()
    return Installation.create(root)


@pytest.mark.parametrize(
    "command",
    [["list"], ["list", "--json"], ["prune", "--dry-run"], ["copy", "--all", "--to", "second"]],
)
@pytest.mark.parametrize("typo", ["catalgo.db", "no-such-dir/catalog.db"])
def test_a_command_refuses_a_catalog_url_that_leads_nowhere(
    inst: Installation, capsys: pytest.CaptureFixture[str], command: list[str], typo: str
) -> None:
    catalog = inst.root / typo
    config = _config_with_catalog(inst, catalog)
    code, out, err = run_cli(capsys, "--config", str(config), *command)
    assert code == 1, err
    assert out == ""
    assert f"respaldo: error: no catalog at {catalog}\n" in err
    assert "'respaldo init' creates a new catalog" in err
    assert not catalog.exists()
    assert catalog.parent.exists() == (catalog.parent == inst.root)


def test_init_creates_a_private_catalog_and_its_directories(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = inst.root / "var" / "lib" / "respaldo" / "catalog.db"
    config = _config_with_catalog(inst, catalog)
    code, _, err = run_cli(capsys, "--config", str(config), "init")
    assert code == 0, err
    assert f"catalog: sqlite:///{catalog}" in err
    assert stat.S_IMODE(catalog.stat().st_mode) == 0o600
    assert stat.S_IMODE(catalog.parent.stat().st_mode) == 0o700
    code, out, err = run_cli(capsys, "--config", str(config), "list", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert err == ""  # the repository holds no backups: nothing to say


def test_list_says_when_the_catalog_is_empty_but_the_repository_holds_backups(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    backup_id = inst.backup(timedelta(hours=1))
    inst.close()
    catalog = inst.root / "new" / "catalog.db"
    config = _config_with_catalog(inst, catalog)
    assert run_cli(capsys, "--config", str(config), "init")[0] == 0

    code, out, err = run_cli(capsys, "--config", str(config), "list", "--json")
    assert code == 0
    assert json.loads(out) == []
    assert f"warning: the catalog sqlite:///{catalog} is empty, but repository local holds" in err
    assert "'respaldo catalog rebuild'" in err

    # Filters that match nothing in a catalog that has records say nothing more.
    code, _, err = run_cli(capsys, "--config", str(config), "catalog", "rebuild")
    assert code == 0, err
    code, out, err = run_cli(capsys, "--config", str(config), "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [backup_id]
    code, out, err = run_cli(capsys, "--config", str(config), "list", "--database", "crm")
    assert code == 0 and err == ""


def test_catalog_rebuild_creates_a_missing_catalog(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    # After a disaster the catalog is gone; rebuilding it from a repository is explicit.
    backup_id = inst.backup(timedelta(hours=1))
    inst.close()
    (inst.root / "catalog.db").unlink()
    code, _, err = run_cli(capsys, "--config", str(inst.config), "catalog", "rebuild")
    assert code == 0, err
    assert "1 records created" in err
    assert stat.S_IMODE((inst.root / "catalog.db").stat().st_mode) == 0o600
    code, out, _ = run_cli(capsys, "--config", str(inst.config), "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [backup_id]


def test_no_config_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "list")
    assert (code, out) == (1, "")
    assert err.startswith("respaldo: error: no config file given\nrespaldo: hint: pass --config")
