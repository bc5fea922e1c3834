"""Every ``respaldo ...`` command line the documentation shows names a command and options
that exist, spelled as the CLI spells them.

Users copy these lines: a renamed option or a command that moved under a group must
fail here, not at 3 a.m. on the reader's terminal. The lines come from the code blocks
and the inline code of README.md and docs/*.md; each is resolved against the Typer
application (sub-commands of groups included) and each ``--long`` or ``-s`` option it
names must be one of that command's (or the root's) options.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from respaldo.cli.app import app
from respaldo.cli.commands import BY_NAME

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_INLINE = re.compile(r"`(?:[a-z_]+_command = ')?(?:\S*/)?(respaldo [^`'\n]+)'?`")
_SHORT = re.compile(r"`((?:[a-z][a-z-]* ){1,2}--?[a-z][^`\n]*)`")
# A command line in a block: at the start of a line, after a prompt, sudo, env
# assignments, a pipe or `&&`, `exec`, a `ExecStart=` of a unit file or the server's
# `archive_command = '...'`.
_IN_BLOCK = re.compile(
    r"(?:^|[|;]|&&|\$ |sudo (?:-u \S+ )?|ExecStart=|exec |_command = '|(?:[A-Z_]+=\S+ )+)"
    r"\s*(?:\S*/)?(respaldo (?:[^|;&#\n]|&(?!&))*)",
    re.M,
)


def _lines(text: str) -> list[str]:
    prose = _FENCE.sub("", text)
    found = [m.group(1) for m in _INLINE.finditer(prose)]
    # The short form of prose: `restore --repository NAME`, `drill --amcheck`.
    found += [
        f"respaldo {m.group(1)}" for m in _SHORT.finditer(prose) if m.group(1).split()[0] in BY_NAME
    ]
    for block in _FENCE.findall(text):
        block = block.replace("\\\n", " ")  # continued lines are one command
        found += [m.group(1) for m in _IN_BLOCK.finditer(block)]
    return found


# Labels of the key derivation (HKDF "info" strings), not command lines.
_LABELS = {"chunk id key", "chunker seed", "config key", "encryption key"}


def _documented() -> list[tuple[str, str]]:
    return [
        (doc.name, line.strip())
        for doc in DOCS
        for line in _lines(doc.read_text())
        if line.strip().removeprefix("respaldo ") not in _LABELS
    ]


DOCUMENTED = _documented()


def _words(line: str) -> list[str]:
    # Placeholders and optional parts as the docs write them: [--queue NAME ...], A|B.
    line = re.sub(r"\[|\]|{|}|\.\.\.", " ", line).replace("…", "VALUE")
    try:
        words = shlex.split(line, comments=False)
    except ValueError:  # an apostrophe in prose after the command
        words = line.split()
    return [w.rstrip(".,:)") for w in words[1:]]


def _options(command: Any) -> set[str]:
    return {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


@functools.cache
def _root() -> Any:
    """The CLI's click group, built once: each build starts with no command loaded, and
    loading one builds it from its functions' signatures again (about 30 ms, a group's
    several times that), which for the 390-odd documented lines took 12-18 s of the suite."""
    return typer.main.get_command(app)


def _resolve(words: list[str]) -> tuple[list[str], list[tuple[str, set[str]]]]:
    """The command path the words reach, and the options each level accepts."""
    command: Any = _root()
    context: Any = None  # the groups' get_command do not read it
    path: list[str] = []
    levels = [("respaldo", _options(command))]
    rest = list(words)
    while isinstance(command, typer.core.TyperGroup) and rest:
        word = rest[0]
        if word.startswith("-"):
            rest.pop(0)
            takes_value = any(
                word in p.opts and not getattr(p, "is_flag", False) for p in command.params
            )
            if takes_value and rest:
                rest.pop(0)  # `-c /etc/respaldo/respaldo.toml`
            continue
        sub = command.get_command(context, word)
        if sub is None:
            raise AssertionError(f"no command {' '.join([*path, word])!r}")
        rest.pop(0)
        path.append(word)
        command = sub
        levels.append((" ".join(path), _options(command)))
    return path, levels


def _problems(line: str) -> list[str]:
    words = _words(line)
    if not words or not re.fullmatch(r"-.*|[a-z][a-z-]*", words[0]):
        return []  # an alert or status line that starts with "respaldo CRITICAL ..."
    try:
        path, levels = _resolve(words)
    except AssertionError as exc:
        return [str(exc)]
    known = set().union(*(options for _, options in levels))
    named = [w.split("=", 1)[0] for w in words if re.fullmatch(r"--?[a-z][a-z0-9-]*(=.*)?", w)]
    return [f"respaldo {' '.join(path)} has no option {o}" for o in named if o not in known]


def test_the_documentation_shows_command_lines() -> None:
    assert len(DOCUMENTED) > 150
    assert ("install.md", "respaldo init") in DOCUMENTED


@pytest.mark.parametrize(
    "line",
    [
        "respaldo restore BACKUP_ID --database erp --no-such-option",
        "respaldo keys exportt --output key.json",
        "respaldo backup erp --typ full",
    ],
)
def test_a_made_up_command_or_option_is_found(line: str) -> None:
    assert _problems(line)


def test_every_documented_command_line_exists() -> None:
    wrong = sorted({f"{doc}: {line}\n    {p}" for doc, line in DOCUMENTED for p in _problems(line)})
    assert not wrong, "\n".join(wrong)


def _cli_bullet() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("- **CLI**")
    return " ".join(text[start : text.index("\n- ", start + 1)].split())


def test_the_readme_lists_every_command() -> None:
    bullet = _cli_bullet()
    listed: set[tuple[str, str | None]] = set()
    for span in re.findall(r"`([a-z][a-z |/-]*)`", bullet):
        words = span.split()
        subs = words[1].split("|") if len(words) > 1 else [None]
        listed |= {(words[0], s) for s in subs}
        if "/" in span:  # `pin/unpin`
            listed |= {(w, None) for w in span.split("/")}
    root: Any = typer.main.get_command(app)
    context: Any = None  # the groups' get_command and list_commands do not read it
    every: set[tuple[str, str | None]] = set()
    for name in BY_NAME:
        command = root.get_command(context, name)
        if isinstance(command, typer.core.TyperGroup) and (name, None) not in listed:
            # A group named alone (`user`) stands for its commands; else each one named.
            every |= {(name, s) for s in command.list_commands(context)}
        else:
            every.add((name, None))
    missing = sorted(f"{c} {s or ''}".strip() for c, s in every - listed)
    assert not missing, f"README.md's CLI list lacks {missing}"
