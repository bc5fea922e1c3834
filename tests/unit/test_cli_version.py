"""``respaldo --version`` says which respaldo runs (after an upgrade, say): before, it was a
usage error and nothing told which version an upgrade had left running."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import respaldo

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_installed_version_and_needs_no_configuration(
    tmp_path: Path,
) -> None:
    # A process of its own with a configuration that does not exist: --version reads
    # none, opens no catalog, runs no command, and imports no command module.
    code = (
        "import sys; from respaldo.cli.entry import run; "
        "sys.argv = ['respaldo', '--config', sys.argv[1], '--version']\n"
        "try:\n    run()\nexcept SystemExit as e:\n    code = e.code\n"
        "mods = [m for m in sys.modules if m.startswith('respaldo.cli.') and m.endswith('_cmd')]\n"
        "print('MODULES', mods, code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"respaldo {importlib.metadata.version('respaldo')}", done.stdout
    assert lines[1] == "MODULES [] 0", done.stdout
    assert done.stderr == ""


def test_one_version_everywhere() -> None:
    """The distribution's version is respaldo.__version__ (pyproject reads it), which
    --version, the API's OpenAPI document and the manifests' tool version all print."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "respaldo.__version__"}
    assert importlib.metadata.version("respaldo") == respaldo.__version__
