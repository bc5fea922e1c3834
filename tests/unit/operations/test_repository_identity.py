"""A repository re-created after its only disk died, and a ``catalog rebuild`` that
fails: the way on from RepositoryMismatch, through the real CLI on a SQLite catalog."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.errors import RepositoryMismatch
from tests.unit.operations.support import Installation, run_cli

pytestmark = pytest.mark.unit


def _open_as_a_backup_does(inst: Installation) -> str:
    """The repository id a command's context opens (what a backup writes to)."""
    ctx = inst.context()
    try:
        return ctx.repository().id
    finally:
        ctx.close()


@pytest.fixture
def inst(tmp_path: Path) -> Installation:
    root = tmp_path / "site"
    root.mkdir()
    return Installation.create(root, secondary=False)


def test_the_only_repository_re_created_after_its_disk_died_is_taken_by_the_printed_command(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """No mirror to copy the id from: init makes a repository with a new id, which the
    catalog refuses. The message said 'nothing was read or written' (init had just
    written the repository) and the hint named no repository; the command it now prints
    makes the new repository the catalog's and the next backup works."""
    lost = inst.backup(timedelta(hours=2))
    old_id = inst.repository().id
    inst.close()
    shutil.rmtree(inst.root / "repo")
    shutil.rmtree(inst.root / "cache", ignore_errors=True)
    config = str(inst.config)
    code, _, err = run_cli(capsys, "--config", config, "init")
    assert code == 1, err
    assert "'respaldo init' created a new repository 'local' at file://" in err
    assert f"records its backups of 'local' in repository {old_id}" in err
    assert "nothing was read or written" not in err
    command = "respaldo catalog rebuild --repository local"
    assert f"'{command}'" in err
    code, _, err = run_cli(capsys, "--config", config, "verify", "--all")
    assert code == 1 and "is not the one this catalog knows" in err, err
    assert f"'{command}'" in err
    with pytest.raises(RepositoryMismatch):
        _open_as_a_backup_does(inst)
    code, _, err = run_cli(capsys, "--config", config, *command.split()[1:])
    assert code == 0, err
    assert _open_as_a_backup_does(inst) != old_id
    code, out, err = run_cli(capsys, "--config", config, "verify", "--all")
    assert code != 0 and lost in out + err  # the lost backup is named, not hidden


def test_a_catalog_rebuild_that_fails_to_open_leaves_the_catalogs_repository(
    inst: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A rebuild pointed by mistake at another repository (a mistyped URL) fails on the
    passphrase; it recorded that repository as the catalog's first, and every backup of
    the real one was refused afterwards."""
    inst.backup(timedelta(hours=1))
    inst.close()
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = Installation.create(other_root, secondary=False)
    other.close()
    # The other repository, with a passphrase that is not this site's.
    from respaldo.operations.repositories import open_repository

    assert open_repository(other.settings()).id != inst.repository().id
    inst.close()
    (other_root / "repo" / "keys").rename(other_root / "repo" / "keys-gone")
    (other_root / "repo" / "keys").mkdir()
    text = inst.config.read_text()
    typo = inst.root / "typo.toml"
    typo.write_text(text.replace(f"file://{inst.root / 'repo'}", f"file://{other_root / 'repo'}"))
    code, _, err = run_cli(capsys, "--config", str(typo), "catalog", "rebuild")
    assert code == 1, err
    assert _open_as_a_backup_does(inst) == inst.repository().id
