"""List the English texts respaldo may store as a reason that no phrase of
:mod:`respaldo.reasons` recognises: what a Spanish page and Spanish alerts show in English.

Usage: ``.venv/bin/python scripts/untranslated_reasons.py [--all]`` (``--all`` lists the
recognised ones too, marked OK). A candidate is a literal or f-string given as the message
or hint of a :class:`~respaldo.errors.RespaldoError` subclass (a failed job stores
``str(error)``; alerts carry the hint), as an ``error=``/``problem=``/``reason=`` argument,
or assigned to an ``error``/``error_message`` attribute. Each value becomes ``{}``, and a
candidate is recognised when :func:`respaldo.reasons.reason` says it in Spanish with its
values as ``X`` or ``7``. A heuristic to find what to translate, not a gate: a message
put together from variables shows as ``{}`` where they go (and may then be reported
though recognised: test it with the producer's own code, tests/unit/test_reasons.py), and
a message built elsewhere (a dataclass, a helper's return) is not seen at all.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import respaldo
from respaldo import errors, reasons
from respaldo.i18n import translations

STORED = {"error", "error_message", "reason", "problem"}
VALUE = "\x00"


def _error_classes() -> set[str]:
    for module in pkgutil.walk_packages(respaldo.__path__, "respaldo."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # an optional dependency missing: its errors are still seen
            print(f"{module.name} not imported: {exc}", file=sys.stderr)
    found = {"RespaldoError"}
    todo: list[type[errors.RespaldoError]] = [errors.RespaldoError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub.__name__)
            todo.append(sub)
    return found


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _template(node: ast.expr, constants: dict[str, str]) -> str | None:
    """The text ``node`` writes, each value as :data:`VALUE`; None if it writes none."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else VALUE
            for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left, constants), _template(node.right, constants)
        if left is None and right is None:
            return None
        return (left if left is not None else VALUE) + (right if right is not None else VALUE)
    if isinstance(node, ast.Call) and _called(node) in ("Phrase", "N_") and node.args:
        text = _template(node.args[0], constants)
        return None if text is None else re.sub(r"\{\w+\}", VALUE, text)
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def candidates(root: Path, classes: set[str]) -> list[tuple[str, int, str, str]]:
    """(module, line, how, template) of each text a module may store."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants: dict[str, str] = {}
        for top in tree.body:
            if isinstance(top, ast.Assign) and len(top.targets) == 1:
                target = top.targets[0]
                text = _template(top.value, {})
                if isinstance(target, ast.Name) and text:
                    constants[target.id] = text
        for node in ast.walk(tree):
            said: list[tuple[str, ast.expr]] = []
            if isinstance(node, ast.Call):
                name = _called(node)
                if name in classes:
                    args = node.args[1:] if name == "InvalidInput" else node.args[:1]
                    said += [(name, a) for a in args]
                    said += [("hint", k.value) for k in node.keywords if k.arg == "hint"]
                said += [(f"{k.arg}=", k.value) for k in node.keywords if k.arg in STORED]
            elif isinstance(node, ast.Assign):
                said += [
                    (f".{t.attr} =", node.value)
                    for t in node.targets
                    if isinstance(t, ast.Attribute) and t.attr in ("error", "error_message")
                ]
            for how, value in said:
                text = _template(value, constants)
                if text is not None and len(text.replace(VALUE, "")) >= 12:
                    module = path.relative_to(root).as_posix()
                    found.append((module, value.lineno, how, text))
    return found


def recognised(text: str) -> bool:
    spanish = translations("es").gettext
    return any(
        reasons.reason(sample, spanish) != sample
        for sample in (text.replace(VALUE, "X"), text.replace(VALUE, "7"))
    )


def main() -> int:
    everything = "--all" in sys.argv[1:]
    root = Path(respaldo.__file__).parent
    seen: set[str] = set()
    missing = 0
    for module, line, how, text in candidates(root, _error_classes()):
        if text in seen:
            continue
        seen.add(text)
        ok = recognised(text)
        missing += not ok
        if everything or not ok:
            print(f"{'OK' if ok else 'NO'} {module}:{line} [{how}] {text.replace(VALUE, '{}')}")
    print(f"{missing} of {len(seen)} not recognised", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
