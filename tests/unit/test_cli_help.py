"""``respaldo --help`` lists each command with its first sentence(s) as one paragraph."""

from __future__ import annotations

import re
from typing import Any

import pytest

from respaldo.cli.commands import BY_NAME, COMMANDS
from respaldo.cli.lazy import load_command
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


_SECTION = re.compile(r"\[([a-z][a-z_.]*)\]")
"""A configuration section as help texts name it (``[server] listen``), or a table
(``[[notifications.targets]]``): Rich reads ``[server]`` as a style tag and drops it
unless it is escaped (``\\[server]``)."""


def _texts(command: Any) -> list[str]:
    """The help a command's source gives: its own, its options', its subcommands'."""
    texts = [command.help or "", command.short_help or ""]
    texts += [getattr(param, "help", None) or "" for param in command.params]
    for sub in getattr(command, "commands", {}).values():
        texts += [sub.help or "", sub.short_help or ""]
    return texts


def _commands() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for entry in COMMANDS:
        command = load_command(entry.name)
        paths.append((entry.name,))
        paths += [(entry.name, sub) for sub in getattr(command, "commands", {})]
    return paths


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_help_shows_the_configuration_sections_it_names(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    command: Any = load_command(path[0])
    for name in path[1:]:
        command = command.commands[name]
    named = {m.group(0) for text in _texts(command) for m in _SECTION.finditer(text)}
    if len(path) == 1:
        named |= {m.group(0) for m in _SECTION.finditer(BY_NAME[path[0]].help)}
    assert invoke([*path, "--help"]) == 0
    shown = capsys.readouterr().out
    missing = sorted(section for section in named if section not in shown)
    assert not missing, f"respaldo {' '.join(path)} --help drops {missing}:\n{shown}"
