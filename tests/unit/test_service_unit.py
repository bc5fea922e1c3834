"""The systemd unit ``make install`` writes lets ``respaldo serve`` write where respaldo
writes by default.

The unit mounts the whole file system read-only (``ProtectSystem=strict``) but for the
paths it names, and runs as ``postgres`` (home ``/var/lib/postgresql``). The default
``cache_dir`` was ``~/.cache/respaldo``: read-only under the unit, so every scheduled backup
ran without its chunk index cache and key cache (a warning in the journal; the whole index
read from the repository and held in memory on every backup, the key derived again in
every job) although docs/install.md said nothing needed configuring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

pytestmark = pytest.mark.unit

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "respaldo.service.in"


def _settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _writable(settings: dict[str, list[str]]) -> list[PurePosixPath]:
    """What ProtectSystem=strict leaves writable: the unit's own directories."""
    assert settings["ProtectSystem"] == ["strict"]
    paths = [PurePosixPath("/var/lib") / d for d in settings.get("StateDirectory", [])]
    paths += [PurePosixPath("/var/cache") / d for d in settings.get("CacheDirectory", [])]
    paths += [PurePosixPath(p.lstrip("-")) for p in settings.get("ReadWritePaths", [])]
    return paths


def _default_cache_dir(environment: dict[str, str]) -> PurePosixPath:
    """respaldo's cache_dir in a process started with the unit's environment."""
    code = "from respaldo.config import Settings; print(Settings().cache_dir)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return PurePosixPath(done.stdout.strip())


def _unit_environment(settings: dict[str, list[str]], home: str) -> dict[str, str]:
    """The environment systemd gives the service (the parts respaldo reads)."""
    environment = {"PATH": os.environ["PATH"], "HOME": home}
    for assignment in settings.get("Environment", []):
        name, _, value = assignment.partition("=")
        environment[name] = value
    if settings.get("CacheDirectory"):
        environment["CACHE_DIRECTORY"] = f"/var/cache/{settings['CacheDirectory'][0]}"
    environment.pop("RESPALDO_CONFIG", None)  # the file is not there: the defaults
    return environment


@pytest.mark.parametrize("home", ["/var/lib/postgresql", "/var/lib/respaldo"])
def test_serve_under_the_unit_can_write_its_cache(home: str) -> None:
    settings = _settings(UNIT.read_text())
    cache = _default_cache_dir(_unit_environment(settings, home))
    writable = _writable(settings)
    assert any(cache.is_relative_to(p) for p in writable), (cache, writable)


def test_outside_systemd_the_cache_is_the_users() -> None:
    environment = {"PATH": os.environ["PATH"], "HOME": "/home/ana"}
    assert _default_cache_dir(environment) == PurePosixPath("/home/ana/.cache/respaldo")
