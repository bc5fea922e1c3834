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
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

pytestmark = pytest.mark.unit

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
UNIT = PACKAGING / "respaldo.service.in"
# A worker of a fleet (docs/scaling.md) exits 1 when it loses the catalog's queue; nothing
# brought it back before this unit, and the queue silently had no worker.
WORKER_UNIT = PACKAGING / "respaldo-worker@.service.in"


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


@pytest.mark.parametrize("unit", [UNIT, WORKER_UNIT], ids=["serve", "worker"])
@pytest.mark.parametrize("home", ["/var/lib/postgresql", "/var/lib/respaldo"])
def test_serve_under_the_unit_can_write_its_cache(unit: Path, home: str) -> None:
    settings = _settings(unit.read_text())
    cache = _default_cache_dir(_unit_environment(settings, home))
    writable = _writable(settings)
    assert any(cache.is_relative_to(p) for p in writable), (cache, writable)


def test_outside_systemd_the_cache_is_the_users() -> None:
    environment = {"PATH": os.environ["PATH"], "HOME": "/home/ana"}
    assert _default_cache_dir(environment) == PurePosixPath("/home/ana/.cache/respaldo")


_HARDENING = [
    "User",
    "Group",
    "UMask",
    "NoNewPrivileges",
    "PrivateTmp",
    "PrivateDevices",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "RestrictSUIDSGID",
    "LockPersonality",
    "RestrictRealtime",
    "StateDirectory",
    "StateDirectoryMode",
    "CacheDirectory",
    "CacheDirectoryMode",
    "ConfigurationDirectory",
    "ReadWritePaths",
    "Environment",
]


def test_the_worker_unit_restarts_a_worker_that_lost_the_catalog() -> None:
    from respaldo.config import QueueSettings

    worker = _settings(WORKER_UNIT.read_text())
    serve = _settings(UNIT.read_text())
    assert worker["ExecStart"] == ["@BINDIR@/respaldo worker --queue %i"]
    # "the worker lost the catalog's queue" is exit 1, a worker whose procrastinate stopped
    # itself exits 0: "always" brings both back, and never gives up
    # (StartLimitIntervalSec=0) however long the catalog was down.
    assert worker["Restart"] == ["always"] and worker["RestartSec"] == ["30"]
    assert worker["StartLimitIntervalSec"] == ["0"]
    # The same user and the same hardening as serve's unit.
    assert {k: worker.get(k) for k in _HARDENING} == {k: serve.get(k) for k in _HARDENING}
    # SIGTERM lets the running job finish for shutdown_timeout_seconds, then cancels and
    # records it: systemd must not SIGKILL it before.
    graceful = QueueSettings().shutdown_timeout_seconds
    assert int(worker["TimeoutStopSec"][0]) > graceful + 60


def test_the_worker_unit_verifies_as_an_instance(tmp_path: Path) -> None:
    """systemd-analyze (no running systemd needed) checks the syntax and that
    ExecStart names an executable, for the instance `respaldo-worker@site-a`."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    filled = (
        WORKER_UNIT.read_text()
        .replace("@USER@", "root")
        .replace("@GROUP@", "root")
        .replace("@BINDIR@", str(Path(sys.executable).parent))
    )
    (tmp_path / "respaldo-worker@.service").write_text(filled)
    (Path(sys.executable).parent / "respaldo").resolve(strict=True)
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "respaldo-worker@site-a.service")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    assert done.returncode == 0, done.stderr
