"""Every package of respaldo has a place in the import contracts: a new interface
(respaldo.api, respaldo.web, respaldo.scheduling) cannot appear without the contract
that keeps it on the application layer."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ENGINE = {"operations", "catalog", "repository", "storage", "postgres", "files", "notify"}
SHARED = {
    "config",
    "config_core",
    "errors",
    "domain",
    "cancellation",
    "retention",
    "privatedir",
    "childenv",
    "processes",
    "i18n",
    "phrases",
    "reasons",
    "apprise_urls",
    "lazy_exports",
    "redaction",
    "readable",
}


def _contract(name: str) -> dict[str, object]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def test_every_interface_package_is_kept_on_the_application_layer() -> None:
    package = ROOT / "src" / "respaldo"
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    contract = _contract("Interfaces reach the engine only through the application layer")
    sources = {str(m).removeprefix("respaldo.") for m in contract["source_modules"]}  # type: ignore[attr-defined]
    unplaced = names - ENGINE - SHARED - sources
    assert not unplaced, (
        f"add respaldo.{', respaldo.'.join(sorted(unplaced))} to the source_modules of the "
        "contract 'Interfaces reach the engine only through the application layer' in "
        "pyproject.toml (an interface), or to ENGINE/SHARED here (part of the engine)"
    )
    forbidden = {str(m).removeprefix("respaldo.") for m in contract["forbidden_modules"]}  # type: ignore[attr-defined]
    assert forbidden == ENGINE - {"operations"} | {
        "retention",
        "privatedir",
        "childenv",
        "processes",
    }
