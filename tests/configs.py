"""The respaldo configuration file a test (or a benchmark) writes for itself."""

from __future__ import annotations

from pathlib import Path


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
