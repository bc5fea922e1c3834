"""prune says what a collection reclaimed, and never a negative reclaim: a dry run said
"would reclaim about -8.3 KiB" when merging small packs would have grown the repository."""

from __future__ import annotations

import pytest

from respaldo.cli.prune_cmd import reclaim_words

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("reclaimed", "dry_run", "said"),
    [
        (20_684, True, "would reclaim about 20.2 KiB"),
        (0, False, "reclaimed 0 B"),
        (-8_500, True, "would grow the repository by about 8.3 KiB"),
        (-162, False, "grew the repository by 162 B"),
    ],
)
def test_a_collection_says_what_it_reclaimed_or_added(
    reclaimed: int, dry_run: bool, said: str
) -> None:
    assert reclaim_words(reclaimed, dry_run) == said
