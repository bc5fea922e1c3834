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
from respaldo.postgres.server_user import ServerUser, read_problems


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
        (path, what)
        for path, what in (
            (config, "the config file"),
            (settings.passphrase_file, "passphrase_file"),
            (
                repository.secret_access_key_file if repository is not None else None,
                "secret_access_key_file",
            ),
        )
        if path is not None
    ]
    user = _server_user(owner)
    who = user.name if user is not None else "the server"
    problems: list[str] = []
    for path, what in files:
        if not Path(path).exists():
            problems.append(f"{what} {path} does not exist")
        elif user is not None:
            problems += [f"{what} {path}: {p}" for p in read_problems([Path(path)], user)]
    if problems:
        raise RestoreError(
            f"restore_command cannot work as {who}: {'; '.join(problems)}",
            hint="the restored server runs 'respaldo --config FILE wal-fetch' as its own OS "
            "user, with no passphrase from your environment when passphrase_file is "
            f"configured: put those files back, readable by {who} (or remove passphrase_file "
            "from the config and set RESPALDO_PASSPHRASE); nothing was written",
        )
