"""Names a package re-exports, imported from their modules when first used.

``respaldo.postgres`` and ``respaldo.repository`` re-export the names their users need,
but importing every module behind them at the package's import would make the smallest
process (``wal-push``, ``--help``) pay for psycopg, the writer and garbage collection.
A package sets ``__getattr__ = resolver(__name__, WHERE)`` (PEP 562) with a table of
which module holds each name; the name is imported on first use and kept in the
package's namespace, so later uses are plain attribute reads.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def resolver(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: ``where`` maps each name to its module."""

    def lookup(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return lookup
