"""What each kind of child program receives of respaldo's environment (pure functions)."""

from __future__ import annotations

from respaldo.childenv import base_environment, hook_environment, libpq_environment

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


def test_hooks_get_no_password_of_any_kind() -> None:
    env = hook_environment(PARENT)
    assert "PGPASSWORD" not in env
    assert env["XDG_RUNTIME_DIR"] == "/run/user/0"  # systemctl --user
    assert env["PGSSLMODE"] == "verify-full"
    text = repr(env)
    for secret in ("secret-passphrase", "json-secret", "aws-secret", "pg-secret"):
        assert secret not in text
