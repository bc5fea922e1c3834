"""One root error, a base per layer, leaf errors that carry context and a hint.

Every error respaldo raises on purpose derives from :class:`RespaldoError`. The CLI and the
API turn them into a one-line message (``str(error)``) plus the hint; anything else that
escapes is a bug. Messages never contain secrets: callers pass names and object keys,
never passphrases, passwords or DSNs with passwords in them.
"""

from __future__ import annotations


class RespaldoError(Exception):
    """Root of every error respaldo raises on purpose.

    ``hint`` tells the user what to do next; it is printed after the message.
    """

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(RespaldoError):
    """The configuration is missing, malformed or refers to something that is not there."""


# --- storage layer -------------------------------------------------------------------


class StorageError(RespaldoError):
    """Base of the storage layer: an object store could not do what was asked."""

    def __init__(self, message: str, *, name: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.name = name


class ObjectNotFound(StorageError):
    """The named object does not exist."""


class InvalidObjectName(StorageError):
    """A name was rejected before it reached the store (``..``, absolute, odd characters)."""


class TransientStorageError(StorageError):
    """A failure that may go away if retried (timeouts, throttling, 5xx)."""


class PermanentStorageError(StorageError):
    """A failure that retrying will not fix (permissions, no such bucket, disk full)."""


# --- repository layer ----------------------------------------------------------------


class RepositoryError(RespaldoError):
    """Base of the repository layer."""


class RepositoryNotFound(RepositoryError):
    """There is no repository at the given location."""


class RepositoryExists(RepositoryError):
    """``init`` was asked to create a repository where one already exists."""


class WrongPassphrase(RepositoryError):
    """No key file of the repository opens with the given passphrase."""


class IntegrityError(RepositoryError):
    """Stored data failed authentication, did not match its id or checksum, or is missing.

    ``obj`` names the object in the store (pack, index, manifest) and ``backup`` the backup
    being read, when known, so that the user knows what is damaged.
    """

    def __init__(
        self, message: str, *, obj: str = "", backup: str = "", hint: str | None = None
    ) -> None:
        parts = [message]
        if backup:
            parts.append(f"backup {backup}")
        if obj:
            parts.append(f"object {obj}")
        super().__init__(": ".join(parts[:1]) + "".join(f" [{p}]" for p in parts[1:]), hint=hint)
        self.obj = obj
        self.backup = backup


class BackupNotFound(RepositoryError):
    """No manifest exists for the given backup id."""


class ChunkerUnavailable(RepositoryError):
    """The compiled FastCDC chunker could not be loaded (the pure-Python one is 200x slower)."""
