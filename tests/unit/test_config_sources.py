"""``Settings`` merges its sources as pydantic-settings' ``BaseSettings`` did, without it.

respaldo.config used ``BaseSettings`` (keyword arguments, then ``RESPALDO_*`` variables,
then the TOML file); importing pydantic-settings cost every command 0.013 CPU-s. The
sources are now merged by respaldo.config itself, and only variables other than the
passphrase go through pydantic-settings' environment source. Here the old class, rebuilt
on the same fields, is the reference: for every TOML example of the documentation, the
bad and edge inputs of test_config_core and every kind of environment variable, both
give equal settings, or the same errors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from respaldo.config import Settings
from tests.unit.test_config_core import BASE, EXAMPLES, VARIANTS

pytestmark = pytest.mark.unit


class _Reference(Settings, BaseSettings):
    """Settings as it was: a BaseSettings with the sources init, environment, TOML."""

    model_config = SettingsConfigDict(
        env_prefix="RESPALDO_", env_nested_delimiter="__", extra="forbid"
    )
    __init__ = BaseSettings.__init__

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        return tuple(sources)


def _outcome(base: type[Settings], path: Path | None, values: dict[str, Any]) -> tuple[Any, ...]:
    cls: type[Settings] = type("Settings", (base,), {"toml_path": path})
    try:
        settings = cls(**values)
    except ValidationError as exc:
        return ("invalid", [(e["type"], e["loc"], e["msg"]) for e in exc.errors()])
    except SettingsError as exc:
        return ("settings error", str(exc))
    # SecretStr compares by its secret value.
    return ("loaded", settings.model_dump())


def _alike(path: Path | None, values: dict[str, Any] | None = None) -> tuple[Any, ...]:
    ours = _outcome(Settings, path, values or {})
    assert ours == _outcome(_Reference, path, values or {})
    return ours


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_every_documented_example_loads_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, text: str
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse battery")
    _alike(_write(tmp_path, text))


@pytest.mark.parametrize(("case", "text", "short"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_each_variant_loads_or_fails_alike(
    tmp_path: Path, case: str, text: str, short: bool
) -> None:
    _alike(_write(tmp_path, text))


TOP_LEVEL_CASES = [
    ("a section in capitals", BASE.replace("[catalog]", "[CATALOG]")),
    ("a key in mixed case", "Cache_Dir = '/var/cache/x'\n" + BASE),
    ("one key twice in two cases", BASE + "\n[Catalog]\nurl = 'sqlite:////tmp/second.db'\n"),
    ("an unknown key", "slack_url = 'x'\n" + BASE),
    ("an unknown key in capitals", "SLACK = 'x'\n" + BASE),
    ("a nested key in capitals", BASE.replace('url = "sqlite', 'URL = "sqlite')),
]


@pytest.mark.parametrize(("case", "text"), TOP_LEVEL_CASES, ids=[c for c, _ in TOP_LEVEL_CASES])
def test_keys_in_any_case_are_matched_alike(tmp_path: Path, case: str, text: str) -> None:
    _alike(_write(tmp_path, text))


# A table in the file that the environment and the arguments add keys to: merged key by key.
WITH_RETENTION = BASE + "\n[retention]\nkeep_weekly = 4\nkeep_monthly = 6\n"

ENVIRONMENTS: list[tuple[str, dict[str, str]]] = [
    ("nothing", {}),
    ("passphrase", {"RESPALDO_PASSPHRASE": "correct horse battery"}),
    ("passphrase in lower case", {"respaldo_passphrase": "correct horse battery"}),
    (
        "passphrase twice",
        {"RESPALDO_PASSPHRASE": "correct horse battery", "respaldo_passphrase": "other one"},
    ),
    ("empty passphrase", {"RESPALDO_PASSPHRASE": ""}),
    ("the config path", {"RESPALDO_CONFIG": "/etc/respaldo/other.toml"}),
    ("an unknown variable", {"RESPALDO_SLACK_URL": "slack://x"}),
    ("a nested key", {"RESPALDO_CATALOG__URL": "sqlite:////tmp/other.db"}),
    ("a nested key in lower case", {"respaldo_catalog__url": "sqlite:////tmp/other.db"}),
    ("a table as JSON", {"RESPALDO_CATALOG": '{"url": "sqlite:////tmp/json.db"}'}),
    (
        "a table and a key of it",
        {"RESPALDO_CATALOG": '{"url": "sqlite:////tmp/a.db"}', "RESPALDO_CATALOG__URL": "b"},
    ),
    ("an unknown nested key", {"RESPALDO_CATALOG__COLOUR": "blue"}),
    ("a number", {"RESPALDO_COMPRESSION_LEVEL": "3"}),
    ("a bad number", {"RESPALDO_COMPRESSION_LEVEL": "three"}),
    ("a boolean", {"RESPALDO_KEY_CACHE": "false"}),
    ("a path", {"RESPALDO_CACHE_DIR": "/var/cache/r"}),
    ("a list", {"RESPALDO_REPOSITORIES": '[{"name": "env", "url": "file:///srv/env"}]'}),
    ("a list that is not JSON", {"RESPALDO_REPOSITORIES": "[{"}),
    ("a deeper key", {"RESPALDO_RETENTION__KEEP_DAILY": "7"}),
    ("a deeper list", {"RESPALDO_SERVER__CORS_ORIGINS": '["https://erp.example.com"]'}),
    (
        "a passphrase in a DSN",
        {"RESPALDO_DATABASES": '[{"name": "x", "dsn": "postgresql://u:pw@h/x"}]'},
    ),
    ("a passphrase and a key", {"RESPALDO_PASSPHRASE": "correct horse", "RESPALDO_WORKERS": "3"}),
]


@pytest.mark.parametrize(("case", "variables"), ENVIRONMENTS, ids=[c for c, _ in ENVIRONMENTS])
def test_the_environment_overrides_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    _alike(_write(tmp_path, WITH_RETENTION))
    _alike(None)  # Settings(...) made directly, as the tests do


OVERRIDES: list[tuple[str, dict[str, Any]]] = [
    ("a table", {"catalog": {"url": "sqlite:////tmp/given.db"}}),
    ("a key in capitals", {"WORKERS": 5}),
    ("a list", {"repositories": [{"name": "given", "url": "file:///srv/given"}]}),
    ("an unknown key", {"colour": "blue"}),
    ("a bad value", {"workers": 0}),
    ("a key of a table", {"retention": {"keep_monthly": 2}}),
]


@pytest.mark.parametrize(("case", "values"), OVERRIDES, ids=[c for c, _ in OVERRIDES])
def test_arguments_override_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, values: dict[str, Any]
) -> None:
    monkeypatch.setenv("RESPALDO_CATALOG__URL", "sqlite:////tmp/from-env.db")
    monkeypatch.setenv("RESPALDO_RETENTION__KEEP_DAILY", "7")
    _alike(_write(tmp_path, WITH_RETENTION), values)
    monkeypatch.delenv("RESPALDO_CATALOG__URL")
    monkeypatch.delenv("RESPALDO_RETENTION__KEEP_DAILY")
    _alike(_write(tmp_path, WITH_RETENTION), values)


def test_an_ordinary_config_loads_without_pydantic_settings(tmp_path: Path) -> None:
    """The passphrase in the environment, everything else in the file: the usual
    installation loads its settings without importing pydantic-settings."""
    path = _write(tmp_path, BASE)
    code = (
        "import sys\n"
        "from respaldo.config import load_settings\n"
        f"settings = load_settings({str(path)!r})\n"
        "assert settings.repository_passphrase().get_secret_value() == 'correct horse'\n"
        "print('pydantic_settings' in sys.modules)\n"
    )
    env = {"RESPALDO_PASSPHRASE": "correct horse", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "False"
