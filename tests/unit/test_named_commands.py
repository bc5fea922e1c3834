"""Every ``'respaldo COMMAND`` a message of the product names (an error's hint, a
warning, an alert) is a command the CLI has.

A user reads these at the worst moment and types them: verify's "the manifest is not
there" once told them to run ``respaldo delete``, a command that never existed.
(tests/unit/test_docs_commands.py holds the documentation to the same rule, options
included.) Docstrings are left out: they speak to developers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from respaldo.cli.commands import BY_NAME

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[2] / "src" / "respaldo"
# A command named in a message is quoted: 'respaldo verify --all' or `respaldo list`.
_NAMED = re.compile(r"['`]respaldo ([a-z][a-z-]*)")


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def _named() -> list[tuple[str, str]]:
    named: list[tuple[str, str]] = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in skip:
                    continue
                where = f"{path.relative_to(SRC)}:{node.lineno}"
                named += [(where, m.group(1)) for m in _NAMED.finditer(node.value)]
    return named


def test_messages_name_commands_that_exist() -> None:
    named = _named()
    assert len(named) > 100  # the pattern still finds the messages' commands
    unknown = [f"{where}: respaldo {command}" for where, command in named if command not in BY_NAME]
    assert not unknown, "messages name commands the CLI does not have:\n" + "\n".join(unknown)
