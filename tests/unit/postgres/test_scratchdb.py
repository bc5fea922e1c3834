"""Which names are respaldo's scratch databases: those the sweep drops, and only those."""

from __future__ import annotations

import pytest

from respaldo.postgres.scratchdb import (
    DRILL_PREFIX,
    STAGING_PREFIX,
    is_scratch_name,
    scratch_name,
)


@pytest.mark.parametrize("prefix", [STAGING_PREFIX, DRILL_PREFIX])
def test_the_names_respaldo_makes_are_scratch_names(prefix: str) -> None:
    assert is_scratch_name(scratch_name(prefix))


@pytest.mark.parametrize(
    "name",
    [
        "respaldo_staging_ventas",
        "respaldo_drill_2024",
        "respaldo_staging_0123abcd_x",
        "respaldo_staging_0123ABCD",
        "respaldo_staging_0123abcd\n",
        "respaldo_staging_0123abcd0123",  # a drill's length after the staging prefix
        "respaldo_drill_0123abcd",
        "erp",
    ],
)
def test_names_only_like_them_are_not(name: str) -> None:
    assert not is_scratch_name(name)
