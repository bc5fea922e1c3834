"""``respaldo user add|list|remove|passwd``: passwords from stdin (never argv), changes
audited with the OS user as actor, refused changes leave the users as they were."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from respaldo.cli.main import invoke
from respaldo.config import Settings
from respaldo.domain import AuditAction, AuditOutcome
from respaldo.errors import InvalidInput
from respaldo.operations import audit, users
from respaldo.operations.context import Context
from respaldo.operations.jobs import os_user

from .conftest import PASSWORD

pytestmark = pytest.mark.unit


@pytest.fixture
def config(tmp_path: Path, settings: Settings, context: Context) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(f'[catalog]\nurl = "{settings.catalog.url}"\n')
    return path


def run(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = invoke(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_user_add_reads_the_password_from_stdin_and_audits_the_os_user(
    config: Path,
    context: Context,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run(
        config, capsys, monkeypatch, "user", "add", "alice", "--role", "operator", stdin=PASSWORD
    )
    assert code == 0, err
    assert users.check_password(context, "alice", PASSWORD) is not None
    code, out, _ = run(config, capsys, monkeypatch, "user", "list", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert listed["name"] == "alice" and listed["role"] == "operator"
    assert listed["permissions"] == ["admin:read", "admin:create"]
    assert PASSWORD not in out and "hash" not in out.lower()
    (entry,) = audit.entries(context, action=AuditAction.USER_ADD)
    assert (entry.actor, entry.method, entry.target, entry.outcome) == (
        os_user(),
        "local",
        "alice",
        AuditOutcome.SUCCESS,
    )


def test_there_is_no_password_option(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run(
        config, capsys, monkeypatch, "user", "add", "alice", "--role", "admin", "--password", "x"
    )
    assert code == 2
    for command in ("add", "passwd"):
        _, out, _ = run(config, capsys, monkeypatch, "user", command, "--help")
        assert "--password" not in out


def test_a_refused_add_changes_nothing_and_is_audited(
    config: Path,
    context: Context,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run(config, capsys, monkeypatch, "user", "add", "alice", "--role", "viewer", stdin=PASSWORD)
    code, _, err = run(
        config,
        capsys,
        monkeypatch,
        "user",
        "add",
        "alice",
        "--role",
        "admin",
        stdin="other pw 1234",
    )
    assert code == 1 and "already exists" in err
    (alice,) = users.list_users(context)
    assert alice.role == "viewer"
    assert users.check_password(context, "alice", PASSWORD) is not None
    short = "tiny-pw"
    code, _, err = run(
        config, capsys, monkeypatch, "user", "add", "bob", "--role", "admin", stdin=short
    )
    assert code == 1 and "shorter than 12 characters" in err and short not in err
    assert [u.name for u in users.list_users(context)] == ["alice"]
    outcomes = [(e.target, e.outcome) for e in audit.entries(context, action=AuditAction.USER_ADD)]
    assert outcomes == [
        ("bob", AuditOutcome.FAILURE),
        ("alice", AuditOutcome.FAILURE),
        ("alice", AuditOutcome.SUCCESS),
    ]
    assert all(short not in (e.detail or "") for e in audit.entries(context))


def test_passwd_and_remove(
    config: Path,
    context: Context,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run(config, capsys, monkeypatch, "user", "add", "alice", "--role", "viewer", stdin=PASSWORD)
    code, _, err = run(
        config, capsys, monkeypatch, "user", "passwd", "alice", stdin="another long one\n"
    )
    assert code == 0, err
    assert users.check_password(context, "alice", PASSWORD) is None
    assert users.check_password(context, "alice", "another long one") is not None
    code, _, err = run(config, capsys, monkeypatch, "user", "remove", "alice")
    assert code == 0, err
    assert users.list_users(context) == []
    code, _, err = run(config, capsys, monkeypatch, "user", "remove", "alice")
    assert code == 1 and "no user 'alice'" in err
    actions = [(e.action, e.outcome) for e in audit.entries(context)]
    assert actions == [
        ("user.remove", AuditOutcome.FAILURE),
        ("user.remove", AuditOutcome.SUCCESS),
        ("user.passwd", AuditOutcome.SUCCESS),
        ("user.add", AuditOutcome.SUCCESS),
    ]


@pytest.mark.parametrize("name", ["alice\n", "alice\r\n", "-alice", "alice bob", "a" * 65, ""])
def test_a_user_or_token_name_with_anything_outside_its_characters_is_refused(
    name: str,
) -> None:
    # A name in the audit log, the page and the log: "alice\n" would read as alice.
    with pytest.raises(InvalidInput, match="is not a valid user name"):
        users.validate_user_name(name)
