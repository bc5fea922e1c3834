"""One typed ``Settings``, read from a TOML file and overridable from the environment.

Precedence, highest first: environment variables (``RESPALDO_…``, nested keys joined by
``__``, e.g. ``RESPALDO_CATALOG__URL``; lists as JSON), then the TOML file named by
``--config`` or ``RESPALDO_CONFIG``, then defaults.

Secrets never come from the TOML file: a passphrase or password there is refused, so that
a config file can be committed, shared in a support ticket or printed. They come from the
environment (``RESPALDO_PASSPHRASE``) or from files named in the TOML
(``passphrase_file``, ``password_file``), and are held as ``SecretStr`` so that printing
settings never shows them.

The sources are merged as pydantic-settings' ``BaseSettings`` merges them (this module
used it until the start-up work of issue 16), without importing it for the usual
environment: it cost every command 0.013 CPU-s and 1.4 MiB more than pydantic, which the
models import anyway (argparse, dotenv and its other sources). :func:`_environment`
reads the passphrase itself; any other ``RESPALDO_<key>`` variable is parsed by
pydantic-settings' own environment source.
``tests/unit/test_config_sources.py`` compares the two with ``BaseSettings`` itself.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic._internal._utils import deep_update

# The defaults, bounds and checks the WAL commands' own loader shares (config_core.py).
from respaldo.config_core import (
    COMPRESSION_LEVEL_MAX,
    COMPRESSION_LEVEL_MIN,
    DEFAULT_CACHE_DIR,
    DEFAULT_COMPRESSIBLE_LEVEL,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_KEY_CACHE,
    ENV_PREFIX,
    TIMEOUT_MAX,
    Secret,
    WalRepository,
    WalSettings,
    dsn_problem,
    location,
    pick_repository,
    read_config_file,
    repository_passphrase,
    unknown_database,
)
from respaldo.config_core import check_name as _check_name
from respaldo.config_core import check_private_file as check_private_file
from respaldo.config_core import read_secret_file as read_secret_file
from respaldo.domain import BackupKind, JobKind, chunker_sizes_problem
from respaldo.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class CatalogSettings(_Section):
    url: str = "sqlite:////var/lib/respaldo/catalog.db"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The URL may carry the catalog's password (RESPALDO_CATALOG__URL): printing the
        # settings never shows it, as SecretStr keeps the other passwords.
        for name, value in super().__repr_args__():
            yield name, _masked_url(value) if name == "url" else value


def _masked_url(url: str) -> str:
    """``url`` with the password of its user part and of a ``password=`` query masked."""
    url = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(\bpassword=)[^&]*", r"\1***", url)


class ChunkerSettings(_Section):
    """Chunk sizes used when a repository is created (then fixed in its ``config``)."""

    min_size: int = 4 * 1024
    avg_size: int = 16 * 1024
    max_size: int = 64 * 1024

    @model_validator(mode="after")
    def _within_the_chunkers_bounds(self) -> ChunkerSettings:
        # Here, at load: `init` would otherwise write sizes into the repository's config
        # that the chunker refuses, and every backup would fail.
        problem = chunker_sizes_problem(self.min_size, self.avg_size, self.max_size)
        if problem is not None:
            raise ValueError(problem)
        return self


class RetentionRules(_Section):
    """Retention rules; in an override, a key left out (None) keeps the inherited value.

    Every rule *keeps* backups; a backup is expired only if no rule keeps it. See
    :mod:`respaldo.retention` for what each rule means and the invariants above them.
    """

    keep_until_expires: bool | None = None
    keep_last: int | None = Field(default=None, ge=0)
    keep_hourly: int | None = Field(default=None, ge=0)
    keep_daily: int | None = Field(default=None, ge=0)
    keep_weekly: int | None = Field(default=None, ge=0)
    keep_monthly: int | None = Field(default=None, ge=0)
    keep_yearly: int | None = Field(default=None, ge=0)
    min_keep: int | None = Field(default=None, ge=1)
    failed_days: int | None = Field(default=None, ge=0)


class RetentionOverride(RetentionRules):
    """Rules for one database, one kind, or one kind of one database."""

    database: str | None = None
    kind: BackupKind | None = None


class RetentionSettings(_Section):
    """``[retention]``: the defaults, then ``[[retention.overrides]]``, most specific last."""

    keep_until_expires: bool = True
    keep_last: int = Field(default=0, ge=0)
    keep_hourly: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)
    min_keep: int = Field(default=2, ge=1)
    failed_days: int = Field(default=7, ge=0)
    # Prune refuses to expire backups by age when the newest completed backup is older
    # than this by the clock (0: never): the clock stepped ahead (a VM restored from a
    # snapshot, a bad NTP step) or backups stopped, and either way the history is what
    # a restore will need. Not a rule of a group: the newest backup of any is the
    # evidence of what time it is.
    clock_check_days: int = Field(default=7, ge=0)
    overrides: list[RetentionOverride] = []

    def rules_for(self, database: str | None, kind: BackupKind | str) -> dict[str, Any]:
        """The merged rules of (database, kind): defaults, then overrides naming only the
        database, then only the kind, then both (each a key at a time)."""
        merged = self.model_dump(exclude={"overrides", "clock_check_days"})
        matching = [
            o
            for o in self.overrides
            if (o.database is None or o.database == database) and (o.kind is None or o.kind == kind)
        ]
        # Stable sort: among equally specific overrides, the later one wins.
        matching.sort(key=lambda o: (o.kind is not None, o.database is not None))
        for override in matching:
            for key, value in override.model_dump(exclude={"database", "kind"}).items():
                if value is not None:
                    merged[key] = value
        return merged


class GcSettings(_Section):
    """``[gc]``: garbage collection of the repositories after backups expire."""

    # A pack whose dead share reaches this is rewritten with only its live chunks.
    repack_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    # Packs smaller than this share of pack_size are merged when there are several.
    small_pack_fraction: float = Field(default=0.25, ge=0.0, le=1.0)


class LockSettings(_Section):
    """``[locks]``: the leases that keep garbage collection away from running backups."""

    # A lease not refreshed for this long (its holder hung or died elsewhere) is ignored.
    stale_after_seconds: float = Field(default=600.0, ge=1.0)
    # How long a backup waits for a running prune (and a prune for running backups).
    wait_seconds: float = Field(default=300.0, ge=0.0)


class JobSettings(_Section):
    """``[jobs]``: the leases of running jobs, and how long ended jobs are kept."""

    # A running job renews its lease every lease_seconds / 10 (at most every 2 s, which
    # is also how soon it notices 'respaldo jobs cancel'); one not renewed for
    # lease_seconds is failed by the next process that opens the catalog.
    lease_seconds: float = Field(default=120.0, ge=1.0)
    # A prune forgets the jobs that ended longer ago than this (0: keeps every job); the
    # newest run of each schedule and the prunes' outcomes stay, and /metrics' job
    # counters keep counting what was forgotten.
    keep_days: int = Field(default=400, ge=0)

    @property
    def renew_seconds(self) -> float:
        return min(2.0, max(0.1, self.lease_seconds / 10))


class QueueSettings(_Section):
    """``[queue]``: jobs handed to workers through procrastinate (PostgreSQL catalog only).

    ``retries``: how many times a job of each kind that was lost (its worker died or was
    stopped before it ended) is run again as a new job, on any worker. Restores are
    never retried automatically: a person chose their target.
    """

    # The queue of jobs that name no database (prune, verify) and of databases that set
    # no [[databases]] queue.
    default_queue: str = Field(default="default", min_length=1, max_length=120)
    # On SIGTERM a worker takes no new job and lets the running one finish; after this
    # long it cancels it (the job ends cancelled and is retried per 'retries').
    shutdown_timeout_seconds: float = Field(default=600.0, ge=0.0)
    # A job that has waited longer than this in a queue that no live worker takes fails
    # as expired (0: never): a restore someone asked for days ago must not start by
    # surprise when a worker comes back, nor its backup be kept from prune for ever.
    expire_hours: float = Field(default=24.0, ge=0.0)
    retries: dict[JobKind, int] = {
        JobKind.BACKUP: 2,
        JobKind.DRILL: 1,
        JobKind.PRUNE: 1,
        JobKind.VERIFY: 1,
    }

    @field_validator("retries")
    @classmethod
    def _no_restore_retries(cls, value: dict[JobKind, int]) -> dict[JobKind, int]:
        if value.get(JobKind.RESTORE):
            raise ValueError("restores are never retried automatically: set restore = 0")
        if any(count < 0 for count in value.values()):
            raise ValueError("retries cannot be negative")
        return value


class ScheduleSettings(_Section):
    """``[schedules]``: what ``respaldo serve`` runs, as cron expressions.

    Five fields (minute hour day month day-of-week) or six (a leading second). Days of
    the week by name (``mon``-``sun``); ``sun#1`` is the first Sunday of the month.
    ``"off"`` turns a schedule off. Times are in ``time_zone`` (an IANA name; empty:
    the machine's zone).
    """

    time_zone: str = ""
    full: str = "0 3 * * *"
    # Physical (pg_basebackup) backups, only of databases whose WAL is archived.
    incremental: str = "0 */6 * * *"
    restore_test: str = "0 2 * * sun#1"
    cleanup: str = "0 4 * * *"
    # A daily slice of 'verify --subset n/verify_slices': every chunk once per cycle.
    verify: str = "0 5 * * *"
    verify_slices: int = Field(default=7, ge=1, le=366)
    # The restore-test report of the month before, to the targets that take "report".
    report: str = "0 7 1 * *"
    # Archived WAL to every secondary repository (only with one, and where WAL is
    # archived): the most a mirror's point-in-time recovery lacks once the primary is lost.
    wal_copy: str = "*/5 * * * *"
    # A files backup of every [[file_sets]] entry (restore tests: restore_test).
    files: str = "30 3 * * *"


class DatabaseSchedules(_Section):
    """``[databases.schedules]``: this database's own schedules (default: ``[schedules]``)."""

    full: str | None = None
    incremental: str | None = None
    restore_test: str | None = None


class FileSetSchedules(_Section):
    """``[file_sets.schedules]``: this file set's own schedules (default: ``[schedules]``'s
    ``files`` and ``restore_test``)."""

    files: str | None = None
    restore_test: str | None = None


class RpoOverride(_Section):
    """``[databases.rpo]``: this database's thresholds; a key left out keeps ``[rpo]``'s."""

    full_hours: float | None = Field(default=None, gt=0, le=24 * 366, allow_inf_nan=False)
    physical_hours: float | None = Field(default=None, gt=0, le=24 * 366, allow_inf_nan=False)
    restore_test_days: float | None = Field(default=None, gt=0, le=3660, allow_inf_nan=False)
    copy_hours: float | None = Field(default=None, gt=0, le=24 * 366, allow_inf_nan=False)
    archive_lag_minutes: float | None = Field(
        default=None, gt=0, le=7 * 24 * 60, allow_inf_nan=False
    )
    shrink_percent: float | None = Field(default=None, ge=0, lt=100, allow_inf_nan=False)
    wal_copy_minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    standby_lag_minutes: float | None = Field(
        default=None, gt=0, le=7 * 24 * 60, allow_inf_nan=False
    )
    standby_lock_wait_minutes: float | None = Field(
        default=None, gt=0, le=7 * 24 * 60, allow_inf_nan=False
    )


class FileSetRpo(_Section):
    """``[file_sets.rpo]``: this file set's thresholds; a key left out keeps ``[rpo]``'s."""

    files_hours: float | None = Field(default=None, gt=0, le=24 * 366, allow_inf_nan=False)
    restore_test_days: float | None = Field(default=None, gt=0, le=3660, allow_inf_nan=False)
    copy_hours: float | None = Field(default=None, gt=0, le=24 * 366, allow_inf_nan=False)
    shrink_percent: float | None = Field(default=None, ge=0, lt=100, allow_inf_nan=False)


class RpoSettings(_Section):
    """``[rpo]``: how old each thing may be before ``respaldo status`` calls it red and
    the watchdog of ``respaldo serve`` alerts (docs/monitoring.md)."""

    # The newest completed backup of each kind: a daily full backup may run late once,
    # a physical one every 6 h likewise. Each leaves its backup time to run after the
    # longest gap of its default schedule in real time: a fall-back change makes a day 25
    # hours and six hours seven (00:00 summer time to 06:00 winter time in Madrid), which
    # was the whole of a physical_hours of 7: rpo:<db>:incremental turned red, and
    # alerted, once a year with every backup on time ('respaldo serve' warns of a limit
    # shorter than its schedule needs: operations.schedule.short_backup_limits).
    full_hours: float = Field(default=26.0, gt=0, le=24 * 366, allow_inf_nan=False)
    physical_hours: float = Field(default=8.0, gt=0, le=24 * 366, allow_inf_nan=False)
    # The newest passed restore test. First Sundays (the default schedule) are up to 35
    # days apart (a third of months), an hour more across a fall-back change: with 35 the
    # status turned red, and alerted, in such a month whenever the test took longer than
    # the one before. 38 leaves two days for the test to run and a late start
    # (respaldo.operations.schedule.RESTORE_TEST_SLACK; 'respaldo serve' warns of a limit
    # shorter than its schedule needs).
    restore_test_days: float = Field(default=38.0, gt=0, le=3660, allow_inf_nan=False)
    # How long a backup may wait for its copy in each secondary repository.
    copy_hours: float = Field(default=6.0, gt=0, le=24 * 366, allow_inf_nan=False)
    # How long a WAL segment may wait to be archived (data a physical restore would lose).
    archive_lag_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    # Files waiting in the server's archive queue above which archiving is behind (amber).
    archive_backlog: int = Field(default=64, ge=1)
    # A completed backup smaller than this percentage of the one before it (of the same
    # database and kind) is red: emptied tables back up "successfully". 0: not checked.
    shrink_percent: float = Field(default=50.0, ge=0, lt=100, allow_inf_nan=False)
    # How long a secondary repository may lack archived WAL that the primary holds (what
    # a point-in-time recovery from it would lose); the wal_copy schedule copies it.
    wal_copy_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    # The newest completed files backup of each [[file_sets]] entry (daily, as full).
    files_hours: float = Field(default=26.0, gt=0, le=24 * 366, allow_inf_nan=False)
    # A backup through a dsn that leads to a standby is refused when its last replayed
    # transaction is older than this and no WAL receiver is connected to its primary, or
    # replay stays behind what it received (respaldo.postgres.standby): its data would
    # be of then. A quiet primary writes nothing, so the age alone refuses nothing.
    standby_lag_minutes: float = Field(default=5.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    # How long a logical backup through a standby waits for a table's lock before it fails:
    # there only WAL replay takes locks that conflict with a dump's, so a wait is replay's
    # (a primary's DDL or TRUNCATE replayed), and one stuck behind a standby query
    # (max_standby_streaming_delay = -1) made the backup wait for ever. Not on a primary.
    standby_lock_wait_minutes: float = Field(default=5.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    # How long a repository may go without the daily verify checking it (a slice of the
    # primary's chunks, a mirror's packs and backups): two daily runs, with slack. A
    # mirror the daily verify skips every day (a garbage collection holding its lock
    # past [locks] wait_seconds) turns red instead of going unchecked unnoticed.
    verify_hours: float = Field(default=50.0, gt=0, le=24 * 366, allow_inf_nan=False)
    # An inactive replication slot holding more WAL than this (MB) is amber: PostgreSQL
    # keeps the WAL until the slot's consumer comes back, and the disk fills until the
    # server stops (a slot left by a removed standby, or kept by 'restore --replace').
    # respaldo never drops a slot itself. 0: not checked.
    slot_wal_mb: float = Field(default=1000.0, ge=0, allow_inf_nan=False)
    # How often 'respaldo serve' checks all of this (and once at its start-up).
    watchdog_minutes: float = Field(default=5.0, gt=0, le=24 * 60, allow_inf_nan=False)
    # A run of the watchdog (or of the sweep for lost jobs) older than this is stuck (a
    # hung mount, a held lock): alerted, red on the page and /health. Far above a check's
    # normal time, seconds, or a few minutes with many repositories on a slow store.
    watchdog_stuck_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False)


@dataclass(frozen=True)
class Rpo:
    """The thresholds of one database, ``[rpo]`` merged with its ``[databases.rpo]``."""

    full: timedelta
    physical: timedelta
    restore_test: timedelta
    copy: timedelta
    archive_lag: timedelta
    archive_backlog: int
    shrink: float = 0.5
    """A backup smaller than this fraction of the one before it is red (0: unchecked)."""
    wal_copy: timedelta = timedelta(minutes=30)
    """How long a secondary repository may lack archived WAL the primary holds."""
    files: timedelta = timedelta(hours=26)
    """The newest completed files backup (of a file set)."""
    standby_lag: timedelta = timedelta(minutes=5)
    """How old a standby's last replayed transaction may be while it is cut off from its
    primary, or its replay behind (respaldo.postgres.standby)."""
    standby_lock_wait: timedelta = timedelta(minutes=5)
    """How long a logical backup through a standby waits for a table's lock (replay's)."""


_ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class ErpJwtSettings(_Section):
    """``[server.erp_jwt]``: accept JWTs the ERP issues, so its users need no second login.

    The ERP signs with its private key; respaldo verifies with the public key (a PEM file)
    or the keys published at a JWKS URL, and checks issuer, audience and expiry. The
    permissions come from ``permissions_claim`` (a list of ``admin:read``... or one
    space-separated string), the user's name from ``user_claim``.
    """

    issuer: str
    audience: str
    public_key_file: Path | None = None
    jwks_url: str | None = None
    permissions_claim: str = "permissions"
    user_claim: str = "sub"
    # Only public-key algorithms: an HS256 token would be checked with the public key as
    # its secret, which anyone who has the key could forge.
    algorithms: list[str] = ["RS256", "ES256"]
    # How long the keys fetched from jwks_url are used before they are fetched again.
    jwks_cache_seconds: float = Field(default=300.0, ge=0.0)
    # A token naming a key id not among them fetches them at once (the ERP rotated its
    # key), but not again within this many seconds: forged key ids cannot make respaldo
    # hammer the ERP.
    jwks_refetch_seconds: float = Field(default=10.0, ge=0.0)

    @model_validator(mode="after")
    def _one_key_source(self) -> ErpJwtSettings:
        if (self.public_key_file is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of public_key_file and jwks_url")
        if self.jwks_url is not None:
            parts = urlsplit(self.jwks_url)
            loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError("jwks_url must be https:// (plain http only on loopback)")
        wrong = [a for a in self.algorithms if a not in _ASYMMETRIC_ALGORITHMS]
        if wrong or not self.algorithms:
            known = ", ".join(sorted(_ASYMMETRIC_ALGORITHMS))
            raise ValueError(f"algorithms must be public-key algorithms ({known})")
        return self


class ServerSettings(_Section):
    """``[server]``: the HTTP server that ``respaldo serve`` hosts."""

    listen: str = "127.0.0.1:8080"
    # The HS256 key of the access tokens, from a 0600 file, at least 32 bytes. Without it
    # a random key is made at each start (tokens then end with the process).
    jwt_secret_file: Path | None = None
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_hours: int = Field(default=12, ge=1, le=24 * 90)
    # Failed logins allowed per user name, and per client address, within the window;
    # the next attempt is answered 429 until the oldest failure leaves the window.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: float = Field(default=300.0, ge=1.0)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For is believed; the
    # client address of every other request is its peer's address.
    trusted_proxies: list[str] = []
    erp_jwt: ErpJwtSettings | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or network") from None
        return value

    # With a PostgreSQL catalog, whether 'respaldo serve' also works as a worker on every
    # queue; false: it only schedules and answers, and 'respaldo worker' processes run
    # the jobs. With SQLite, serve always runs its jobs itself.
    run_jobs: bool = True
    # Origins (scheme://host[:port]) whose pages may call the API from a browser, e.g.
    # the ERP's front end; none by default (CORS off).
    cors_origins: list[str] = []
    # HTTPS directly: a PEM certificate (chain) and its private key, both or neither.
    # Without them the server speaks plain HTTP (behind a reverse proxy, docs/api.md).
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # Threads running the jobs the API starts (backups, restores, restore tests).
    job_workers: int = Field(default=2, ge=1, le=32)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"cors_origins holds {origin!r}: give origins as scheme://host[:port]"
                )
        return value

    @model_validator(mode="after")
    def _certificate_and_key(self) -> ServerSettings:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


# Whether notification URLs are checked whole (with apprise) when settings load; the
# WAL commands, run once per WAL file, check only their form (load_settings(check_urls=False)).
_check_urls: ContextVar[bool] = ContextVar("respaldo_check_urls", default=True)

NotificationLevel = Literal["critical", "warning", "success", "resolved", "report"]
SECRET_PLACEHOLDER = "{secret}"  # noqa: S105 (where a secret goes, not one)


class NotificationTarget(_Section):
    """``[[notifications.targets]]``: one apprise URL and the levels it is sent.

    The URL comes from ``url`` (TOML), or whole from a 0600 file (``url_file``) or an
    environment variable (``url_env``). A secret inside a TOML ``url`` is written as
    ``{secret}`` and filled in, URL-quoted, from ``secret_file`` or ``secret_env`` when a
    message is sent: the TOML itself never holds a password or token. The URL is
    checked here, at load (scheme known to apprise; a URL without ``{secret}`` parsed
    whole); secrets are read only when sending, so that a missing secret file never
    stops a backup (it is reported by each send and by ``respaldo notify test``).
    """

    name: str
    url: str | None = None
    secret_file: Path | None = None
    secret_env: str | None = None
    url_file: Path | None = None
    url_env: str | None = None
    levels: list[NotificationLevel] = ["critical", "resolved"]
    # "short": one line that fits one SMS (160 characters); default short for services
    # whose messages are that short (the SMS gateways), full otherwise.
    style: Literal["full", "short"] | None = None

    _validate_name = field_validator("name")(_check_name)

    @field_validator("levels")
    @classmethod
    def _some_level(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                f"levels must name at least one of {', '.join(get_args(NotificationLevel))}"
            )
        return value

    @model_validator(mode="after")
    def _one_url_and_its_secret(self) -> NotificationTarget:
        sources = [k for k in ("url", "url_file", "url_env") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of url, url_file, url_env")
        secrets = [k for k in ("secret_file", "secret_env") if getattr(self, k) is not None]
        if len(secrets) > 1:
            raise ValueError("give secret_file or secret_env, not both")
        if self.url is None:
            if secrets:
                raise ValueError(
                    f"{secrets[0]} fills the {{secret}} of url; with url_file "
                    "or url_env the whole URL is the secret"
                )
            return self
        # Imported here: the light wal-push path loads settings without apprise.
        from respaldo.apprise_urls import url_problem

        placeholder = SECRET_PLACEHOLDER in self.url
        if placeholder and not secrets:
            raise ValueError("url has {secret} but neither secret_file nor secret_env fills it")
        if secrets and not placeholder:
            raise ValueError(f"{secrets[0]} is given but url has no {{secret}} to fill")
        problem = url_problem(
            self.url,
            placeholder=SECRET_PLACEHOLDER if placeholder else None,
            deep=_check_urls.get(),
        )
        if problem is not None:
            raise ValueError(f"url of target {self.name!r}: {problem}")
        return self


class NotificationSettings(_Section):
    """``[notifications]``: where alerts go, in which language, how often they repeat."""

    language: Literal["en", "es"] = "en"
    # A condition that stays bad (a backup missing for days) is told again this often.
    repeat_interval_minutes: float = Field(default=360.0, gt=0)
    # Each target gets this long to answer; an alert never holds up an operation longer.
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # An alert a target refuses is tried again (with backoff) for this long, then given
    # up: shown in the status, on the page and in the log.
    retry_hours: float = Field(default=24.0, gt=0)
    targets: list[NotificationTarget] = []

    def takes(self, level: NotificationLevel) -> bool:
        """Whether any target is sent notices of ``level``."""
        return any(level in t.levels for t in self.targets)

    @model_validator(mode="after")
    def _names_differ(self) -> NotificationSettings:
        names = [t.name for t in self.targets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            shown = ", ".join(repr(n) for n in repeated)
            raise ValueError(f"[[notifications.targets]] names {shown} more than once")
        return self


class MetricsSettings(_Section):
    """``[metrics]``: the Prometheus metrics (``GET /metrics``, ``respaldo metrics``)."""

    repository_size: bool = True
    """Measure each repository's size by listing its objects (an S3 LIST per 1000)."""
    repository_size_seconds: float = Field(default=900.0, ge=0.0)
    """How old a measured size may be before a scrape measures it again (0: every
    scrape). ``respaldo metrics`` measures at every run."""
    servers: bool = True
    """Ask each database's server for its WAL archiving (as ``respaldo status`` does)."""
    status_seconds: float = Field(default=60.0, ge=0.0)
    """How old the status reading (servers, WAL archiving) may be before a scrape reads
    it again (0: every scrape)."""


class RepositorySettings(_Section):
    name: str
    url: str
    # S3 options; ignored by other backends.
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    # The secret from a 0600 file (the TOML itself never holds it), or from the AWS_*
    # environment / a profile when access_key_id is not given either.
    secret_access_key_file: Path | None = None
    server_side_encryption: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    # Seconds an S3 request may take to connect, and to wait for each answer: a stalled
    # server must end in a retry, then an error, not in a process that hangs (defaults
    # 10 and 60, the S3 backend's).
    connect_timeout: float | None = Field(default=None, gt=0, le=TIMEOUT_MAX)
    read_timeout: float | None = Field(default=None, gt=0, le=TIMEOUT_MAX)
    # S3 Object Lock: every object (but leases) is written locked for this many days and
    # prune renews the locks of what kept backups still need (docs/configuration.md).
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    object_lock_days: int | None = Field(default=None, ge=1, le=36500)

    _validate_name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _object_lock_needs_s3(self) -> RepositorySettings:
        lock = (self.object_lock_mode, self.object_lock_days)
        if lock != (None, None):
            if None in lock:
                raise ValueError("object_lock_mode and object_lock_days go together")
            if not self.url.startswith("s3://"):
                # A local directory cannot refuse deletion: better say so than let the
                # setting suggest a protection that is not there.
                raise ValueError("object_lock_mode works only on S3 repositories (s3://...)")
        return self


class ValidationQuery(_Section):
    """A query a restore test runs on the restored database, read-only, with a timeout.

    The first column of the first row, as text, must equal ``expect`` (a query that
    returns no row yields the empty string).
    """

    name: str
    sql: str
    expect: str


class DrillSettings(_Section):
    """Restore tests (drills)."""

    query_timeout_seconds: int = Field(default=60, ge=1)
    amcheck: bool = False  # run pg_amcheck on the restored database


class DatabaseSettings(_Section):
    name: str
    dsn: str
    password_file: Path | None = None
    password: SecretStr | None = None
    schema_version_query: str | None = None
    retention_days: int = Field(default=7, ge=1)
    # Argument lists (never shell strings) run around the swap of a --replace restore,
    # e.g. ["systemctl", "stop", "erp"] / ["systemctl", "start", "erp"].
    pre_restore_hook: list[str] = []
    post_restore_hook: list[str] = []
    validations: list[ValidationQuery] = []
    schedules: DatabaseSchedules = DatabaseSchedules()
    rpo: RpoOverride = RpoOverride()
    # The bin directory of the PostgreSQL installation whose programs serve this server
    # (pg_dump, pg_restore, psql, pg_basebackup, and postgres/pg_ctl for a restored data
    # directory). Unset: respaldo.postgres.toolsets picks among the installed ones.
    pg_bin_dir: Path | None = None
    # The queue of this database's jobs (a site's workers take them); default: [queue]
    # default_queue. Only with a PostgreSQL catalog.
    queue: str | None = Field(default=None, min_length=1, max_length=120)
    # pg_dump workers of a logical backup: 1 is one pg_dump in custom format; N > 1 a
    # directory-format dump by N workers in one snapshot (operations/pardump.py).
    dump_jobs: int = Field(default=1, ge=1, le=64)
    # Where a parallel dump's files wait until they are stored (default: TMPDIR).
    dump_spool_dir: Path | None = None

    _validate_name = field_validator("name")(_check_name)

    @field_validator("dsn")
    @classmethod
    def _no_password_in_dsn(cls, value: str) -> str:
        problem = dsn_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class FileSetSettings(_Section):
    """``[[file_sets]]``: application file trees backed up as ``files`` backups."""

    name: str
    paths: list[Path]
    # fnmatch patterns: without "/" they match a name at any depth ("*.tmp"), with one
    # the path relative to the configured path it is under ("thumbnails/*").
    exclude: list[str] = []
    retention_days: int = Field(default=7, ge=1)
    schedules: FileSetSchedules = FileSetSchedules()
    rpo: FileSetRpo = FileSetRpo()

    _validate_name = field_validator("name")(_check_name)

    @field_validator("paths")
    @classmethod
    def _absolute(cls, value: list[Path]) -> list[Path]:
        if not value:
            raise ValueError("a file set needs at least one path")
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"file set paths must be absolute: {path}")
            # Stored under the name as written: a restore refuses a name with '..'
            # (it could leave the target), so such a backup could never be restored.
            if ".." in path.parts:
                raise ValueError(f"file set path {path} has a '..' in it: write it without")
        for i, path in enumerate(value):
            for other in value[i + 1 :]:
                if path == other:
                    raise ValueError(f"file set path {path} is given twice")
                if path.is_relative_to(other) or other.is_relative_to(path):
                    inner, outer = (path, other) if path.is_relative_to(other) else (other, path)
                    raise ValueError(
                        f"file set path {inner} is inside {outer}, which is backed up "
                        "whole: give only one of them"
                    )
        return value


class Settings(BaseModel):
    """Everything respaldo is configured with.

    Made from keyword arguments, then the environment, then the TOML file at
    ``toml_path`` (see :func:`load_settings`), highest first, merged table by table (see
    :func:`_sources`). Raises ValidationError, or pydantic-settings' SettingsError for an
    environment variable that is not JSON where it must be.
    """

    # BaseSettings' own: defaults are validated too, a misspelt key is an error.
    model_config = ConfigDict(extra="forbid", validate_default=True, arbitrary_types_allowed=True)
    toml_path: ClassVar[Path | None] = None

    catalog: CatalogSettings = CatalogSettings()
    repositories: list[RepositorySettings] = []
    databases: list[DatabaseSettings] = []
    file_sets: list[FileSetSettings] = []
    chunker: ChunkerSettings = ChunkerSettings()
    drill: DrillSettings = DrillSettings()
    retention: RetentionSettings = RetentionSettings()
    gc: GcSettings = GcSettings()
    locks: LockSettings = LockSettings()
    jobs: JobSettings = JobSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    server: ServerSettings = ServerSettings()
    notifications: NotificationSettings = NotificationSettings()
    rpo: RpoSettings = RpoSettings()
    metrics: MetricsSettings = MetricsSettings()
    queue: QueueSettings = QueueSettings()
    passphrase: SecretStr | None = None
    passphrase_file: Path | None = None
    cache_dir: Path = DEFAULT_CACHE_DIR
    # Keep each key derived from the passphrase (argon2id, 64 MiB) in cache_dir, 0600, so
    # that a process per WAL file does not derive it again (respaldo.repository.keycache).
    key_cache: bool = DEFAULT_KEY_CACHE
    compression_level: int = Field(
        default=DEFAULT_COMPRESSION_LEVEL, ge=COMPRESSION_LEVEL_MIN, le=COMPRESSION_LEVEL_MAX
    )
    # Not read by the WAL commands: WAL files keep compression_level alone.
    compressible_level: int = Field(
        default=DEFAULT_COMPRESSIBLE_LEVEL, ge=0, le=COMPRESSION_LEVEL_MAX
    )
    pack_size: int = Field(default=12 * 1024 * 1024, ge=64 * 1024)
    workers: int = Field(default=2, ge=1, le=64)

    def __init__(self, **values: Any) -> None:
        super().__init__(**_sources(type(self), values))

    @model_validator(mode="after")
    def _one_entry_per_name(self) -> Settings:
        # Lookups by name take the first match: a second entry with the same name would
        # be silently ignored (a database never backed up, a mirror never copied to).
        sections: dict[str, list[str]] = {
            "repositories": [r.name for r in self.repositories],
            "databases": [d.name for d in self.databases],
            "file_sets": [f.name for f in self.file_sets],
        }
        for section, names in sections.items():
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                shown = ", ".join(repr(n) for n in repeated)
                raise ValueError(f"[[{section}]] names {shown} more than once; names must differ")
        # A file set's backups, restore tests, jobs and status are kept under its name, as
        # a database's are: one name for both would mix them (one status, one running
        # backup at a time, a restore test of the database only).
        shared = sorted({d.name for d in self.databases} & {f.name for f in self.file_sets})
        if shared:
            shown = ", ".join(repr(n) for n in shared)
            raise ValueError(
                f"[[file_sets]] {shown} named as [[databases]] entries; give each file set "
                "a name of its own (e.g. 'erp-files')"
            )
        # Two repositories at one location are one repository: the "mirror" holds no copy.
        seen: dict[str, str] = {}
        for repo in self.repositories:
            location = _location(repo)
            if location in seen:
                raise ValueError(
                    f"repositories {seen[location]!r} and {repo.name!r} are both at {location}"
                )
            seen[location] = repo.name
        return self

    def repository(self, name: str | None = None) -> RepositorySettings:
        """The named repository, or the primary (first) one. Raises ConfigError."""
        return pick_repository(self.repositories, name)

    def database(self, name: str) -> DatabaseSettings:
        for db in self.databases:
            if db.name == name:
                return db
        raise unknown_database(name, [d.name for d in self.databases])

    def rpo_for_file_set(self, name: str) -> Rpo:
        """The thresholds of configured file set ``name``: ``[rpo]`` with its own
        ``[file_sets.rpo]``. Raises ConfigError."""
        own, base = self.file_set(name).rpo, self.rpo_for(None)
        return dataclasses.replace(
            base,
            files=base.files if own.files_hours is None else timedelta(hours=own.files_hours),
            restore_test=(
                base.restore_test
                if own.restore_test_days is None
                else timedelta(days=own.restore_test_days)
            ),
            copy=base.copy if own.copy_hours is None else timedelta(hours=own.copy_hours),
            shrink=base.shrink if own.shrink_percent is None else own.shrink_percent / 100,
        )

    def rpo_for(self, name: str | None) -> Rpo:
        """The thresholds of configured database ``name``; None: ``[rpo]``'s alone.
        Raises ConfigError."""
        own = self.database(name).rpo if name is not None else RpoOverride()
        defaults = self.rpo

        def pick(key: str) -> float:
            value = getattr(own, key)
            return float(getattr(defaults, key) if value is None else value)

        return Rpo(
            full=timedelta(hours=pick("full_hours")),
            physical=timedelta(hours=pick("physical_hours")),
            restore_test=timedelta(days=pick("restore_test_days")),
            copy=timedelta(hours=pick("copy_hours")),
            archive_lag=timedelta(minutes=pick("archive_lag_minutes")),
            archive_backlog=defaults.archive_backlog,
            shrink=pick("shrink_percent") / 100,
            wal_copy=timedelta(minutes=pick("wal_copy_minutes")),
            files=timedelta(hours=defaults.files_hours),
            standby_lag=timedelta(minutes=pick("standby_lag_minutes")),
            standby_lock_wait=timedelta(minutes=pick("standby_lock_wait_minutes")),
        )

    def file_set(self, name: str) -> FileSetSettings:
        for file_set in self.file_sets:
            if file_set.name == name:
                return file_set
        known = ", ".join(f.name for f in self.file_sets) or "none"
        raise ConfigError(f"file set {name!r} is not configured", hint=f"configured: {known}")

    def repository_passphrase(self) -> SecretStr:
        """The passphrase that opens the repositories: environment first, then the file."""
        secret = repository_passphrase(self.passphrase, self.passphrase_file)
        return secret if isinstance(secret, SecretStr) else SecretStr(secret.get_secret_value())

    def wal_settings(self) -> WalSettings:
        """What the WAL commands use of these settings (see respaldo.config_core)."""
        return WalSettings(
            config_path=self.toml_path,
            repositories=tuple(
                WalRepository(
                    r.name,
                    r.url,
                    {
                        k: v
                        for k, v in r.model_dump(exclude={"name", "url"}).items()
                        if v is not None
                    },
                )
                for r in self.repositories
            ),
            databases=tuple(d.name for d in self.databases),
            passphrase=None
            if self.passphrase is None
            else Secret(self.passphrase.get_secret_value()),
            passphrase_file=self.passphrase_file,
            cache_dir=self.cache_dir,
            key_cache=self.key_cache,
            compression_level=self.compression_level,
            alerts=bool(self.notifications.targets),
        )


def _location(repo: RepositorySettings) -> str:
    return location(repo.url, repo.endpoint_url)


def _sources(cls: type[Settings], values: dict[str, Any]) -> dict[str, Any]:
    """What ``cls`` is validated from: ``values``, the environment and the TOML file, as
    BaseSettings merged its sources (init, environment, TOML): each one's top-level keys
    matched to the fields case-insensitively, then merged with pydantic's ``deep_update``
    (tables key by key, any other value replaced), the first source winning."""
    sources = [_by_field(cls, values), _environment(cls)]
    if cls.toml_path is not None:
        with cls.toml_path.open("rb") as file:
            sources.append(_by_field(cls, tomllib.load(file)))
    state: dict[str, Any] = {}
    for source in sources:
        state = deep_update(source, state)
    return state


def _by_field(cls: type[Settings], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each top-level key that names a field in another case renamed to
    the field (the first such key wins, the others are dropped); other keys are kept,
    for validation to refuse. (pydantic-settings' InitSettingsSource, case-insensitive.)"""
    spelt: dict[str, list[str]] = {}
    for key in values:
        spelt.setdefault(key.lower(), []).append(key)
    left = set(values)
    named: dict[str, Any] = {}
    for field in cls.model_fields:
        keys = [key for key in spelt.get(field.lower(), ()) if key in left]
        if keys:
            left.difference_update(keys)
            named[field] = values[keys[0]]
    named.update({key: value for key, value in values.items() if key in left})
    return named


def _environment(cls: type[Settings]) -> dict[str, Any]:
    """The settings the environment gives: ``RESPALDO_<field>`` (any case), nested keys
    joined by ``__``, tables and lists as JSON. Variables naming no field are ignored.

    Only the passphrase is read here (the usual case: nothing else, or only it); any other
    variable of a field goes to pydantic-settings' own EnvSettingsSource, over a
    BaseSettings with the same fields, which parses it as it always did.
    """
    prefix = ENV_PREFIX.lower()
    passphrase: list[str] = []
    for name, value in os.environ.items():
        lowered = name.lower()  # pydantic-settings reads them case-insensitively
        if not lowered.startswith(prefix):
            continue
        key = lowered.removeprefix(prefix)
        if key == "passphrase":
            passphrase.append(value)
        elif key.split("__", 1)[0] in cls.model_fields:
            return _parsed_environment()
    if not passphrase:
        return {}
    if len(passphrase) > 1 or not passphrase[0]:
        return _parsed_environment()
    return {"passphrase": passphrase[0]}


def _parsed_environment() -> dict[str, Any]:
    from pydantic_settings import EnvSettingsSource

    parsed: dict[str, Any] = EnvSettingsSource(_environment_twin())()
    return parsed


@functools.cache
def _environment_twin() -> type[BaseSettings]:
    """A BaseSettings with Settings' fields and its former environment settings, for
    pydantic-settings' EnvSettingsSource (which reads only the fields and the config)."""
    from pydantic import create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _Environment(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
        )

    fields: dict[str, Any] = {
        name: (field.annotation, field) for name, field in Settings.model_fields.items()
    }
    return create_model("Settings", __base__=_Environment, **fields)


def _settings_error() -> type[Exception]:
    """pydantic-settings' SettingsError, imported only when an error is being handled."""
    from pydantic_settings import SettingsError

    return SettingsError


def load_settings(
    config_file: Path | str | None = None, *, check_urls: bool = True, **overrides: Any
) -> Settings:
    """Read settings from ``config_file`` (or ``RESPALDO_CONFIG``) and the environment.

    ``check_urls=False`` checks notification URLs only for their form (a scheme, no
    password written in them), without loading apprise: for ``wal-push`` and
    ``wal-fetch``, which the server runs once per WAL file.

    A config file is required: without one every setting would be a default, and the
    default catalog and an empty list of repositories make every command quietly do
    nothing. Raises ConfigError, with the offending keys, when no file is named, the
    file is missing, is not TOML, holds secrets, or does not validate.
    """
    path, _ = read_config_file(config_file)
    # A subclass per call carries the TOML path without global state.
    cls: type[Settings] = type("Settings", (Settings,), {"toml_path": path})
    token = _check_urls.set(check_urls)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid config file {path}: {problems}") from None
    except _settings_error() as exc:  # an environment variable that is not JSON where it must be
        raise ConfigError(
            f"invalid setting in the environment: {exc}",
            hint="RESPALDO_<KEY> of a list or table is JSON, e.g. "
            'RESPALDO_REPOSITORIES=\'[{"name": "local", "url": "/srv/repo"}]\'',
        ) from None
    finally:
        _check_urls.reset(token)


def _problem(err: Any) -> str:
    """One validation error as ``where: what`` (no "Value error, " noise; ``where`` left
    out for checks of the whole config)."""
    where = ".".join(str(p) for p in err["loc"])
    cause = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
    what = str(cause) if cause is not None else err["msg"]
    return f"{where}: {what}" if where else what
