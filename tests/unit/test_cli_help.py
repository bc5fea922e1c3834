"""``respaldo --help`` lists each command with its first sentence(s) as one paragraph."""

from __future__ import annotations

import pytest

from respaldo.cli.main import invoke

pytestmark = pytest.mark.unit


def test_the_command_list_does_not_break_sentences(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that only a hard line break breaks
    assert invoke(["--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # the table's borders stay
    assert "archive_mode and archive_command, and the repository's record" in shown
    assert "a scratch data directory and server (physical" in shown
