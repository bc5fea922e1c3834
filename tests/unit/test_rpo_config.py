"""``[rpo]`` and ``[databases.rpo]``: the thresholds of ``respaldo status`` and the watchdog,
checked when the config is loaded, with the offending key named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.errors import ConfigError

pytestmark = pytest.mark.unit

BASE = """
[catalog]
url = "sqlite:////tmp/never-created/catalog.db"

[[repositories]]
name = "local"
url = "file:///srv/respaldo/repo"

[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1/erp"

[[databases]]
name = "nomina"
dsn = "postgresql://respaldo@127.0.0.1/nomina"
"""


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(text)
    return path


def test_the_defaults_are_the_specifications(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, BASE))
    rpo = settings.rpo_for("erp")
    assert rpo.full == timedelta(hours=26)
    assert rpo.physical == timedelta(hours=8)
    # 38, not the specification's 35: first Sundays can be 35 days (and an hour) apart.
    assert rpo.restore_test == timedelta(days=38)
    assert settings.rpo.watchdog_minutes == 5


def test_a_database_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    text = BASE.replace(
        'dsn = "postgresql://respaldo@127.0.0.1/nomina"',
        'dsn = "postgresql://respaldo@127.0.0.1/nomina"\n'
        "[databases.rpo]\nfull_hours = 50\nrestore_test_days = 100\n",
    )
    text += "\n[rpo]\nfull_hours = 30\nphysical_hours = 2.5\n"
    settings = load_settings(_config(tmp_path, text))
    erp, nomina = settings.rpo_for("erp"), settings.rpo_for("nomina")
    assert (erp.full, erp.physical, erp.restore_test) == (
        timedelta(hours=30),
        timedelta(hours=2.5),
        timedelta(days=38),
    )
    assert (nomina.full, nomina.physical, nomina.restore_test) == (
        timedelta(hours=50),
        timedelta(hours=2.5),
        timedelta(days=100),
    )


@pytest.mark.parametrize(
    ("section", "value", "named"),
    [
        ("[rpo]\nfull_hours", "0", "rpo.full_hours"),
        ("[rpo]\nphysical_hours", "-7", "rpo.physical_hours"),
        ("[rpo]\nrestore_test_days", '"a month"', "rpo.restore_test_days"),
        ("[rpo]\nfull_hours", "nan", "rpo.full_hours"),
        ("[rpo]\nfull_hours", "inf", "rpo.full_hours"),
        ("[rpo]\nwatchdog_minutes", "0", "rpo.watchdog_minutes"),
        ("[rpo]\nfull_hourz", "26", "rpo.full_hourz"),
        ("[rpo]\nstandby_lock_wait_minutes", "0", "rpo.standby_lock_wait_minutes"),
        ("[rpo]\nstandby_lock_wait_minutes", "inf", "rpo.standby_lock_wait_minutes"),
    ],
)
def test_bad_rpo_values_are_refused_with_the_key_named(
    tmp_path: Path, section: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, f"{BASE}\n{section} = {value}\n"))
    assert named in str(caught.value)


def test_a_bad_per_database_rpo_names_the_database_entry(tmp_path: Path) -> None:
    text = BASE + "[databases.rpo]\nphysical_hours = 0\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, text))
    assert "databases.1.rpo.physical_hours" in str(caught.value)


def test_a_standby_backups_lock_wait_is_its_own_and_per_database(tmp_path: Path) -> None:
    """``standby_lock_wait_minutes`` (how long a logical backup through a standby waits
    for a lock behind WAL replay) is not ``standby_lag_minutes``: set apart, a test of
    the stuck path can wait a moment while the lag lets the backup begin."""
    text = BASE.replace(
        'dsn = "postgresql://respaldo@127.0.0.1/nomina"',
        'dsn = "postgresql://respaldo@127.0.0.1/nomina"\n'
        "[databases.rpo]\nstandby_lock_wait_minutes = 0.5\n",
    )
    settings = load_settings(_config(tmp_path, text))
    assert settings.rpo_for("erp").standby_lock_wait == timedelta(minutes=5)
    assert settings.rpo_for("nomina").standby_lock_wait == timedelta(seconds=30)
    assert settings.rpo_for("nomina").standby_lag == timedelta(minutes=5)
