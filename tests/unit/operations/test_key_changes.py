"""``respaldo key add`` and ``key passwd`` change every configured repository; they and
``key remove`` are audited when the catalog opens, and work when it does not.

One passphrase (``RESPALDO_PASSPHRASE`` or ``passphrase_file``) opens every repository of
a configuration: a passphrase changed in the primary alone leaves the offsite mirror
opening only with the old one, which the operator then forgets, and the mirror is what a
disaster leaves. So a change goes to every repository, or (when one cannot be opened)
to none.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.domain import AuditOutcome
from respaldo.errors import WrongPassphrase
from respaldo.operations import audit
from respaldo.operations.context import Context
from respaldo.operations.jobs import os_user
from respaldo.repository import KdfParams, Repository
from respaldo.storage.local import LocalStorage
from tests.unit.operations.support import (
    PASSPHRASE,
    Installation,
    fast_new_keys,
    write_config,
)

pytestmark = pytest.mark.unit

NEW = "a brand new passphrase"


def _run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = invoke(["--config", str(config), *argv])
    return code, capsys.readouterr().err


def _opens(root: Path, passphrase: str) -> bool:
    try:
        Repository.open(LocalStorage(root), passphrase, load_index=False).close()
    except WrongPassphrase:
        return False
    return True


def _keys(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "keys").iterdir())


def _audited(inst: Installation) -> list[tuple[str, str | None, AuditOutcome, str | None]]:
    """The audit log, oldest first; every entry's actor is the OS user (method local)."""
    with Context.open(inst.settings()) as context:
        found = audit.entries(context)
    assert {(e.actor, e.method) for e in found} <= {(os_user(), "local")}
    return [(e.action, e.target, e.outcome, e.detail) for e in reversed(found)]


def _kdf(key_file: Path) -> dict[str, int]:
    kdf = json.loads(key_file.read_text())["kdf"]
    return {name: kdf[name] for name in ("time_cost", "memory_cost", "parallelism")}


@pytest.fixture
def inst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installation:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", NEW)
    fast_new_keys(monkeypatch)
    return Installation.create(tmp_path)


def test_init_and_key_add_wrap_the_keys_with_the_default_kdf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The other tests here give the new keys a cheap KDF (fast_new_keys): the commands'
    # own choice, argon2id at its full cost, is checked here.
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", NEW)
    config = write_config(tmp_path, secondary=False)
    code, err = _run(capsys, config, "init")
    assert code == 0, err
    code, err = _run(capsys, config, "key", "add")
    assert code == 0, err
    key_files = sorted((tmp_path / "repo" / "keys").iterdir())
    assert len(key_files) == 2
    for key_file in key_files:
        assert _kdf(key_file) == asdict(KdfParams()), key_file.name


def test_passwd_changes_the_passphrase_of_every_repository(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, inst.config, "key", "passwd")
    assert code == 0, err
    for name in ("repo", "second"):
        assert _opens(inst.root / name, NEW), name
        assert not _opens(inst.root / name, PASSPHRASE), name
    assert "local" in err and "second" in err
    assert NEW not in err and PASSPHRASE not in err
    ((action, target, outcome, detail),) = _audited(inst)
    assert (action, target, outcome) == ("key.passwd", "local, second", AuditOutcome.SUCCESS)
    assert detail is not None and "local: key " in detail and "second: key " in detail
    assert NEW not in detail and PASSPHRASE not in detail


def test_key_add_works_without_a_catalog_and_says_so_at_debug_level(
    inst: Installation, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The keys are the way back after a disaster, where the catalog may be lost: nothing
    # to audit to, and no reason to refuse or alarm.
    (inst.root / "catalog.db").unlink()
    with caplog.at_level(logging.DEBUG, logger="respaldo.operations.audit"):
        code, err = _run(capsys, inst.config, "key", "add")
    assert code == 0, err
    assert _opens(inst.root / "repo", NEW) and _opens(inst.root / "second", NEW)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, f"key.add not audited: no catalog at {inst.root / 'catalog.db'}")
    ]
    assert "warning" not in err


def test_key_add_works_when_the_catalog_cannot_be_opened_and_warns(
    inst: Installation, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A catalog is there but unreadable (a damaged file here; a database down): the change
    # is made, and the operator is told that the audit log misses it.
    (inst.root / "catalog.db").write_bytes(b"not a database" * 100)
    code, err = _run(capsys, inst.config, "key", "add")
    assert code == 0, err
    assert _opens(inst.root / "repo", NEW)
    ((level, message),) = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert level == logging.WARNING
    assert message.startswith("key.add not recorded in the audit log: the catalog: cannot open")


def test_key_add_adds_the_passphrase_to_every_repository(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, inst.config, "key", "add")
    assert code == 0, err
    for name in ("repo", "second"):
        assert _opens(inst.root / name, NEW), name
        assert _opens(inst.root / name, PASSPHRASE), name


def test_passwd_with_a_repository_named_changes_that_one_only(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, inst.config, "key", "passwd", "--repository", "second")
    assert code == 0, err
    assert _opens(inst.root / "second", NEW)
    assert not _opens(inst.root / "second", PASSPHRASE)
    assert _opens(inst.root / "repo", PASSPHRASE)
    assert not _opens(inst.root / "repo", NEW)


def test_passwd_changes_nothing_when_a_repository_cannot_be_opened(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    # The mirror is away (an unmounted disk, a bucket out of reach): changing the primary
    # alone would leave the two opening with different passphrases.
    shutil.move(inst.root / "second", inst.root / "away")
    before = _keys(inst.root / "repo")
    code, err = _run(capsys, inst.config, "key", "passwd")
    assert code == 1
    assert "second" in err and "--repository" in err
    assert _keys(inst.root / "repo") == before
    assert _opens(inst.root / "repo", PASSPHRASE)
    assert not _opens(inst.root / "repo", NEW)


def test_passwd_removes_every_key_the_old_passphrase_opens(
    inst: Installation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two key files of the same passphrase ('key add' given the current one again, or a
    # mirror's key file copied back after damage): replacing one of them would leave the
    # old passphrase opening the repository after 'passphrase changed'.
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", PASSPHRASE)
    code, err = _run(capsys, inst.config, "key", "add", "--repository", "local")
    assert code == 0, err
    assert len(_keys(inst.root / "repo")) == 2
    monkeypatch.setenv("RESPALDO_NEW_PASSPHRASE", NEW)
    code, err = _run(capsys, inst.config, "key", "passwd")
    assert code == 0, err
    for name in ("repo", "second"):
        assert not _opens(inst.root / name, PASSPHRASE), name
        assert _opens(inst.root / name, NEW), name
    assert len(_keys(inst.root / "repo")) == 1


def test_removing_the_only_key_of_the_configured_passphrase_is_refused(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another passphrase exists (a colleague's, an old one nobody remembers): removing
    # the configured passphrase's key would leave the repository to it alone, and this
    # configuration (the scheduler, wal-push) opening nothing.
    code, err = _run(capsys, inst.config, "key", "add", "--repository", "local")
    assert code == 0, err
    current = Repository.open(LocalStorage(inst.root / "repo"), PASSPHRASE).key_id_for(PASSPHRASE)
    before = _keys(inst.root / "repo")
    code, err = _run(capsys, inst.config, "key", "remove", current)
    assert code == 1
    assert "configured passphrase" in err and "key passwd" in err
    assert _keys(inst.root / "repo") == before
    assert _opens(inst.root / "repo", PASSPHRASE)
    # The other one goes.
    (other,) = set(before) - {current}
    code, err = _run(capsys, inst.config, "key", "remove", other)
    assert code == 0, err
    assert _keys(inst.root / "repo") == [current]
    added, refused, removed = _audited(inst)
    assert added[:3] == ("key.add", "local", AuditOutcome.SUCCESS)
    assert refused[:3] == ("key.remove", current, AuditOutcome.FAILURE)
    assert refused[3] is not None and "configured passphrase" in refused[3]
    assert removed == ("key.remove", other, AuditOutcome.SUCCESS, "removed from local")


def test_two_passphrase_changes_at_once_both_complete(
    inst: Installation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another machine's 'key passwd' (to another passphrase) runs meanwhile: it adds its
    # key and removes the old one first. Ours still completes, and the repositories open
    # with either new passphrase, never with neither.
    elsewhere = "another machine's passphrase"
    real_add = Repository.add_key
    raced: list[str] = []

    def add_and_race(self: Repository, passphrase: str, kdf: object = None) -> str:
        if not raced:
            raced.append("once")
            old = self.key_ids_for(PASSPHRASE)
            for name in ("repo", "second"):
                other = Repository.open(LocalStorage(inst.root / name), PASSPHRASE)
                real_add(other, elsewhere, None)
                for key_id in other.key_ids_for(PASSPHRASE):
                    other.remove_key(key_id)
            assert old
        return real_add(self, passphrase, kdf)  # type: ignore[arg-type]

    monkeypatch.setattr(Repository, "add_key", add_and_race)
    code, err = _run(capsys, inst.config, "key", "passwd")
    assert code == 0, err
    for name in ("repo", "second"):
        assert _opens(inst.root / name, NEW), name
        assert _opens(inst.root / name, elsewhere), name
        assert not _opens(inst.root / name, PASSPHRASE), name


def test_key_list_shows_a_damaged_key_file_and_it_can_be_removed(
    inst: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    # A torn key file beside a good one: the repository opens, so the keys must list
    # (the damaged one named, to be removed), not fail on it.
    torn = inst.root / "repo" / "keys" / "0123456789abcdef"
    torn.write_bytes(b'{"version": 1, "id": "01234')
    code, out = _run_out(capsys, inst.config, "key", "list")
    assert code == 0
    assert len([line for line in out.splitlines() if line.startswith("*")]) == 1
    (damaged,) = [line for line in out.splitlines() if "0123456789abcdef" in line]
    assert "malformed" in damaged and not damaged.startswith("*")
    code, err = _run(capsys, inst.config, "key", "remove", "0123456789abcdef")
    assert code == 0, err
    assert not torn.exists()


def _run_out(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = invoke(["--config", str(config), *argv])
    return code, capsys.readouterr().out
