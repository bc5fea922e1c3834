"""The CLI shows an application error about an argument with the option's name."""

from __future__ import annotations

import pytest

from respaldo.cli.main import invoke, option_name
from respaldo.errors import ConfigError, InvalidInput, option

pytestmark = pytest.mark.unit


def test_an_invalid_argument_is_named_by_its_option() -> None:
    error = InvalidInput("target_time", "'noon' is not an ISO 8601 time")
    assert error.rendered(option_name) == ("--target-time: 'noon' is not an ISO 8601 time", "")
    assert str(error) == "'noon' is not an ISO 8601 time"


def test_arguments_a_message_or_hint_names_are_shown_as_options() -> None:
    error = ConfigError(
        f"{option('drop_old')} only makes sense with {option('replace')}",
        hint=f"add {option('force_system_database')}; {option('with_globals')} first",
    )
    assert error.rendered(option_name) == (
        "--drop-old only makes sense with --replace",
        "add --force-system-database; --globals first",
    )
    # Elsewhere (logs, a job's recorded error, the API) the argument's own name.
    assert str(error) == "drop_old only makes sense with replace"
    assert error.message == str(error)


def test_the_cli_prints_the_rendered_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(["--config", "/nonexistent/respaldo.toml", "list"]) == 1
    assert "respaldo: error:" in capsys.readouterr().err
