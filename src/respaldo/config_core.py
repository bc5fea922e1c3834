"""The configuration without pydantic: what both loaders share, and the WAL commands' loader.

The server starts ``respaldo wal-push`` once per 16 MiB of WAL, and importing pydantic and
pydantic-settings to build :class:`respaldo.config.Settings` costs such a process about
0.15 CPU-s, more than compressing and encrypting the segment. :func:`load_wal_settings`
reads the few keys the WAL commands use (:class:`WalSettings`) with :mod:`tomllib` alone.

It cannot drift from the full loader because it decides nothing the full loader would
decide differently: the file is read and refused for the same reasons by the same code
(:func:`read_config_file`), the defaults, bounds and checks are defined here once and
:mod:`respaldo.config` uses them, and whatever the short cut does not recognise as plainly
valid (a value of an unexpected type or out of its bounds, a misspelt key, an
environment override of one of these keys, two repositories at one place...) is handed
to the full loader, which then gives its result or its error. tests/unit/test_config_core.py
compares the two on every example config of the documentation and on bad input.

What the short cut does not look at: the sections and keys the WAL commands do not use
(``[schedules]``, ``[server]``, a database's ``dsn`` options beyond its password check,
the notification targets' URLs...). A mistake there stops every other command but not
WAL archiving, which would otherwise pile up on the server until the file is fixed; the
notification targets are read whole, by the full loader, when a push fails and there is
an alert to send.
"""

from __future__ import annotations

import errno
import hmac
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from respaldo.errors import ConfigError
from respaldo.phrases import N_, Phrase
from respaldo.readable import Unreadable, blocked_directory, readable_by, this_user

if TYPE_CHECKING:
    from respaldo.config import Settings

# --- defaults and bounds, the one definition (respaldo.config's fields use them) -----------


def _default_cache_dir() -> Path:
    """systemd's ``$CACHE_DIRECTORY`` (the unit's ``CacheDirectory=``, its first path),
    else ``~/.cache/respaldo``. The installed unit mounts the file system read-only but
    for the paths it names: the home directory's cache would be read-only there, and
    every job of ``serve`` would run without the chunk index and key caches.
    """
    given = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    return Path(given) if given.startswith("/") else Path.home() / ".cache" / "respaldo"


DEFAULT_CACHE_DIR = _default_cache_dir()
DEFAULT_KEY_CACHE = True
# Level 1: at 16 KiB chunks higher levels barely shrink an ERP dump (measured: 336.8
# MiB at 3 vs 334.2 at 1 for 1 GB) and cost 1 CPU-second more per GiB.
DEFAULT_COMPRESSION_LEVEL = 1
COMPRESSION_LEVEL_MIN = 1
# Chunks that level 1 shrinks to at most half (a dump's text rows) are compressed again at
# this level and the smaller kept; 0 = off. Off by default: on the ERP dumps respaldo is
# for (photos and documents) 6 stores 1-1.6% less for 22-42% more CPU in a first backup
# and up to 14% in a daily one, and a large database's backup window is CPU-bound; on
# text-only dumps it stores 4-5% less (measured, docs/configuration.md).
DEFAULT_COMPRESSIBLE_LEVEL = 0
COMPRESSION_LEVEL_MAX = 22
# An S3 request's connect and read timeouts: greater than 0, at most this many seconds.
TIMEOUT_MAX = 3600.0

SETTINGS_KEYS = frozenset(
    {
        "catalog",
        "repositories",
        "databases",
        "file_sets",
        "chunker",
        "drill",
        "retention",
        "gc",
        "locks",
        "jobs",
        "schedules",
        "server",
        "notifications",
        "rpo",
        "metrics",
        "queue",
        "passphrase",
        "passphrase_file",
        "cache_dir",
        "key_cache",
        "compression_level",
        "compressible_level",
        "pack_size",
        "workers",
    }
)
"""The top-level keys of :class:`~respaldo.config.Settings` (a test keeps them equal): any
other key in the file is a mistake the full loader reports."""

REPOSITORY_KEYS = frozenset(
    {
        "name",
        "url",
        "endpoint_url",
        "region",
        "profile",
        "access_key_id",
        "secret_access_key",
        "secret_access_key_file",
        "server_side_encryption",
        "sse_kms_key_id",
        "storage_class",
        "connect_timeout",
        "read_timeout",
        "object_lock_mode",
        "object_lock_days",
    }
)
"""The keys of ``[[repositories]]`` (:class:`~respaldo.config.RepositorySettings`)."""

DATABASE_KEYS = frozenset(
    {
        "name",
        "dsn",
        "password_file",
        "password",
        "schema_version_query",
        "retention_days",
        "pre_restore_hook",
        "post_restore_hook",
        "validations",
        "schedules",
        "rpo",
        "pg_bin_dir",
        "queue",
        "dump_jobs",
        "dump_spool_dir",
    }
)
"""The keys of ``[[databases]]`` (:class:`~respaldo.config.DatabaseSettings`)."""

# The WAL commands' keys: an environment variable setting one of them (other than the
# passphrase) sends the load to the full loader, which parses environment values.
WAL_KEYS = frozenset(
    {
        "passphrase",
        "passphrase_file",
        "cache_dir",
        "key_cache",
        "compression_level",
        "repositories",
        "databases",
        "notifications",
    }
)
# Repository options the short cut takes as plain strings; the others (timeouts aside)
# go to the full loader.
_TEXT_OPTIONS = (
    "endpoint_url",
    "region",
    "profile",
    "access_key_id",
    "server_side_encryption",
    "sse_kms_key_id",
    "storage_class",
)
_PATH_OPTIONS = ("secret_access_key_file",)
_TIMEOUT_OPTIONS = ("connect_timeout", "read_timeout")
ENV_PREFIX = "RESPALDO_"
SECRET_KEYS = frozenset({"passphrase", "password", "secret_access_key", "aws_secret_access_key"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


# --- checks both loaders make ---------------------------------------------------------------


def check_name(value: str) -> str:
    """A repository's, database's or file set's name. Raises ValueError."""
    # fullmatch: "$" lets a trailing line break through ("erp\n").
    if not _NAME.fullmatch(value):
        raise ValueError(
            "names are 1-63 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


def dsn_problem(dsn: str) -> str | None:
    """Why ``dsn`` is refused, or None: a password inside it would end up in argv of
    pg_dump and in messages."""
    if re.search(r"://[^/@]*:[^/@]*@", dsn) or re.search(r"\bpassword\s*=", dsn):
        return (
            "the DSN must not contain a password; use password_file or "
            "RESPALDO_DATABASES as environment"
        )
    return None


def location(url: str, endpoint_url: str | None) -> str:
    """Where a repository's objects are, as one string per place however the URL is
    spelled: local paths unquoted and normalised (``/x/./repo/`` is ``/x/repo``); an S3
    prefix without its outer slashes (as the S3 backend strips them), and the endpoint,
    since a bucket name is unique on one S3 service only. Symbolic links are not
    followed: the config is checked before (and without) touching the file system."""
    if "://" not in url and url.startswith("/"):
        return f"file://{os.path.normpath(url)}"
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path.startswith("/"):
        return f"file://{os.path.normpath(unquote(parts.path))}"
    if parts.scheme == "s3":
        prefix = unquote(parts.path).strip("/")
        where = f"s3://{parts.netloc}/{prefix}".rstrip("/")
        if endpoint_url:
            where += f" on {endpoint_url.rstrip('/')}"
        return where
    return url.rstrip("/")


def unreadable(path: Path, what: str, exc: OSError, *, private: bool) -> ConfigError:
    """``cannot read WHAT PATH: REASON``; when permissions are the reason, the hint names
    the OS user this process runs as and the command that lets it read the file.

    Often that user is not the administrator's: the server runs ``archive_command`` and
    ``restore_command`` as its own (``postgres``), and the error was all its log said."""
    hint = None
    if exc.errno in (errno.EACCES, errno.EPERM):
        user = this_user()
        denied = Unreadable(what, path, private, blocked_directory(path))
        hint = readable_by("respaldo", user, [denied])
    return ConfigError(f"cannot read {what} {path}: {exc.strerror}", hint=hint)


def check_private_file(path: Path, what: str, *, root_group_read: bool = False) -> None:
    """Refuse (ConfigError) a file holding a secret that cannot be read or that group or
    others can read.

    ``root_group_read``: the rule PostgreSQL applies to its ``ssl_key_file``, for a key
    another program reads (the HTTPS server's): a file owned by root may also be read by
    its group (``u=rw,g=r``, 0640: Debian's ``root:ssl-cert`` keys, respaldo's user in
    that group); any other owner's must be 0600 or less. Others may never read it."""
    try:
        st = path.stat()
    except OSError as exc:
        raise unreadable(path, what, exc, private=True) from exc
    if root_group_read and st.st_uid == 0:
        if st.st_mode & 0o037:
            raise ConfigError(
                f"{what} {path} is readable by others, or writable by its group",
                hint=f"chmod 640 {path} (owned by root: u=rw,g=r at most)",
            )
        return
    if st.st_mode & 0o077:
        hint = f"chmod 600 {path}"
        if root_group_read:
            hint += " (or, to share it through a group: owned by root, mode 640)"
        raise ConfigError(f"{what} {path} is readable by group or others", hint=hint)


def read_secret_file(path: Path, what: str) -> str:
    """Read a secret from a file, refusing files that others can read."""
    check_private_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise unreadable(path, what, exc, private=True) from exc
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConfigError(f"{what} {path} is empty")
    return secret


def resolve_secret_file(options: Mapping[str, Any]) -> dict[str, Any]:
    """A repository's storage options (the keys of ``[[repositories]]`` that are set, but
    its name and URL) as its storage is opened with them: ``secret_access_key_file`` read
    into ``secret_access_key``, unless that is given itself (from the environment). Every
    opener of a configured repository (the backups', the WAL commands', the status's)
    goes through here. Raises ConfigError for a file that cannot be read, is empty or
    that others can read (its content never appears in a message)."""
    resolved = {key: value for key, value in options.items() if key != "secret_access_key_file"}
    path = options.get("secret_access_key_file")
    if path is not None and resolved.get("secret_access_key") is None:
        resolved["secret_access_key"] = Secret(
            read_secret_file(Path(path), "secret_access_key_file")
        )
    return resolved


class Secret:
    """A secret string that prints as stars (as pydantic's ``SecretStr`` does)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(Secret)


def repository_passphrase(passphrase: Any, passphrase_file: Path | None) -> Any:
    """The passphrase that opens the repositories: the one given (from the environment)
    first, then the file's; ``passphrase`` is returned as it is (a ``SecretStr`` or a
    :class:`Secret`), the file's as a :class:`Secret`. Raises ConfigError."""
    if passphrase is not None:
        return passphrase
    if passphrase_file is not None:
        return Secret(read_secret_file(passphrase_file, "passphrase_file"))
    raise ConfigError(
        "no repository passphrase",
        hint="set RESPALDO_PASSPHRASE or passphrase_file in the config",
    )


def no_repository() -> ConfigError:
    return ConfigError("no repository is configured", hint="add a [[repositories]] table")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_R = TypeVar("_R", bound=_Named)


def pick_repository(repositories: Sequence[_R], name: str | None) -> _R:
    """The repository called ``name``, or the primary (first) one. Raises ConfigError."""
    if not repositories:
        raise no_repository()
    if name is None:
        return repositories[0]
    for repo in repositories:
        if repo.name == name:
            return repo
    known = ", ".join(r.name for r in repositories)
    raise ConfigError(f"repository {name!r} is not configured", hint=f"configured: {known}")


def unknown_database(name: str, known: list[str]) -> ConfigError:
    shown = ", ".join(known) or Phrase(N_("none"))
    return ConfigError(
        Phrase(N_("database {name} is not configured"), name=repr(name)),
        hint=Phrase(N_("configured: {names}"), names=shown),
    )


def find_secrets(data: Any, path: str = "") -> list[str]:
    """Where ``data`` (a parsed config file) holds secrets, as dotted key paths: a
    secret's key, or a catalog URL with a password in it (its place is
    RESPALDO_CATALOG__URL or ~/.pgpass)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            in_url = where == "catalog.url" and isinstance(value, str) and dsn_problem(value)
            if key in SECRET_KEYS or in_url:
                found.append(where)
            found.extend(find_secrets(value, where))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found.extend(find_secrets(item, f"{path}[{i}]"))
    return found


def read_config_file(config_file: Path | str | None) -> tuple[Path, dict[str, Any]]:
    """The config file named by ``config_file`` (or ``RESPALDO_CONFIG``), parsed.

    A config file is required: without one every setting would be a default, and the
    default catalog and an empty list of repositories make every command quietly do
    nothing. Raises ConfigError when no file is named, the file is missing, is not TOML,
    or holds secrets.
    """
    if config_file is None and os.environ.get("RESPALDO_CONFIG"):
        config_file = os.environ["RESPALDO_CONFIG"]
    if config_file is None:
        raise ConfigError(
            "no config file given",
            hint="pass --config /etc/respaldo/respaldo.toml (or set RESPALDO_CONFIG); "
            "docs/configuration.md describes it",
        )
    path = Path(config_file)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise unreadable(path, "config file", exc, private=False) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    secrets = find_secrets(data)
    if secrets:
        raise ConfigError(
            f"config file {path} contains secrets ({', '.join(secrets)})",
            hint="move them to the environment (RESPALDO_PASSPHRASE, RESPALDO_CATALOG__URL) "
            "or to a 0600 file named by passphrase_file / password_file",
        )
    return path, data


# --- the WAL commands' settings ---------------------------------------------------------------


@dataclass(frozen=True)
class WalRepository:
    """A configured repository as the WAL commands open it."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    """The storage options that are set (``open_storage(url, **options)``)."""


@dataclass(frozen=True)
class WalSettings:
    """What ``wal-push`` and ``wal-fetch`` use of the configuration.

    From :func:`load_wal_settings`, or from a loaded :class:`~respaldo.config.Settings`
    (``settings.wal_settings()``); both give equal objects for one file and environment.
    """

    config_path: Path | None
    repositories: tuple[WalRepository, ...]
    databases: tuple[str, ...]
    passphrase: Secret | None
    passphrase_file: Path | None
    cache_dir: Path
    key_cache: bool
    compression_level: int
    alerts: bool
    """Notification targets are configured: a failed push has an alert to send."""

    def repository(self, name: str | None = None) -> WalRepository:
        """The named repository, or the primary (first) one. Raises ConfigError."""
        return pick_repository(self.repositories, name)

    def database(self, name: str) -> str:
        """The configured database ``name``. Raises ConfigError."""
        if name not in self.databases:
            raise unknown_database(name, list(self.databases))
        return name

    def repository_passphrase(self) -> Secret:
        """See :meth:`respaldo.config.Settings.repository_passphrase`."""
        secret: Secret = repository_passphrase(self.passphrase, self.passphrase_file)
        return secret

    def full(self) -> Settings:
        """The whole configuration, loaded by the full loader (for sending an alert)."""
        from respaldo.config import load_settings

        return load_settings(self.config_path, check_urls=False)


class _Unsure(Exception):
    """The short cut cannot tell: the full loader decides."""


def load_wal_settings(config_file: Path | str | None = None) -> WalSettings:
    """The WAL commands' settings from ``config_file`` (or ``RESPALDO_CONFIG``) and the
    environment, without pydantic when the file and environment are plainly valid.

    The same result and the same ConfigError as ``load_settings(config_file,
    check_urls=False).wal_settings()``, but for mistakes in keys the WAL commands do
    not use (see the module docstring).
    """
    path, data = read_config_file(config_file)
    try:
        return _short_cut(path, data, os.environ)
    except _Unsure:
        from respaldo.config import load_settings

        return load_settings(path, check_urls=False).wal_settings()


def _short_cut(path: Path, data: dict[str, Any], environ: Mapping[str, str]) -> WalSettings:
    passphrase = _environment(environ)
    if not data.keys() <= SETTINGS_KEYS:
        raise _Unsure  # a misspelt key
    repositories = tuple(_repository(r) for r in _tables(data.get("repositories", [])))
    names = [r.name for r in repositories]
    places = [location(r.url, r.options.get("endpoint_url")) for r in repositories]
    if len(set(names)) < len(names) or len(set(places)) < len(places):
        raise _Unsure
    databases = tuple(_database(d) for d in _tables(data.get("databases", [])))
    if len(set(databases)) < len(databases):
        raise _Unsure
    notifications = data.get("notifications", {})
    if not isinstance(notifications, dict):
        raise _Unsure
    targets = notifications.get("targets", [])
    if not isinstance(targets, list):
        raise _Unsure
    level = data.get("compression_level", DEFAULT_COMPRESSION_LEVEL)
    if type(level) is not int or not COMPRESSION_LEVEL_MIN <= level <= COMPRESSION_LEVEL_MAX:
        raise _Unsure
    key_cache = data.get("key_cache", DEFAULT_KEY_CACHE)
    if type(key_cache) is not bool:
        raise _Unsure
    cache_dir = _path(data.get("cache_dir", DEFAULT_CACHE_DIR))
    passphrase_file = data.get("passphrase_file")
    return WalSettings(
        config_path=path,
        repositories=repositories,
        databases=databases,
        passphrase=passphrase,
        passphrase_file=None if passphrase_file is None else _path(passphrase_file),
        cache_dir=cache_dir,
        key_cache=key_cache,
        compression_level=level,
        alerts=bool(targets),
    )


def _environment(environ: Mapping[str, str]) -> Secret | None:
    """The passphrase from the environment; raises _Unsure if the environment sets any
    other of the WAL commands' keys (the full loader parses those). Variables of other
    keys are not the WAL commands' business; unknown ones pydantic-settings ignores."""
    passphrase: list[str] = []
    for name, value in environ.items():
        lowered = name.lower()  # pydantic-settings reads them case-insensitively
        if not lowered.startswith(ENV_PREFIX.lower()):
            continue
        key = lowered.removeprefix(ENV_PREFIX.lower())
        if key == "passphrase":
            passphrase.append(value)
        elif key.split("__", 1)[0] in WAL_KEYS:
            raise _Unsure
    if not passphrase:
        return None
    if len(passphrase) > 1 or not passphrase[0]:
        raise _Unsure
    return Secret(passphrase[0])


def _tables(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Unsure
    return value


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _Unsure
    return value


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not _text(value):
        raise _Unsure
    return Path(value)


def _valid_name(value: Any) -> str:
    try:
        return check_name(_text(value))
    except ValueError:
        raise _Unsure from None


def _repository(table: dict[str, Any]) -> WalRepository:
    supported = {"name", "url", *_TEXT_OPTIONS, *_PATH_OPTIONS, *_TIMEOUT_OPTIONS}
    if not table.keys() <= supported:
        raise _Unsure  # a misspelt key, or one the full loader checks (object lock)
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in _TEXT_OPTIONS:
            options[key] = _text(value)
        elif key in _PATH_OPTIONS:
            options[key] = _path(value)
        elif key in _TIMEOUT_OPTIONS:
            if type(value) not in (int, float) or not 0 < value <= TIMEOUT_MAX:
                raise _Unsure
            options[key] = float(value)
    return WalRepository(_valid_name(table.get("name")), _text(table.get("url")), options)


def _database(table: dict[str, Any]) -> str:
    if not table.keys() <= DATABASE_KEYS:
        raise _Unsure
    if dsn_problem(_text(table.get("dsn"))) is not None:
        raise _Unsure
    return _valid_name(table.get("name"))
