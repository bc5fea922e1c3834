"""docs/reliability.md's table says on which Python the fault table ran, and how long."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).parents[2] / "scripts" / "faults_table.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faults_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(name: str, index: int, result: str, seconds: str) -> dict[str, str]:
    return {
        "name": name,
        "index": str(index),
        "operation": "backup",
        "fault": "kill -9",
        "expected": "fails clearly",
        "observed": "failed: x | y",
        "result": result,
        "seconds": seconds,
        "python": "3.11.2 (CPython, /usr/bin/python3.11)",
        "at": "2026-12-04T21:02:00+00:00",
    }


def test_the_table_names_the_python_and_the_time(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for row in (_row("b", 1, "FAIL", "20.5"), _row("a", 0, "pass", "10.0")):
        (results / f"{row['name']}.json").write_text(json.dumps(row))
    output = tmp_path / "reliability.md"
    assert _script().main(["faults_table.py", str(results), str(output)]) == 0
    text = output.read_text()
    assert "1 of 2 scenarios passed" in text
    assert "Python 3.11.2 (CPython, /usr/bin/python3.11)" in text
    assert "30.5 s of scenario time" in text
    assert text.index("`a`") < text.index("`b`")
    assert "failed: x \\| y" in text
