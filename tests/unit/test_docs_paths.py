"""Every file of this repository that README.md and docs/*.md name exists.

The pages send readers to the test that proves a runbook, the script that installs, the
bench that measured: a renamed or deleted file leaves the reader with a claim nobody can
check (docs/disaster-recovery.md named a test file that did not exist).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PATH = re.compile(
    r"\b((?:src/respaldo|tests|bench|scripts|sample|packaging|docs)/[A-Za-z0-9_/.-]*[A-Za-z0-9_])"
)
# What a bench writes when it runs (not kept in the repository).
_OUTPUTS = ("bench/results/",)


def named(text: str) -> set[str]:
    return {p for p in _PATH.findall(text) if not p.startswith(_OUTPUTS)}


def test_the_pages_name_files() -> None:
    found = set().union(*(named(doc.read_text()) for doc in DOCS))
    assert "scripts/install.sh" in found and len(found) > 30


def test_a_missing_file_would_be_found() -> None:
    assert named("see `tests/integration/offsite/test_nothing.py`") == {
        "tests/integration/offsite/test_nothing.py"
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_file_the_documentation_names_exists(doc: Path) -> None:
    missing = sorted(p for p in named(doc.read_text()) if not (ROOT / p).exists())
    assert not missing, f"{doc.name} names {missing}"
