"""Results of operations as a job, the page and the alerts get them, for the unit tests of
what is said about them; each test names only the figures its message is about."""

from __future__ import annotations

from respaldo.operations.verify import VerifyResult


def verify_result(
    problems: list[str], *, quarantined: int = 0, **figures: int | bool
) -> VerifyResult:
    """A verify of the ``local`` repository that read one small backup and found
    ``problems``; ``figures`` (backups, chunks, bytes, packs, packs_checked) change what it
    read."""
    read: dict[str, int | bool] = {
        "backups": 1,
        "chunks": 3,
        "bytes": 30,
        "packs": 0,
        "packs_checked": False,
        **figures,
    }
    return VerifyResult.model_validate(
        {
            "repository": "local",
            **read,
            "unreferenced_packs": 0,
            "damaged_index_files": 0,
            "problems": problems,
            "quarantined": quarantined,
            "warnings": [],
        }
    )
