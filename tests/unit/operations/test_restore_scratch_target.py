"""A restore target with a scratch database's name is refused, and only such a name."""

from __future__ import annotations

import pytest

from respaldo.errors import RestoreError
from respaldo.operations.restore import check_not_scratch_name


@pytest.mark.parametrize("target", ["respaldo_staging_0123abcd", "respaldo_drill_0123456789ab"])
def test_a_name_the_sweep_would_drop_is_refused(target: str) -> None:
    with pytest.raises(RestoreError) as caught:
        check_not_scratch_name(target)
    assert target in str(caught.value)
    assert "another name" in (caught.value.hint or "")
    assert "drop" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "target", ["respaldo_staging_ventas", "respaldo_drill_copia", "respaldo_staging_0123abcd_x"]
)
def test_a_name_only_starting_like_one_is_an_ordinary_target(target: str) -> None:
    check_not_scratch_name(target)
