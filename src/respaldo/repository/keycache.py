"""A per-machine cache of passphrase-derived keys: argon2id once per key file, not per process.

Opening a repository derives the key-encryption key (KEK) from the passphrase with
argon2id at 64 MiB and 3 passes (:mod:`.keys`): about 0.1 CPU-second and 64 MiB of memory
on an idle machine, and several times that on a loaded one. That is the point of a
password hash, but the server starts ``respaldo wal-push`` once per WAL file, so it was
paid on every segment (as much as the rest of the push together), and it was the
largest single part of a backup's peak memory.

So a KEK, once derived, is kept in ``<cache_dir>/<repository id>/keys/<hash of the key
file id>``: a 0600 file in 0700 directories, owned by the user who runs respaldo. It
holds the key file's salt and cost (a key file re-made with others is derived anew),
the KEK, and ``HMAC-SHA256(KEK, passphrase)``, checked before the KEK is used, so that a
wrong or changed passphrase still fails as before. A file that is not the user's own or
is readable by others is ignored, and any error of the cache only costs the derivation.

The trade-off (docs/configuration.md, ``key_cache``): whoever can read the cache file can
open the repository, like whoever can read ``passphrase_file`` or the environment of the
process; on most installations both are the same user's 0600 files on the same disk, so
little changes. What does change: the file also lets its reader test guesses of the
passphrase at HMAC speed rather than argon2id's, which matters only if the passphrase
protects something else too (do not reuse it). Removing a key file (``respaldo key
remove``, ``key passwd``) makes its cached KEK useless, since the KEK only unwraps that
key file. ``key_cache = false`` turns the cache off and removes nothing; delete
``<cache_dir>/<id>/keys/`` to remove what was cached.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path

from respaldo.repository.keys import KeyFile

log = logging.getLogger(__name__)

_CHECK_CONTEXT = b"respaldo key cache: passphrase check\x00"


def _path(cache_dir: Path, repository_id: str, key: KeyFile) -> Path:
    # The key file's id comes from storage: hashed, it can never name another path.
    name = hashlib.sha256(key.id.encode()).hexdigest()[:32]
    return cache_dir / repository_id / "keys" / name


def _check(kek: bytes, passphrase: str) -> bytes:
    return hmac.new(kek, _CHECK_CONTEXT + passphrase.encode("utf-8"), hashlib.sha256).digest()


def _cost(key: KeyFile) -> list[int]:
    return [key.params.time_cost, key.params.memory_cost, key.params.parallelism]


def cached_kek(cache_dir: Path, repository_id: str, key: KeyFile, passphrase: str) -> bytes | None:
    """The KEK of ``key`` for ``passphrase`` if this machine's cache holds it, else None."""
    path = _path(cache_dir, repository_id, key)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                log.warning("ignoring key cache %s: not private to this user", path)
                return None
            doc = json.loads(fh.read(4096))
        kek = base64.b64decode(doc["kek"])
        if (
            base64.b64decode(doc["salt"]) != key.salt
            or doc["cost"] != _cost(key)
            or len(kek) != 32
            or not hmac.compare_digest(base64.b64decode(doc["check"]), _check(kek, passphrase))
        ):
            return None
        return kek
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_kek(
    cache_dir: Path, repository_id: str, key: KeyFile, passphrase: str, kek: bytes
) -> None:
    """Keep ``kek`` (derived from ``passphrase`` for ``key``) for the next process. Never
    raises: a cache that cannot be written only costs the next process a derivation."""
    path = _path(cache_dir, repository_id, key)
    doc = {
        "salt": base64.b64encode(key.salt).decode(),
        "cost": _cost(key),
        "kek": base64.b64encode(kek).decode(),
        "check": base64.b64encode(_check(kek, passphrase)).decode(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in (cache_dir / repository_id, path.parent):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
        path.parent.chmod(0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(doc).encode())
        tmp.replace(path)
    except OSError as exc:
        log.debug("could not cache the derived key in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
