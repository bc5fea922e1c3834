"""What each kind of child program receives of respaldo's environment (pure functions)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from respaldo.childenv import (
    base_environment,
    english_messages,
    hook_environment,
    libpq_environment,
    server_environment,
)
from respaldo.config import RepositorySettings, Settings

PARENT = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "LANG": "es_ES.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "Europe/Madrid",
    "RESPALDO_PASSPHRASE": "secret-passphrase",
    "RESPALDO_CONFIG": "/etc/respaldo.toml",
    "RESPALDO_DATABASES": '[{"password": "json-secret"}]',
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "PGPASSWORD": "pg-secret",
    "PGPASSFILE": "/root/.pgpass.erp",
    "PGSSLMODE": "verify-full",
    "KRB5CCNAME": "FILE:/tmp/krb5cc_0",
    "XDG_RUNTIME_DIR": "/run/user/0",
    "EDITOR": "vi",
}


def test_every_child_gets_path_home_locale_and_time_zone_only() -> None:
    assert base_environment(PARENT) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "es_ES.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "Europe/Madrid",
    }


def test_postgresql_programs_get_libpq_settings_and_the_callers_password_only_if_needed() -> None:
    own = libpq_environment(PARENT, keep_password=False)
    assert own["PGSSLMODE"] == "verify-full"
    assert own["KRB5CCNAME"] == "FILE:/tmp/krb5cc_0"
    assert "PGPASSWORD" not in own and "PGPASSFILE" not in own
    callers = libpq_environment(PARENT, keep_password=True)
    assert callers["PGPASSWORD"] == "pg-secret"
    assert callers["PGPASSFILE"] == "/root/.pgpass.erp"
    for env in (own, callers):
        assert not {"RESPALDO_PASSPHRASE", "RESPALDO_DATABASES", "RESPALDO_CONFIG"} & set(env)
        assert "AWS_SECRET_ACCESS_KEY" not in env and "EDITOR" not in env
        # Their messages (and libpq's) are read: untranslated, the rest of the locale kept.
        assert env["LC_MESSAGES"] == "C" and "LC_ALL" not in env
        assert env["LC_CTYPE"] == "C.UTF-8" and env["LANG"] == "es_ES.UTF-8"


def test_hooks_get_no_password_of_any_kind() -> None:
    env = hook_environment(PARENT)
    assert "PGPASSWORD" not in env
    assert env["XDG_RUNTIME_DIR"] == "/run/user/0"  # systemctl --user
    assert env["PGSSLMODE"] == "verify-full"
    text = repr(env)
    for secret in ("secret-passphrase", "json-secret", "aws-secret", "pg-secret"):
        assert secret not in text


SERVER_PARENT = {
    **PARENT,
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SESSION_TOKEN": "aws-token",
    "AWS_CA_BUNDLE": "/etc/ssl/ca.pem",
    "RESPALDO_REPOSITORIES": '[{"secret_access_key": "repo-secret"}]',
    "PGPORT": "5432",
}


def _settings(url: str, *, passphrase_file: bool, **repo: object) -> Settings:
    return Settings(
        repositories=[RepositorySettings(name="main", url=url, **repo)],
        passphrase_file=Path("/etc/respaldo/passphrase") if passphrase_file else None,
    )


def test_a_server_gets_the_base_only_when_its_config_holds_what_wal_fetch_needs() -> None:
    env = server_environment(_settings("file:///srv/repo", passphrase_file=True), SERVER_PARENT)
    assert env == base_environment(SERVER_PARENT)


def test_a_server_gets_the_passphrase_only_without_a_passphrase_file() -> None:
    env = server_environment(_settings("file:///srv/repo", passphrase_file=False), SERVER_PARENT)
    assert env["RESPALDO_PASSPHRASE"] == "secret-passphrase"
    assert set(env) - set(base_environment(SERVER_PARENT)) == {"RESPALDO_PASSPHRASE"}


def test_a_server_gets_aws_credentials_only_when_an_s3_primary_takes_them_from_there() -> None:
    from_env = server_environment(_settings("s3://b/p", passphrase_file=True), SERVER_PARENT)
    assert from_env["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
    assert from_env["AWS_SESSION_TOKEN"] == "aws-token"
    assert "RESPALDO_REPOSITORIES" not in from_env
    configured = server_environment(
        _settings(
            "s3://b/p",
            passphrase_file=True,
            access_key_id="AKIACONF",
            secret_access_key_file=Path("/etc/respaldo/s3.secret"),
        ),
        SERVER_PARENT,
    )
    assert configured["AWS_CA_BUNDLE"] == "/etc/ssl/ca.pem"  # not a secret, still needed
    assert not {"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"} & set(configured)
    assert "RESPALDO_REPOSITORIES" not in configured
    secret_from_env = server_environment(
        _settings(
            "s3://b/p",
            passphrase_file=True,
            access_key_id="AKIACONF",
            secret_access_key=SecretStr("repo-secret"),
        ),
        SERVER_PARENT,
    )
    assert secret_from_env["RESPALDO_REPOSITORIES"] == SERVER_PARENT["RESPALDO_REPOSITORIES"]
    assert "AWS_SECRET_ACCESS_KEY" not in secret_from_env


def test_a_server_never_gets_database_passwords_or_libpq_settings() -> None:
    for settings in (
        _settings("file:///srv/repo", passphrase_file=False),
        _settings("s3://b/p", passphrase_file=False),
    ):
        env = server_environment(settings, SERVER_PARENT)
        assert not {"PGPASSWORD", "PGPASSFILE", "PGPORT", "PGSSLMODE", "RESPALDO_DATABASES"} & set(
            env
        )
        assert "RESPALDO_CONFIG" not in env


def test_a_server_recovering_from_an_s3_mirror_gets_what_that_mirror_needs() -> None:
    """The primary is a lost local disk; wal-fetch reads the offsite bucket."""
    settings = Settings(
        repositories=[
            RepositorySettings(name="local", url="file:///srv/repo"),
            RepositorySettings(name="offsite", url="s3://b/p"),
        ],
        passphrase_file=Path("/etc/respaldo/passphrase"),
    )
    env = server_environment(settings, SERVER_PARENT, repository="offsite")
    assert env["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
    assert env["AWS_CA_BUNDLE"] == "/etc/ssl/ca.pem"
    # Reading the local primary, the server gets nothing of AWS.
    assert server_environment(settings, SERVER_PARENT) == base_environment(SERVER_PARENT)


def test_english_messages_keep_the_rest_of_the_locale() -> None:
    env = {"LANGUAGE": "es", "LC_ALL": "es_ES.UTF-8", "LANG": "es_ES.UTF-8", "PATH": "/bin"}
    english_messages(env)
    assert env["LC_MESSAGES"] == "C"
    assert "LANGUAGE" not in env and "LC_ALL" not in env
    assert env["LC_CTYPE"] == env["LC_COLLATE"] == "es_ES.UTF-8"
    assert env["LANG"] == "es_ES.UTF-8" and env["PATH"] == "/bin"
    plain = {"LANG": "es_ES.UTF-8"}
    english_messages(plain)
    assert plain == {"LANG": "es_ES.UTF-8", "LC_MESSAGES": "C"}
