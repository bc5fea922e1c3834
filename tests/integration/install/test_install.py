"""``make install``'s script, run for real into a temporary prefix.

What it must give: a respaldo that the PostgreSQL server's OS user can run (archive_command
and restore_command run it as that user), with the compiled chunker, linked from BINDIR;
and an upgrade that fails puts the previous installation back.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
OS_USER = "postgres"


def _install(
    prefix: Path, bindir: Path, *, source: Path = ROOT, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **(extra_env or {}),
        "PREFIX": str(prefix),
        "BINDIR": str(bindir),
        "SYSTEMD_DIR": str(bindir.parent / "systemd"),
        "SERVICE_USER": OS_USER,
    }
    return subprocess.run(
        ["bash", str(source / "scripts" / "install.sh")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )


def _as_server_user(*argv: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ("runuser", "-u", OS_USER, "--", *argv)
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path]]:
    # Not under pytest's own temporary directory: that one is private to root, and the
    # server's user must reach the installation as it reaches /opt.
    base = Path(tempfile.mkdtemp(prefix="respaldo-install-"))
    try:
        base.chmod(0o755)
        prefix, bindir = base / "opt" / "respaldo", base / "bin"
        done = _install(prefix, bindir)
        assert done.returncode == 0, done.stderr
        yield prefix, bindir
    finally:
        shutil.rmtree(base)


def test_the_server_user_runs_the_installed_respaldo(installed: tuple[Path, Path]) -> None:
    prefix, bindir = installed
    link = bindir / "respaldo"
    assert link.is_symlink() and link.resolve() == (prefix / "bin" / "respaldo").resolve()
    if os.geteuid() == 0:
        pwd.getpwnam(OS_USER)  # the test needs that user: a KeyError here is a failure
    help_run = _as_server_user(str(link), "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "wal-push" in help_run.stdout
    chunker = _as_server_user(
        str(prefix / "bin" / "python"),
        "-c",
        "import respaldo.repository.chunker as c; c.load_fastcdc(); print('compiled')",
    )
    assert chunker.stdout.strip() == "compiled", chunker.stderr


def test_the_installation_is_not_the_checkout(installed: tuple[Path, Path]) -> None:
    """A real install, not an editable one: it keeps working when the checkout goes."""
    prefix, _ = installed
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import respaldo; print(respaldo.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(prefix)


def test_a_failed_upgrade_puts_the_previous_installation_back(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    prefix, bindir = installed
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scripts").mkdir()
    (broken / "scripts" / "install.sh").write_bytes((ROOT / "scripts" / "install.sh").read_bytes())
    (broken / "pyproject.toml").write_text("this is not TOML [\n")
    done = _install(prefix, bindir, source=broken)
    assert done.returncode != 0
    assert "previous respaldo" in done.stderr
    again = _as_server_user(str(bindir / "respaldo"), "--help")
    assert again.returncode == 0, again.stderr


# A build backend that stops the install in the middle of building the new environment,
# after running BINDIR's respaldo as the server does (archive_command, restore_command).
_PROBE_BACKEND = """
import os, subprocess
from pathlib import Path

def get_requires_for_build_wheel(config_settings=None):
    argv = [os.environ["BINDIR"] + "/respaldo", "wal-push", "--help"]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    Path(os.environ["PROBE_OUT"]).write_text(f"{done.returncode}\\n{done.stdout}{done.stderr}")
    raise RuntimeError("probe: the install stops here")
"""


def test_the_previous_respaldo_runs_while_an_upgrade_builds(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """The server runs BINDIR's respaldo for every WAL segment and in every recovery
    (where "command not found" aborts it); it used to point at the half-built new
    environment for the whole install."""
    prefix, bindir = installed
    source = tmp_path / "probe"
    (source / "scripts").mkdir(parents=True)
    (source / "scripts" / "install.sh").write_bytes((ROOT / "scripts" / "install.sh").read_bytes())
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "probe"\nbackend-path = ["."]\n'
        '[project]\nname = "probe"\nversion = "0"\n'
    )
    (source / "probe.py").write_text(_PROBE_BACKEND)
    out = tmp_path / "probe.out"
    done = _install(prefix, bindir, source=source, extra_env={"PROBE_OUT": str(out)})
    assert done.returncode != 0 and "previous respaldo" in done.stderr, done.stderr
    code, said = out.read_text().split("\n", 1)
    assert code == "0", said
    assert "Usage: respaldo wal-push" in said
    # Put back as it was: the link leads to the installation again, no bridge is left.
    link = bindir / "respaldo"
    assert link.is_symlink() and link.resolve() == (prefix / "bin" / "respaldo").resolve()
    assert not Path(f"{prefix}.upgrading").exists()
    assert _as_server_user(str(link), "--help").returncode == 0


def test_the_service_unit_runs_serve_as_the_repositorys_owner(installed: tuple[Path, Path]) -> None:
    _, bindir = installed
    unit = bindir.parent / "systemd" / "respaldo.service"
    text = unit.read_text()
    assert "@" not in text.replace("multi-user.target", "")  # every placeholder filled
    assert f"User={OS_USER}" in text
    assert f"ExecStart={bindir}/respaldo serve" in text
    assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # systemd-analyze needs no running systemd to check a unit's syntax and its ExecStart.
    assert verify.returncode == 0, verify.stderr


def test_the_worker_unit_is_installed_beside_serves(installed: tuple[Path, Path]) -> None:
    """A worker machine's `respaldo worker` exits 1 when it loses the catalog's queue;
    the install wrote no unit for it, so nothing brought it back."""
    _, bindir = installed
    systemd = bindir.parent / "systemd"
    template = systemd / "respaldo-worker@.service"
    text = template.read_text()
    assert "@USER@" not in text and "@BINDIR@" not in text and "@GROUP@" not in text
    assert f"User={OS_USER}" in text
    assert f"ExecStart={bindir}/respaldo worker --queue %i" in text
    assert "Restart=always" in text
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(systemd / "respaldo-worker@site-a.service")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{systemd}:"},
    )
    assert verify.returncode == 0, verify.stderr


def test_a_config_the_server_user_cannot_read_is_told_with_the_fix(
    installed: tuple[Path, Path],
) -> None:
    """The server's user runs the installed respaldo with a config it cannot read: the
    answer names that user and the command that lets it read the file (click's own check,
    "path … is not readable", used to answer first and said neither)."""
    if os.geteuid() != 0:
        pytest.skip("only root can run respaldo as the server's user")
    prefix, bindir = installed
    # A directory the server's user can enter, a file only root reads: what a config copied
    # into /etc by root with a umask of 077 looks like.
    config = prefix.parent / "respaldo.toml"
    config.write_text("[repository]\n")
    config.chmod(0o600)
    try:
        run = _as_server_user(str(bindir / "respaldo"), "--config", str(config), "status")
    finally:
        config.unlink()
    assert run.returncode != 0
    assert f"cannot read config file {config}: Permission denied" in run.stderr, run.stderr
    assert (
        f"respaldo runs as OS user {OS_USER}, which must be able to read config file {config}: "
        f"chmod o+r {config}"
    ) in run.stderr, run.stderr
    assert "Invalid value" not in run.stderr
