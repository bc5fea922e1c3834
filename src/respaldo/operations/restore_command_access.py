"""Whether a restored server's ``restore_command`` can read what it needs.

``restore_command`` is ``respaldo --config FILE wal-fetch``, run by the server as its own
OS user with the environment :func:`~respaldo.childenv.server_environment` gives it: it
reads the config file, the passphrase from ``passphrase_file`` (the server gets no
``RESPALDO_PASSPHRASE`` when one is configured) and the secret key of the repository it
fetches from. On a new machine after a disaster the config is put back by hand: a root-only
config, or a ``passphrase_file`` that was lost with the old machine while the
administrator gives the passphrase through the environment, made every fetch fail. The
restore wrote the data directory, the server stopped at its first fetch, and the error
blamed the recovery target or missing WAL. Asked before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from respaldo.config import Settings
from respaldo.errors import RestoreError
from respaldo.postgres.datadir import Owner
from respaldo.postgres.server_user import ServerUser, blocked_directory, read_problems
from respaldo.readable import Unreadable, readable_by


def _server_user(owner: Owner | None) -> ServerUser | None:
    """The server's user, when it is another than this process (which read the files)."""
    if owner is None or os.geteuid() != 0 or owner.uid == 0:
        return None
    groups = frozenset(os.getgrouplist(owner.name, owner.gid))
    return ServerUser(owner.name, owner.uid, groups)


def check_restore_command_files(
    settings: Settings, wal_source: str | None, owner: Owner | None
) -> None:
    """Raise RestoreError unless the server's user can read the config file, the
    ``passphrase_file`` and the ``secret_access_key_file`` of repository ``wal_source``
    (the primary when None), each of which must exist when configured."""
    config = type(settings).toml_path
    repository = settings.repository(wal_source) if settings.repositories else None
    files = [
        (Path(path), what, private)
        for path, what, private in (
            (config, "the config file", False),
            (settings.passphrase_file, "passphrase_file", True),
            (
                repository.secret_access_key_file if repository is not None else None,
                "secret_access_key_file",
                True,
            ),
        )
        if path is not None
    ]
    user = _server_user(owner)
    who = user.name if user is not None else "the server"
    problems: list[str] = []
    missing: list[str] = []
    denied: list[Unreadable] = []
    for path, what, private in files:
        if not path.exists():
            problems.append(f"{what} {path} does not exist")
            missing.append(what)
        elif user is not None:
            found = read_problems([path], user)
            problems += [f"{what} {path}: {p}" for p in found]
            if found:
                blocked = blocked_directory(path, user)
                denied.append(Unreadable(what, path, private, blocked and blocked[0]))
    if not problems:
        return
    advice = []
    if missing:
        advice.append(
            f"put back {', '.join(missing)} (the server gets no passphrase from your "
            "environment when passphrase_file is configured: or remove passphrase_file "
            "from the config and set RESPALDO_PASSPHRASE)"
        )
    if denied and user is not None:
        advice.append(readable_by(f"the restored server's {RESTORE_COMMAND}", user.name, denied))
    raise RestoreError(
        f"restore_command cannot work as {who}: {'; '.join(problems)}",
        hint=f"{'; '.join(advice)}; nothing was written",
    )


RESTORE_COMMAND = "restore_command ('respaldo --config FILE wal-fetch')"
