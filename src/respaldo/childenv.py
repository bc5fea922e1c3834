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
  they are how the caller chose to give it);
- hooks, in addition: the ``PG…`` variables except ``PGPASSWORD``, and what
  ``systemctl --user`` needs (``XDG_RUNTIME_DIR``, ``DBUS_SESSION_BUS_ADDRESS``). A hook
  that needs more sets it itself (``["env", "KUBECONFIG=/etc/k", "kubectl", …]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

BASE_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "TERM", "LANG", "LANGUAGE"}
)
BASE_PREFIXES = ("LC_",)
LIBPQ_PREFIXES = ("PG", "KRB5")
PASSWORD_NAMES = frozenset({"PGPASSWORD", "PGPASSFILE"})
HOOK_NAMES = frozenset({"XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"})


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
    with ``keep_password`` (respaldo has no password of its own to give).
    """
    source = os.environ if source is None else source
    env = base_environment(source)
    env.update(_pick(source, (), LIBPQ_PREFIXES))
    if not keep_password:
        for name in PASSWORD_NAMES:
            env.pop(name, None)
    return env


def hook_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a pre- or post-restore hook: no passphrase, no password."""
    source = os.environ if source is None else source
    env = base_environment(source)
    env.update(_pick(source, HOOK_NAMES, ("PG",)))
    env.pop("PGPASSWORD", None)
    return env
