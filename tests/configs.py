"""The respaldo configuration file a test (or a benchmark) writes for itself."""

from __future__ import annotations

from pathlib import Path

from respaldo.config import load_settings
from respaldo.operations.context import Context


def local_config(
    root: Path, sections: str = "", *, settings: str = "", repository: bool = True
) -> Path:
    """Write ``root/respaldo.toml`` and return its path: the top-level ``settings`` (TOML
    keys, which must come before any table), the cache directory ``root/cache``, the
    SQLite catalog ``root/catalog.db``, a first repository ``local`` at ``root/repo``
    (none without ``repository``), then ``sections``: the test's own tables."""
    text = f"""{settings}
cache_dir = "{root / "cache"}"

[catalog]
url = "sqlite:///{root / "catalog.db"}"
"""
    if repository:
        text += f"""
[[repositories]]
name = "local"
url = "file://{root / "repo"}"
"""
    path = root / "respaldo.toml"
    path.write_text(text + sections, encoding="utf-8")
    return path


def erp_config(root: Path) -> Path:
    """:func:`local_config` with one database ``erp`` whose server never answers (port 1),
    its catalog created: for the tests of what a command says from the catalog alone."""
    path = local_config(
        root,
        """
[[databases]]
name = "erp"
dsn = "postgresql://respaldo@127.0.0.1:1/erp"
""",
    )
    Context.open(load_settings(path), create=True).close()
    return path
