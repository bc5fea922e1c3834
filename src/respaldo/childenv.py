"""The environment of the programs respaldo starts: what they need, never its secrets.

respaldo's own environment may hold the repository passphrase (``RESPALDO_PASSPHRASE``),
database passwords (``RESPALDO_DATABASES`` as JSON, ``PGPASSWORD``), storage credentials
(``AWS_SECRET_ACCESS_KEY``) and any other ``RESPALDO_…`` override. A child inheriting all
of it would hand those to a hook script written by someone else, and to whatever that
script starts in turn. So every child gets an environment built from an allowlist:

- every child: ``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``SHELL``, ``TMPDIR``, ``TZ``,
  ``TERM``, ``LANG``, ``LANGUAGE`` and ``LC_*`` (locale and time zone change how programs
  read and print, not what they may do);
- PostgreSQL client programs, in addition: the ``PG…`` variables libpq reads (host,
  port, SSL files, service file, …) and Kerberos' ``KRB5…``; ``PGPASSWORD`` and
  ``PGPASSFILE`` only when respaldo has no password of its own for the connection (then
  they are how the caller chose to give it). Their messages, and libpq's, come
  untranslated (:func:`english_messages`): respaldo reads them (pg_dump's ``finished
  item``, its ``could not open large object``, libpq's ``server closed the connection
  unexpectedly``), and a Spanish locale translated them. The server's part of an error
  is in the server's own language (``lc_messages``) all the same;
- hooks, in addition: the ``PG…`` variables except ``PGPASSWORD``, and what
  ``systemctl --user`` needs (``XDG_RUNTIME_DIR``, ``DBUS_SESSION_BUS_ADDRESS``). A hook
  that needs more sets it itself (``["env", "KUBECONFIG=/etc/k", "kubectl", …]``);
- a PostgreSQL server respaldo starts (``pg_ctl``), in addition: only what its
  ``restore_command`` cannot work without (:func:`server_environment`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from respaldo.config import Settings

BASE_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "TERM", "LANG", "LANGUAGE"}
)
BASE_PREFIXES = ("LC_",)
LIBPQ_PREFIXES = ("PG", "KRB5")
PASSWORD_NAMES = frozenset({"PGPASSWORD", "PGPASSFILE"})
HOOK_NAMES = frozenset({"XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"})
AWS_PREFIX = "AWS_"
AWS_CREDENTIAL_NAMES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
REPOSITORIES_NAME = "RESPALDO_REPOSITORIES"


def _pick(
    source: Mapping[str, str], names: Iterable[str], prefixes: tuple[str, ...]
) -> dict[str, str]:
    wanted = set(names)
    return {k: v for k, v in source.items() if k in wanted or k.startswith(prefixes)}


def base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """What any child gets of ``source`` (default ``os.environ``): path, home, locale."""
    return _pick(os.environ if source is None else source, BASE_NAMES, BASE_PREFIXES)


def libpq_environment(
    source: Mapping[str, str] | None = None, *, keep_password: bool
) -> dict[str, str]:
    """The environment of a PostgreSQL client program.

    The base, plus ``PG…`` and ``KRB5…`` variables; ``PGPASSWORD``/``PGPASSFILE`` only
    with ``keep_password`` (respaldo has no password of its own to give). Messages in
    English (:func:`english_messages`), the rest of the locale kept.
    """
    source = os.environ if source is None else source
    env = base_environment(source)
    env.update(_pick(source, (), LIBPQ_PREFIXES))
    if not keep_password:
        for name in PASSWORD_NAMES:
            env.pop(name, None)
    english_messages(env)
    return env


# The locale categories LC_ALL sets besides LC_MESSAGES.
_LC_CATEGORIES = ("LC_CTYPE", "LC_COLLATE", "LC_NUMERIC", "LC_TIME", "LC_MONETARY")


def english_messages(env: dict[str, str]) -> None:
    """Make a program started with ``env`` print its messages untranslated (C), keeping
    the rest of the locale: for a program whose messages respaldo reads (every
    PostgreSQL client program: pg_dump's ``finished item`` lines, its errors).
    ``LANGUAGE`` wins over ``LC_MESSAGES`` and ``LC_ALL`` over both, so the one is
    dropped and the other spread over its other categories."""
    env.pop("LANGUAGE", None)
    every = env.pop("LC_ALL", None)
    if every:
        for name in _LC_CATEGORIES:
            env[name] = every
    env["LC_MESSAGES"] = "C"


def hook_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a pre- or post-restore hook: no passphrase, no password."""
    source = os.environ if source is None else source
    env = base_environment(source)
    env.update(_pick(source, HOOK_NAMES, ("PG",)))
    env.pop("PGPASSWORD", None)
    return env


def server_environment(
    settings: Settings, source: Mapping[str, str] | None = None, repository: str | None = None
) -> dict[str, str]:
    """The environment of a PostgreSQL server respaldo starts (``restore --start``, the
    scratch server of a physical drill) and of its ``pg_ctl``.

    Why so little: the server outlives respaldo (``restore --start`` leaves it running)
    and runs programs of its own with its environment (``restore_command``, the
    ``archive_command`` of a ``--keep-archiving`` copy, ``COPY … TO PROGRAM``, untrusted
    procedural languages), so whatever it inherits is exposed for as long as it runs.
    Its ``restore_command`` is ``respaldo --config FILE wal-fetch``, which reads its
    settings from that file; so the server gets the base, plus only what that file
    cannot give:

    - ``RESPALDO_PASSPHRASE``, only when the settings have no ``passphrase_file`` (the
      passphrase then exists nowhere else; restore warns that a later restart of the
      server will not have it);
    - when the repository ``wal-fetch`` reads (``repository``, by default the primary; a
      restore from a mirror names the mirror) is on S3: the ``AWS_…``
      variables that are not credentials (region, CA bundle, config file paths); the
      credential ones (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
      ``AWS_SESSION_TOKEN``) only when no ``access_key_id`` is configured (boto3 then
      reads them); ``RESPALDO_REPOSITORIES…`` only when its ``secret_access_key`` came from
      the environment (set, without a ``secret_access_key_file``).

    Never ``PGPASSWORD``, ``PGPASSFILE``, ``RESPALDO_DATABASES`` or any other
    ``RESPALDO_…`` variable, nor the ``PG…`` client settings (``PGPORT`` would even change
    the server's default port).
    """
    source = os.environ if source is None else source
    env = base_environment(source)
    if settings.passphrase_file is None and "RESPALDO_PASSPHRASE" in source:
        env["RESPALDO_PASSPHRASE"] = source["RESPALDO_PASSPHRASE"]
    read = settings.repository(repository) if settings.repositories else None
    if read is not None and read.url.startswith("s3://"):
        from_environment = read.access_key_id is None
        env.update(
            (k, v)
            for k, v in source.items()
            if k.startswith(AWS_PREFIX) and (from_environment or k not in AWS_CREDENTIAL_NAMES)
        )
        if read.secret_access_key is not None and read.secret_access_key_file is None:
            env.update(_pick(source, (REPOSITORIES_NAME,), (f"{REPOSITORIES_NAME}__",)))
    return env
