"""open_storage: from a location URL (or path) to a store wrapped in retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from respaldo.errors import ConfigError
from respaldo.storage import open_storage, registry
from respaldo.storage.base import Storage
from respaldo.storage.local import LocalStorage
from respaldo.storage.memory import MemoryStorage
from respaldo.storage.retry import RetryingStorage

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own scheme table and memory stores."""
    monkeypatch.setattr(registry, "_SCHEMES", dict(registry._SCHEMES))
    monkeypatch.setattr(registry, "_memory_stores", {})


def _inner(store: Storage) -> Storage:
    assert isinstance(store, RetryingStorage)
    return store.inner


def _local_root(store: Storage) -> Path:
    inner = _inner(store)
    assert isinstance(inner, LocalStorage)
    return inner.root


def test_file_url(tmp_path: Path) -> None:
    store = open_storage(f"file://{tmp_path}/repo")
    assert _local_root(store) == tmp_path / "repo"
    store.put("config", b"c")
    assert (tmp_path / "repo" / "config").read_bytes() == b"c"


def test_file_url_with_localhost(tmp_path: Path) -> None:
    assert _local_root(open_storage(f"file://localhost{tmp_path}")) == tmp_path


def test_plain_absolute_path(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "repo"))
    assert _local_root(store) == tmp_path / "repo"
    assert store.location == (tmp_path / "repo").as_uri()


@pytest.mark.parametrize("directory", ["my backups", "copias de seguridad/año", "100%", "a#b?c"])
def test_paths_with_characters_that_urls_escape(tmp_path: Path, directory: str) -> None:
    path = tmp_path / directory
    assert _local_root(open_storage(str(path))) == path
    assert _local_root(open_storage(path.as_uri())) == path


def test_percent_escapes_in_file_urls_are_decoded(tmp_path: Path) -> None:
    assert _local_root(open_storage(f"file://{tmp_path}/my%20backups")) == tmp_path / "my backups"


def test_retries_zero_returns_the_bare_backend(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path), retries=0)
    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path


def test_memory_url_same_name_same_store() -> None:
    name = uuid4().hex
    first = open_storage(f"memory://{name}")
    second = open_storage(f"memory://{name}")
    other = open_storage(f"memory://{name}-other")
    assert isinstance(_inner(first), MemoryStorage)
    assert _inner(first) is _inner(second)
    assert _inner(first) is not _inner(other)
    first.put("config", b"shared")
    assert second.get("config") == b"shared"
    assert list(other.list()) == []
    assert first.location == f"memory://{name}"


@pytest.mark.parametrize("url", ["ftp://host/backups", "s4://bucket/prefix", "gopher://x"])
def test_unknown_scheme_is_a_config_error_with_a_hint(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_storage(url)
    scheme = url.split(":", 1)[0]
    assert repr(scheme) in str(info.value)
    assert url in str(info.value)
    assert "file" in info.value.hint
    assert "memory" in info.value.hint


@pytest.mark.parametrize(
    "url",
    [
        "file:relative/path",
        "file:./repo",
        "file://relative/path",  # "relative" parses as a host
        "file://backup-server/srv/repo",
        "relative/path",
        "./repo",
        "repo",
        "",
    ],
)
def test_relative_or_remote_file_locations_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_storage(url)
    assert info.value.hint


def test_a_registered_scheme_is_opened_with_its_options() -> None:
    opened: list[tuple[str, dict[str, Any]]] = []
    backend = MemoryStorage("custom")

    def opener(url: str, options: dict[str, Any]) -> Storage:
        opened.append((url, options))
        return backend

    registry.register_scheme("custom", opener)
    store = open_storage("custom://bucket/prefix", retries=2, region="eu")
    assert opened == [("custom://bucket/prefix", {"region": "eu"})]
    assert _inner(store) is backend
    with pytest.raises(ConfigError) as info:
        open_storage("nope://x")
    assert "custom" in info.value.hint
