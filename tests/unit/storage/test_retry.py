"""RetryingStorage: which errors it retries, how often, how long it waits."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest

from respaldo.errors import (
    InvalidObjectName,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from respaldo.storage import retry
from respaldo.storage.base import BufferedSpool, ObjectInfo, Spool, Storage
from respaldo.storage.memory import MemoryStorage
from respaldo.storage.retry import RetryingStorage

pytestmark = pytest.mark.unit


class ScriptedStore:
    """A memory store whose methods first raise the errors queued for them.

    ``fail[method]`` is a list of exceptions, raised one per call before the call reaches
    the real store; ``calls[method]`` counts calls. With ``lose_answer`` a ``delete``
    really deletes, then raises its queued error, like a server whose reply was lost.
    """

    def __init__(self) -> None:
        self.inner = MemoryStorage("scripted")
        self.fail: dict[str, list[Exception]] = {}
        self.calls: dict[str, int] = {}
        self.lose_answer = False
        self.closed = 0

    def _enter(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        queued = self.fail.get(method)
        if queued and not (method == "delete" and self.lose_answer):
            raise queued.pop(0)

    @property
    def location(self) -> str:
        return "scripted://test"

    def put(self, name: str, data: bytes) -> None:
        self._enter("put")
        self.inner.put(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._enter("get")
        return self.inner.get(name, offset, length)

    def stat(self, name: str) -> ObjectInfo:
        self._enter("stat")
        return self.inner.stat(name)

    def sync(self, name: str) -> None:
        self._enter("sync")
        self.inner.sync(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.calls["list"] = self.calls.get("list", 0) + 1
        queued = self.fail.get("list")
        items = list(self.inner.list(prefix))

        def generate() -> Iterator[ObjectInfo]:
            # Fails part-way through, after yielding something, as a paginated listing
            # whose second page times out would.
            for index, item in enumerate(items):
                if queued and index == 1:
                    raise queued.pop(0)
                yield item

        return generate()

    def delete(self, name: str) -> None:
        self._enter("delete")
        self.inner.delete(name)
        queued = self.fail.get("delete")
        if self.lose_answer and queued:
            raise queued.pop(0)

    def open_spool(self, directory: str) -> Spool:
        # Through this wrapper's put: packs too pass where it looks.
        return BufferedSpool(self)

    def close(self) -> None:
        self.closed += 1


def transient(n: int) -> list[Exception]:
    return [TransientStorageError(f"timeout {i}") for i in range(n)]


@pytest.fixture
def fake() -> ScriptedStore:
    store = ScriptedStore()
    store.inner.put("a/1", b"one")
    store.inner.put("a/2", b"two")
    store.inner.put("b", b"bee")
    return store


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def store(fake: ScriptedStore, sleeps: list[float]) -> RetryingStorage:
    return RetryingStorage(fake, attempts=4, base_delay=0.5, max_delay=3.0, sleep=sleeps.append)


CALLS: dict[str, tuple[Any, Any]] = {
    # method: (call, expected result)
    "put": (lambda s: s.put("c", b"sea"), None),
    "get": (lambda s: s.get("a/1", 1, 1), b"n"),
    "stat": (lambda s: s.stat("b"), ObjectInfo("b", 3)),
    "list": (lambda s: list(s.list("a/")), [ObjectInfo("a/1", 3), ObjectInfo("a/2", 3)]),
    "delete": (lambda s: s.delete("b"), None),
}


def test_the_wrapper_is_a_storage(store: RetryingStorage, fake: ScriptedStore) -> None:
    assert isinstance(store, Storage)
    assert store.location == "scripted://test"
    store.close()
    assert fake.closed == 1


@pytest.mark.parametrize("method", list(CALLS))
def test_success_needs_no_retry(
    store: RetryingStorage, fake: ScriptedStore, sleeps: list[float], method: str
) -> None:
    call, expected = CALLS[method]
    assert call(store) == expected
    assert fake.calls[method] == 1
    assert sleeps == []


@pytest.mark.parametrize("failures", [1, 3])
@pytest.mark.parametrize("method", list(CALLS))
def test_transient_errors_are_retried_until_success(
    store: RetryingStorage, fake: ScriptedStore, sleeps: list[float], method: str, failures: int
) -> None:
    fake.fail[method] = transient(failures)
    call, expected = CALLS[method]
    assert call(store) == expected
    assert fake.calls[method] == failures + 1
    assert len(sleeps) == failures


@pytest.mark.parametrize("method", list(CALLS))
def test_transient_errors_are_reraised_after_the_last_attempt(
    store: RetryingStorage, fake: ScriptedStore, sleeps: list[float], method: str
) -> None:
    errors = transient(10)
    fake.fail[method] = list(errors)
    call, _ = CALLS[method]
    with pytest.raises(TransientStorageError) as info:
        call(store)
    assert info.value is errors[3]  # the last one, unchanged
    assert fake.calls[method] == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize(
    "error",
    [
        ObjectNotFound("gone", name="b"),
        PermanentStorageError("disk full", name="b"),
        InvalidObjectName("bad name", name="b"),
        StorageError("unsorted", name="b"),
        ValueError("negative offset"),
    ],
    ids=["not-found", "permanent", "invalid-name", "base-class", "value-error"],
)
@pytest.mark.parametrize("method", list(CALLS))
def test_other_errors_are_not_retried(
    store: RetryingStorage, fake: ScriptedStore, sleeps: list[float], method: str, error: Exception
) -> None:
    fake.fail[method] = [error]
    call, _ = CALLS[method]
    with pytest.raises(type(error)) as info:
        call(store)
    assert info.value is error
    assert fake.calls[method] == 1
    assert sleeps == []


def test_get_of_a_missing_object_is_not_retried(
    store: RetryingStorage, fake: ScriptedStore, sleeps: list[float]
) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    assert fake.calls["get"] == 1
    assert sleeps == []


@pytest.mark.parametrize(("attempts", "calls"), [(1, 1), (0, 1), (-3, 1), (2, 2)])
def test_attempts_count_every_call(
    fake: ScriptedStore, sleeps: list[float], attempts: int, calls: int
) -> None:
    fake.fail["get"] = transient(10)
    store = RetryingStorage(fake, attempts=attempts, sleep=sleeps.append)
    with pytest.raises(TransientStorageError):
        store.get("b")
    assert fake.calls["get"] == calls
    assert len(sleeps) == calls - 1


def test_backoff_doubles_up_to_the_cap(
    fake: ScriptedStore, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    bounds: list[tuple[float, float]] = []

    def upper(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", upper)
    fake.fail["get"] = transient(10)
    store = RetryingStorage(fake, attempts=6, base_delay=0.5, max_delay=3.0, sleep=sleeps.append)
    with pytest.raises(TransientStorageError):
        store.get("b")
    # Full jitter: each wait is drawn from [0, min(cap, base * 2**n)].
    assert bounds == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 3.0), (0, 3.0)]
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_is_jittered(fake: ScriptedStore, sleeps: list[float]) -> None:
    fake.fail["get"] = transient(41)
    store = RetryingStorage(fake, attempts=41, base_delay=1.0, max_delay=1.0, sleep=sleeps.append)
    with pytest.raises(TransientStorageError):
        store.get("b")
    assert all(0 <= s <= 1.0 for s in sleeps)
    assert len(set(sleeps)) > 1  # not one fixed delay


def test_a_retry_is_logged(
    store: RetryingStorage, fake: ScriptedStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail["put"] = transient(1)
    with caplog.at_level(logging.WARNING, logger=retry.__name__):
        store.put("c", b"sea")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "put c on scripted://test failed (timeout 0); retry 1/3" in message


def test_delete_whose_answer_was_lost_succeeds(
    store: RetryingStorage, fake: ScriptedStore, sleeps: list[float]
) -> None:
    # The first attempt deleted the object, then its reply timed out; the retry finds
    # nothing to delete, which is what the caller wanted.
    fake.lose_answer = True
    fake.fail["delete"] = transient(1)
    store.delete("b")
    assert fake.calls["delete"] == 2
    assert len(sleeps) == 1
    with pytest.raises(ObjectNotFound):
        fake.inner.get("b")
    assert [i.name for i in fake.inner.list()] == ["a/1", "a/2"]


def test_delete_of_a_missing_object_on_the_first_attempt_is_not_found(
    store: RetryingStorage, fake: ScriptedStore
) -> None:
    with pytest.raises(ObjectNotFound):
        store.delete("missing")
    assert fake.calls["delete"] == 1


def test_each_delete_starts_afresh(store: RetryingStorage, fake: ScriptedStore) -> None:
    # A lost answer on one delete must not turn a later delete of a missing object into a
    # success.
    fake.lose_answer = True
    fake.fail["delete"] = transient(1)
    store.delete("b")
    with pytest.raises(ObjectNotFound):
        store.delete("b")


def test_a_listing_that_fails_part_way_is_restarted_whole(
    store: RetryingStorage, fake: ScriptedStore
) -> None:
    fake.fail["list"] = transient(2)
    assert list(store.list()) == [
        ObjectInfo("a/1", 3),
        ObjectInfo("a/2", 3),
        ObjectInfo("b", 3),
    ]
    assert fake.calls["list"] == 3
