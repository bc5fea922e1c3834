"""docs/configuration.md documents every configuration key, and only keys that exist.

Each section of the page (``## `[server]` ``, ``### `[[notifications.targets]]` ``, the
top level) is compared both ways with the fields of its pydantic model in
respaldo.config: a key in a table or TOML example of the page that the model lacks would
be refused by the loader (the sections forbid unknown keys), and a field the page never
names is a setting nobody can find.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from respaldo import config

pytestmark = pytest.mark.unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# Secrets have a field each but are never written in the file: the page names them once,
# in its first lines, as what the loader refuses there (and what the environment gives).
_SECRETS = {("", "passphrase"), ("repositories", "password"), ("databases", "password")}
_SECRETS |= {("repositories", "secret_access_key")}

_HEADING = re.compile(r"^#+ .*?`\[\[?([a-z_.]+)\]\]?`|^#+ Top level", re.M)
_SWITCH = re.compile(r"^`\[\[?([a-z_.]+)\]\]?`:$")
_ROW = re.compile(r"^\| ([^|]*) \|")
_OWN = "A database can have its own "


def _model(section: str) -> type[BaseModel]:
    model: Any = config.Settings
    for part in [p for p in section.split(".") if p]:
        model = _inner(model.model_fields[part].annotation)
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


def _inner(annotation: Any) -> Any:
    """The model in ``X``, ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner(arg)
        if found is not None:
            return found
    return None


def _toml_keys(prefix: str, table: dict[str, Any]) -> set[str]:
    keys = set()
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        keys.add(name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict):
                keys |= _toml_keys(name, item)
    return keys


def documented() -> dict[str, set[str]]:
    """Documented keys, by dotted section ('' the top level): tables and TOML examples."""
    found: dict[str, set[str]] = {}
    section: str | None = None
    text = PAGE.read_text()
    for line in text.splitlines():
        heading = _HEADING.match(line) or _SWITCH.match(line)
        if heading:
            section = heading.group(1) or ""
            found.setdefault(section, set())
            continue
        if line.startswith("#"):
            continue  # a sub-heading without a section of its own: still the same table
        row = _ROW.match(line)
        if row and section is not None and not row.group(1).startswith(("key", "---")):
            for key in re.findall(r"`([a-z_.]+)`", row.group(1)):
                inner, _, name = key.rpartition(".")  # file_sets' `rpo.files_hours`
                found.setdefault(".".join(filter(None, (section, inner))), set()).add(name)
        if line.startswith(_OWN) and section is not None:
            # "A database can have its own `full`, `incremental` and `restore_test`:"
            # (the sentence may run on over the next lines; it ends at ':' or ';')
            own = f"databases.{section}"
            sentence = text[text.index(line) :].split(":")[0].split(";")[0]
            found.setdefault(own, set()).update(re.findall(r"`([a-z_]+)`", sentence))
    for block in re.findall(r"```toml\n(.*?)```", PAGE.read_text(), re.S):
        for key in _toml_keys("", tomllib.loads(block)):
            section, _, name = key.rpartition(".")
            found.setdefault(section, set()).add(name)
    # "Overrides for one database, one kind, or both": every [retention] rule, per database
    # and kind; clock_check_days is no rule but the whole catalog's (the newest backup of
    # any database tells the time).
    found["retention.overrides"] |= found["retention"] - {"overrides", "clock_check_days"}
    return found


def fields(section: str) -> set[str]:
    names = set(_model(section).model_fields)
    nested = {n for n in names if _inner(_model(section).model_fields[n].annotation)}
    return names - nested


DOCUMENTED = documented()


def test_the_page_has_the_sections() -> None:
    assert {"", "server", "server.erp_jwt", "drill", "databases.validations"} <= set(DOCUMENTED)
    assert "keep_days" in DOCUMENTED["jobs"]


@pytest.mark.parametrize("section", sorted(DOCUMENTED))
def test_every_documented_key_exists(section: str) -> None:
    model = _model(section)
    unknown = {k.split(".")[0] for k in DOCUMENTED[section]} - set(model.model_fields)
    assert not unknown, f"[{section}] has no {sorted(unknown)}"


def test_every_key_is_documented() -> None:
    missing = []
    for section, keys in DOCUMENTED.items():
        leaves = {k.split(".")[-1] for k in keys} | {k.split(".")[0] for k in keys}
        for name in fields(section) - leaves:
            if (section, name) not in _SECRETS:
                missing.append(f"[{section}] {name}")
    for name in config.Settings.model_fields:
        model = _inner(config.Settings.model_fields[name].annotation)
        if model is not None and name not in DOCUMENTED:
            missing.append(f"section [{name}]")
    assert not missing, missing


def documented_defaults() -> list[tuple[str, str, str]]:
    """(section, key, default as the page writes it) of every table with a default column."""
    found = []
    section: str | None = None
    with_default = False
    for line in PAGE.read_text().splitlines():
        heading = _HEADING.match(line) or _SWITCH.match(line)
        if heading:
            section = heading.group(1) or ""
        elif line.startswith("| key |"):
            with_default = line.startswith("| key | default |")
        elif line.startswith("| `") and with_default and section is not None:
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            keys = re.findall(r"`([a-z_]+)`", cells[0])
            # `login_max_failures`, `login_window_seconds` | `5`, `300`
            values = [v.strip() for v in cells[1].split(",")] if len(keys) > 1 else [cells[1]]
            found += [(section, k, v.strip("`")) for k, v in zip(keys, values, strict=False)]
    return found


def test_the_documented_defaults_are_the_models() -> None:
    wrong, compared = [], 0
    for section, key, written in documented_defaults():
        actual = _model(section).model_fields[key].default
        if isinstance(actual, bool):
            same = written == str(actual).lower()
        elif isinstance(actual, int | float):
            if not re.fullmatch(r"[0-9.]+", written):
                continue  # "12 MiB", "0 (off)": prose
            same = float(written) == float(actual)
        elif isinstance(actual, str) and actual:
            same = written == actual
        else:
            continue
        compared += 1
        if not same:
            wrong.append(f"[{section}] {key}: the page says {written!r}, the model {actual!r}")
    assert compared > 50
    assert not wrong, wrong
