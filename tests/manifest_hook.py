"""Run something at a fixed point of a real command: right after this process has read
a backup's manifest (``Repository.load_manifest``), the moment a restore or restore test
has chosen its backup. What runs there is real too (a ``respaldo prune`` in its own
process, a deletion in a session of its own): only the moment is chosen, not timed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from respaldo.repository import Repository
from respaldo.repository.manifest import Manifest

T = TypeVar("T")


@contextmanager
def after_manifest_read(backup_id: str | None, action: Callable[[], T]) -> Iterator[list[T]]:
    """Within the block, the first time any repository of this process reads the
    manifest of ``backup_id`` (None: any backup's), ``action`` runs right after; the list
    yielded gets its result (empty if no such manifest was read)."""
    load = Repository.load_manifest
    done: list[T] = []

    def load_then_act(repo: Repository, wanted: str) -> Manifest:
        manifest = load(repo, wanted)
        if backup_id in (None, wanted) and not done:
            done.append(action())
        return manifest

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Repository, "load_manifest", load_then_act)
        yield done
