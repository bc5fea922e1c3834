"""Object storage: one small interface and its implementations.

Words used here:

- *store*: a flat namespace of objects addressed by *name* (``packs/ab/abcdef…``). Names are
  relative, ``/``-separated and validated (:func:`validate_name`); a store never
  interprets them beyond the prefix used by ``list``.
- *object*: an immutable byte string. ``put`` replaces atomically: a reader sees the old
  object, the new one, or nothing, never a torn write. The repository never relies on
  replacement except for its ``config`` file: it gives every other object a unique name.

Backends know nothing of chunks, keys or encryption. Errors are sorted into
:class:`~respaldo.errors.ObjectNotFound`, :class:`~respaldo.errors.TransientStorageError`
and :class:`~respaldo.errors.PermanentStorageError`; retries wrap a backend
(:mod:`respaldo.storage.retry`) instead of living inside it.
"""

from respaldo.storage.base import ObjectInfo, Storage, validate_name, validate_prefix
from respaldo.storage.registry import open_storage

__all__ = ["ObjectInfo", "Storage", "open_storage", "validate_name", "validate_prefix"]
