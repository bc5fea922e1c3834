"""The CLI shows an application error about an argument with the option's name."""

from __future__ import annotations

import pytest

from respaldo.cli.main import error_message
from respaldo.errors import ConfigError, InvalidInput

pytestmark = pytest.mark.unit


def test_an_invalid_argument_is_named_by_its_option() -> None:
    error = InvalidInput("target_time", "'noon' is not an ISO 8601 time")
    assert error_message(error) == "--target-time: 'noon' is not an ISO 8601 time"
    assert error_message(ConfigError("no database erp")) == "no database erp"
