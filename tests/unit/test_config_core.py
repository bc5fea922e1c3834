"""The WAL commands' config loader (respaldo.config_core) against the full one.

``load_wal_settings`` must give what ``load_settings(...).wal_settings()`` gives, or the
same ConfigError, for every example config in the documentation and for bad input in
every key the WAL commands use; it differs only by not looking at the keys they do not
use. And it must really be a short cut (no pydantic) for an ordinary config, or it would
be equal only because it always fell back to the full loader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.startup_bench import write_config as bench_config

from respaldo import config_core
from respaldo.config import (
    DatabaseSettings,
    RepositorySettings,
    Settings,
    load_settings,
)
from respaldo.config_core import (
    DATABASE_KEYS,
    REPOSITORY_KEYS,
    SETTINGS_KEYS,
    WalSettings,
    load_wal_settings,
    read_config_file,
)
from respaldo.errors import ConfigError
from tests.unit.operations.support import write_config as installation_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

BASE = """
passphrase_file = "/etc/respaldo/passphrase"

[catalog]
url = "sqlite:////tmp/never-created/catalog.db"

[[repositories]]
name = "local"
url = "file:///srv/respaldo/repo"

[[databases]]
name = "erp"
dsn = "postgresql://backup@db.internal/erp"
"""


def _examples() -> list[tuple[str, str]]:
    """Every TOML block of the README and docs/*.md, with where it comes from."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)
        for i, block in enumerate(blocks):
            # Indented blocks (inside a list item) are dedented as a reader would.
            lines = block.splitlines()
            indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
            found.append((f"{doc.name}#{i}", "\n".join(x[indent:] for x in lines) + "\n"))
    return found


EXAMPLES = _examples()


def _outcome(load: Any) -> tuple[str, Any, Any]:
    try:
        return ("loaded", load(), None)
    except ConfigError as exc:
        return ("refused", str(exc), exc.hint)


def _both(path: Path) -> tuple[tuple[str, Any, Any], tuple[str, Any, Any]]:
    full = _outcome(lambda: load_settings(path, check_urls=False).wal_settings())
    short = _outcome(lambda: load_wal_settings(path))
    return full, short


def _took_short_cut(path: Path) -> bool:
    try:
        read, data = read_config_file(path)
    except ConfigError:
        return False  # refused before either loader looks at a key
    try:
        config_core._short_cut(read, data, os.environ)
    except config_core._Unsure:
        return False
    return True


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(text)
    return path


def test_the_documentation_has_examples() -> None:
    assert len(EXAMPLES) >= 8
    assert any("[[repositories]]" in text for _, text in EXAMPLES)


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_every_documented_example_loads_alike(tmp_path: Path, where: str, text: str) -> None:
    full, short = _both(_write(tmp_path, text))
    assert full[0] == "loaded", f"{where} does not load: {full[1]}"
    assert short == full


def test_the_installations_of_the_tests_and_benchmarks_take_the_short_cut(
    tmp_path: Path,
) -> None:
    for path in (installation_config(tmp_path), bench_config(tmp_path, key_cache=False)):
        full, short = _both(path)
        assert full[0] == "loaded"
        assert short == full
        assert _took_short_cut(path)


def test_the_key_sets_are_the_models_fields() -> None:
    assert set(Settings.model_fields) == SETTINGS_KEYS
    assert set(RepositorySettings.model_fields) == REPOSITORY_KEYS
    assert set(DatabaseSettings.model_fields) == DATABASE_KEYS


def test_the_defaults_are_the_full_loaders(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    settings = load_wal_settings(path)
    assert _took_short_cut(path)
    assert settings == load_settings(path).wal_settings()
    assert (settings.compression_level, settings.key_cache) == (1, True)
    assert settings.cache_dir == config_core.DEFAULT_CACHE_DIR
    assert Settings.model_fields["cache_dir"].default is config_core.DEFAULT_CACHE_DIR


def _with_repository(extra: str) -> str:
    return BASE + f'\n[[repositories]]\nname = "second"\nurl = "s3://bucket/prefix"\n{extra}\n'


# Each: the base config with a change in a key the WAL commands use. Plainly valid ones
# must take the short cut (True); the others, valid or not, must come out alike.
VARIANTS: list[tuple[str, str, bool]] = [
    ("level 22", "compression_level = 22\n" + BASE, True),
    ("level 0", "compression_level = 0\n" + BASE, False),
    ("level 23", "compression_level = 23\n" + BASE, False),
    ("level as text", 'compression_level = "3"\n' + BASE, False),
    ("level as float", "compression_level = 3.0\n" + BASE, False),
    ("level as float with a fraction", "compression_level = 3.5\n" + BASE, False),
    ("level as bool", "compression_level = true\n" + BASE, False),
    ("no key cache", "key_cache = false\n" + BASE, True),
    ("key cache as text", 'key_cache = "yes"\n' + BASE, False),
    ("key cache as int", "key_cache = 1\n" + BASE, False),
    ("cache dir", 'cache_dir = "/var/cache/respaldo"\n' + BASE, True),
    ("relative cache dir", 'cache_dir = "cache"\n' + BASE, True),
    ("cache dir as number", "cache_dir = 5\n" + BASE, False),
    ("empty cache dir", 'cache_dir = ""\n' + BASE, False),
    ("passphrase file as number", "passphrase_file = 5\n" + BASE.split("\n", 2)[2], False),
    ("a misspelt top-level key", "key_cahce = false\n" + BASE, False),
    ("a passphrase in the file", 'passphrase = "secret words"\n' + BASE, False),
    ("no repository", BASE.replace("[[repositories]]", "[repositoriez]"), False),
    ("repositories not tables", 'repositories = ["x"]\n' + BASE.split("[[", 1)[0], False),
    ("an s3 repository", _with_repository('endpoint_url = "https://s3.example.net"'), True),
    (
        "s3 options",
        _with_repository(
            'region = "eu-west-1"\nprofile = "backup"\naccess_key_id = "AKIA"\n'
            'secret_access_key_file = "/etc/respaldo/s3"\nstorage_class = "STANDARD_IA"\n'
            'server_side_encryption = "aws:kms"\nsse_kms_key_id = "k"'
        ),
        True,
    ),
    ("timeouts", _with_repository("connect_timeout = 10\nread_timeout = 2.5"), True),
    ("timeout 0", _with_repository("connect_timeout = 0"), False),
    ("timeout too long", _with_repository("read_timeout = 3601"), False),
    ("timeout as text", _with_repository('read_timeout = "10"'), False),
    ("timeout nan", _with_repository("read_timeout = nan"), False),
    (
        "object lock",
        _with_repository('object_lock_mode = "GOVERNANCE"\nobject_lock_days = 7'),
        False,
    ),
    ("object lock days alone", _with_repository("object_lock_days = 7"), False),
    ("object lock on a directory", BASE + 'object_lock_mode = "GOVERNANCE"\n', False),
    ("a misspelt repository key", _with_repository('endpoint = "https://x"'), False),
    ("a repository name with a space", BASE.replace('"local"', '"my repo"'), False),
    ("a repository name as number", BASE.replace('"local"', "7"), False),
    ("a repository without url", BASE.replace('url = "file:///srv/respaldo/repo"', ""), False),
    ("a url as number", BASE.replace('"file:///srv/respaldo/repo"', "5"), False),
    (
        "two repositories named alike",
        BASE + '\n[[repositories]]\nname = "local"\nurl = "file:///srv/other"\n',
        False,
    ),
    (
        "one place spelled twice",
        BASE + '\n[[repositories]]\nname = "again"\nurl = "/srv/./respaldo/repo/"\n',
        False,
    ),
    (
        "a database without dsn",
        BASE.replace('dsn = "postgresql://backup@db.internal/erp"', ""),
        False,
    ),
    ("a password in the dsn", BASE.replace("backup@", "backup:pw@"), False),
    (
        "a password= in the dsn",
        BASE.replace('dsn = "postgresql://backup@db.internal/erp"', 'dsn = "host=db password=x"'),
        False,
    ),
    ("a database name with a dot", BASE.replace('"erp"', '"erp.x"'), False),
    ("a misspelt database key", BASE + "retention_dayz = 3\n", False),
    (
        "two databases named alike",
        BASE + '\n[[databases]]\nname = "erp"\ndsn = "postgresql://db2/erp"\n',
        False,
    ),
    (
        "two databases",
        BASE + '\n[[databases]]\nname = "crm"\ndsn = "postgresql://db2/crm"\n',
        True,
    ),
    (
        "notification targets",
        BASE + '\n[[notifications.targets]]\nname = "hook"\nurl = "json://127.0.0.1/x"\n',
        True,
    ),
    ("notifications not a table", "notifications = 5\n" + BASE, False),
    ("targets not a list", BASE + "\n[notifications]\ntargets = 5\n", False),
]


@pytest.mark.parametrize(("case", "text", "short"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_each_key_the_wal_commands_use_loads_or_fails_alike(
    tmp_path: Path, case: str, text: str, short: bool
) -> None:
    path = _write(tmp_path, text)
    full, quick = _both(path)
    assert quick == full
    assert _took_short_cut(path) is short


@pytest.mark.parametrize(
    ("case", "variables", "short"),
    [
        ("passphrase", {"RESPALDO_PASSPHRASE": "correct horse battery"}, True),
        ("passphrase in lower case", {"respaldo_passphrase": "correct horse battery"}, True),
        ("empty passphrase", {"RESPALDO_PASSPHRASE": ""}, False),
        ("level", {"RESPALDO_COMPRESSION_LEVEL": "3"}, False),
        ("bad level", {"RESPALDO_COMPRESSION_LEVEL": "0"}, False),
        ("no key cache", {"RESPALDO_KEY_CACHE": "false"}, False),
        ("cache dir", {"RESPALDO_CACHE_DIR": "/var/cache/r"}, False),
        ("passphrase file", {"RESPALDO_PASSPHRASE_FILE": "/etc/r/p"}, False),
        (
            "repositories",
            {"RESPALDO_REPOSITORIES": '[{"name": "env", "url": "file:///srv/env"}]'},
            False,
        ),
        ("bad repositories", {"RESPALDO_REPOSITORIES": "[{"}, False),
        ("databases", {"RESPALDO_DATABASES": '[{"name": "x", "dsn": "postgresql:///x"}]'}, False),
        ("a notification key", {"RESPALDO_NOTIFICATIONS__LANGUAGE": "es"}, False),
        ("the catalog", {"RESPALDO_CATALOG__URL": "sqlite:////tmp/other.db"}, True),
        ("an unknown variable", {"RESPALDO_SLACK_URL": "slack://x"}, True),
    ],
)
def test_the_environment_overrides_alike(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    variables: dict[str, str],
    short: bool,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    path = _write(tmp_path, BASE)
    full, quick = _both(path)
    assert quick == full
    assert _took_short_cut(path) is short


def test_a_passphrase_from_the_environment_is_kept_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", "correct horse battery")
    settings = load_wal_settings(_write(tmp_path, BASE))
    assert "correct horse" not in repr(settings)
    assert settings.repository_passphrase().get_secret_value() == "correct horse battery"


def test_the_passphrase_file_is_read_alike(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery\n")
    secret.chmod(0o600)
    path = _write(tmp_path, f'passphrase_file = "{secret}"\n' + BASE.split("\n", 2)[2])
    wal, full = load_wal_settings(path), load_settings(path)
    assert (
        wal.repository_passphrase().get_secret_value()
        == full.repository_passphrase().get_secret_value()
    )
    secret.chmod(0o644)
    refused = [_outcome(s.repository_passphrase) for s in (wal, full)]
    assert refused[0] == refused[1]
    assert refused[0][0] == "refused" and "readable by group or others" in refused[0][1]


def test_the_file_is_refused_alike_before_anything_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert _outcome(lambda: load_wal_settings(missing)) == _outcome(lambda: load_settings(missing))
    broken = _write(tmp_path, "[[repositories]\n")
    assert _outcome(lambda: load_wal_settings(broken)) == _outcome(lambda: load_settings(broken))
    assert _outcome(lambda: load_wal_settings(None)) == _outcome(lambda: load_settings(None))


def test_mistakes_outside_the_wal_keys_do_not_stop_wal_archiving(tmp_path: Path) -> None:
    """A mistake in a section the WAL commands do not use stops every other command, but
    not WAL archiving; they read what the rest of the file would give them."""
    bad = _write(tmp_path, BASE + '\n[schedules]\nfull = 5\n[server]\nlisten = "nowhere"\n')
    with pytest.raises(ConfigError, match=r"schedules\.full"):
        load_settings(bad)
    good = tmp_path / "good.toml"
    good.write_text(BASE)
    settings = load_wal_settings(bad)
    assert settings == WalSettings(**{**load_wal_settings(good).__dict__, "config_path": bad})


def test_an_ordinary_config_loads_without_pydantic(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    code = (
        "import sys\n"
        "from respaldo.config_core import load_wal_settings\n"
        f"load_wal_settings({str(path)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('pydantic')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["erp\n", "erp\r\n", "-erp", "erp.x", "e" * 64, ""])
def test_a_name_with_anything_outside_its_characters_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="names are 1-63"):
        config_core.check_name(name)
