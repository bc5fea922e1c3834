"""``[notifications]`` at config load: bad URLs and misplaced secrets are refused with a
message naming the key; secrets are read only when sending (a missing secret file is
reported by the send, never a reason for a backup not to run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.errors import ConfigError, NotificationError
from respaldo.notify import resolve_url

pytestmark = pytest.mark.unit

BASE = """
[catalog]
url = "sqlite:////tmp/never-created/catalog.db"

[[repositories]]
name = "local"
url = "file:///srv/respaldo/repo"

[notifications]
language = "es"
"""


def _load(tmp_path: Path, target: str) -> object:
    path = tmp_path / "respaldo.toml"
    path.write_text(BASE + "\n[[notifications.targets]]\n" + target)
    return load_settings(path)


def _refused(tmp_path: Path, target: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, target)
    return str(caught.value)


def test_good_targets_load(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        'name = "mail"\n'
        'url = "mailtos://respaldo:{secret}@smtp.example.com:587?to=ops@example.com"\n'
        'secret_file = "/etc/respaldo/smtp-password"\n'
        'levels = ["critical", "warning", "resolved"]\n',
    )
    (target,) = settings.notifications.targets  # type: ignore[attr-defined]
    assert (target.name, target.levels) == ("mail", ["critical", "warning", "resolved"])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "not a URL"),
        ("nosuchservice://host/path", "scheme 'nosuchservice' is not a notification service"),
        ("tgram://badtoken/1", "apprise cannot use it"),
    ],
)
def test_a_bad_url_is_refused_naming_the_key(tmp_path: Path, url: str, expected: str) -> None:
    message = _refused(tmp_path, f'name = "ops"\nurl = "{url}"\n')
    assert "notifications.targets.0" in message
    assert "url of target 'ops'" in message
    assert expected in message


def test_a_password_written_in_the_url_is_refused_and_not_echoed(tmp_path: Path) -> None:
    message = _refused(
        tmp_path, 'name = "mail"\nurl = "mailtos://respaldo:hunter2@smtp.example.com"\n'
    )
    assert "holds a password; write {secret} in its place" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ('url = "json://h/{secret}"\n', "neither secret_file nor secret_env fills it"),
        ('url = "json://h/x"\nsecret_env = "X"\n', "secret_env is given but url has no {secret}"),
        ('url = "json://h/x"\nurl_env = "X"\n', "exactly one of url, url_file, url_env"),
        ('url_env = "X"\nsecret_env = "Y"\n', "with url_file or url_env the whole URL"),
        ('url = "json://h/x"\nlevels = ["urgent"]\n', "levels"),
        (
            'url = "json://h/x"\nlevels = []\n',
            "at least one of critical, warning, success, resolved, report",
        ),
    ],
)
def test_misplaced_secrets_and_levels_are_refused(
    tmp_path: Path, target: str, expected: str
) -> None:
    assert expected in _refused(tmp_path, 'name = "t"\n' + target)


def test_a_language_without_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "respaldo.toml"
    path.write_text(BASE.replace('language = "es"', 'language = "fr"'))
    with pytest.raises(ConfigError, match=r"notifications\.language"):
        load_settings(path)


def test_secrets_come_from_files_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text("p@ss/word\n")
    secret_file.chmod(0o600)
    settings = _load(
        tmp_path,
        f'name = "mail"\nurl = "mailto://respaldo:{{secret}}@smtp.example.com"\n'
        f'secret_file = "{secret_file}"\n'
        '[[notifications.targets]]\nname = "hook"\nurl_env = "HOOK_URL"\n',
    )
    mail, hook = settings.notifications.targets  # type: ignore[attr-defined]
    url, secrets = resolve_url(mail)
    assert url == "mailto://respaldo:p%40ss%2Fword@smtp.example.com"
    assert secrets == ["p@ss/word"]
    with pytest.raises(NotificationError, match="HOOK_URL \\(url_env\\) is not set"):
        resolve_url(hook)
    monkeypatch.setenv("HOOK_URL", "json://127.0.0.1/x")
    assert resolve_url(hook) == ("json://127.0.0.1/x", ["json://127.0.0.1/x"])


def test_a_missing_or_open_secret_file_is_an_error_when_sending(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    settings = _load(
        tmp_path, f'name = "mail"\nurl = "json://h/{{secret}}"\nsecret_file = "{missing}"\n'
    )
    (target,) = settings.notifications.targets  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="cannot read secret_file of notification target mail"):
        resolve_url(target)
    missing.write_text("token")
    missing.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        resolve_url(target)


def test_the_examples_of_docs_notifications_load(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "respaldo.toml"
    path.write_text(BASE.replace('[notifications]\nlanguage = "es"\n', "") + example)
    targets = load_settings(path).notifications.targets
    assert [t.name for t in targets] == [
        "ops-mail",
        "oncall-sms",
        "slack",
        "teams",
        "telegram",
        "erp-webhook",
    ]
