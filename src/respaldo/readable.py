"""What to tell an administrator when an OS user cannot read a file respaldo needs.

One wording for two places: a respaldo process that cannot read its ``passphrase_file``,
``password_file``, ``secret_access_key_file`` or config file (:mod:`respaldo.config_core`,
as the user running it: often the server's, for ``archive_command`` and
``restore_command``), and a physical restore that finds, before writing anything, that the
restored server's user could not (:mod:`respaldo.operations.restore_command_access`). Both
say which user needs to read which file and the command that lets it. Standard library
only: the WAL commands import it on every start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A file ``user`` cannot read: ``what`` names it (``passphrase_file``); ``blocked``
    is the directory on its way that the user cannot enter, None when the file itself
    is the problem. ``private`` for a file holding a secret, which must stay 0600."""

    what: str
    path: Path
    private: bool
    blocked: Path | None = None

    def fix(self, user: str) -> str:
        """The command that lets ``user`` read it."""
        import shlex  # only for an error: the WAL commands import this module at every start

        if self.blocked is not None:
            return f"chmod o+x {shlex.quote(str(self.blocked))}"
        if self.private:
            # Not a mode for others or a group: a secret file must be its owner's alone
            # (check_private_file refuses anything more open), so the reader owns it.
            return f"chown {shlex.quote(user)} {shlex.quote(str(self.path))}"
        return f"chmod o+r {shlex.quote(str(self.path))}"


def readable_by(runner: str, user: str, files: list[Unreadable]) -> str:
    """``RUNNER runs as OS user USER, which must be able to read WHAT PATH: COMMAND``, for
    each of ``files`` (``runner``: what reads them, ``respaldo``)."""
    named = ", ".join(f"{f.what} {f.path}" for f in files)
    fixes = "; ".join(dict.fromkeys(f.fix(user) for f in files))
    return f"{runner} runs as OS user {user}, which must be able to read {named}: {fixes}"


def this_user() -> str:
    """The name of the OS user this process runs as (its uid if it has no name)."""
    import pwd  # not at import: most runs read every file and never need a name

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def blocked_directory(path: Path) -> Path | None:
    """The first directory above ``path`` this process cannot enter, if any."""
    for parent in reversed(path.absolute().parents):
        if not os.access(parent, os.X_OK):
            return parent
    return None
