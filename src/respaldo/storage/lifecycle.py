"""Bucket lifecycle rules that would take a repository's objects away from under it.

A deduplicating repository's newest backup references chunks in packs of every age: a
pack written on the first day can hold chunks of today's backup. So a lifecycle rule that
*expires current objects* (``Expiration`` after ``Days`` or at a ``Date``; common on
buckets that held plain dump files, "delete after 30 days") deletes, on day 31, packs that
the backup of day 25 deduplicated against; one that *moves them to an archive class*
(``GLACIER``, ``DEEP_ARCHIVE``) makes them unreadable by the ranged reads of a restore
until someone asks for each object back. Either way every backup was verified good when
it was written and becomes unrestorable later, while respaldo writes nothing and sees
nothing. Expired backups and garbage are respaldo's own to delete (``prune``).

Harmless, and what an Object Lock repository wants: rules on *old versions* only
(``NoncurrentVersionExpiration``, ``NoncurrentVersionTransitions``), expired delete
markers (``Expiration: {ExpiredObjectDeleteMarker: true}``), aborting incomplete
multipart uploads, transitions to classes read like STANDARD (``STANDARD_IA``,
``GLACIER_IR``, ``INTELLIGENT_TIERING``), disabled rules, rules filtered by object tags
(respaldo tags nothing), and rules whose prefix matches no key the repository writes: it
writes only :data:`REPOSITORY_NAMES` below its own prefix, so a rule on ``logs/`` of a
bucket whose root is the repository takes nothing of it, while one on ``pa`` takes its
packs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from respaldo.phrases import days_said

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
"""Classes whose objects cannot be read without a restore request."""

REPOSITORY_NAMES = (
    "config",
    "keys/",
    "packs/",
    "index/",
    "manifests/",
    "locks/",
    "quarantine/",
    "wal/",
    "clusters/",
)
"""Every key a repository writes, below its prefix: ``config`` itself, and everything under
each of the others (docs/repository-format.md). Kept here because storage knows nothing of
the repository; a unit test holds it equal to the repository's own prefixes."""

HAZARD_HINT = (
    "respaldo deletes expired backups itself (prune): remove the rule, or limit it to "
    "prefixes the repository does not write (below its own prefix it writes only "
    + ", ".join(REPOSITORY_NAMES)
    + ") or to old versions (NoncurrentVersionExpiration, see docs/configuration.md), or "
    "use another bucket or prefix"
)


def rule_prefix(rule: Mapping[str, Any]) -> str | None:
    """The key prefix a rule applies to ("" for every key), or None for a rule filtered
    by tags, which never matches an object respaldo wrote."""
    rule_filter = rule.get("Filter")
    if rule_filter is None:
        return str(rule.get("Prefix", ""))  # the legacy form: a prefix beside the rule
    if "Tag" in rule_filter:
        return None
    both = rule_filter.get("And")
    if both is not None:
        if both.get("Tags"):
            return None
        return str(both.get("Prefix", ""))
    # {"Prefix": p}, {} or size limits only: every key below the prefix (or all).
    return str(rule_filter.get("Prefix", ""))


def _covers(prefix: str, key_prefix: str) -> bool:
    """Whether a rule on keys below ``prefix`` can match a key the repository at
    ``key_prefix`` writes (one of :data:`REPOSITORY_NAMES` below it)."""
    for name in REPOSITORY_NAMES:
        key = key_prefix + name
        # "config" is one key: the rule's prefix must be a prefix of it. A folder: either
        # the rule's prefix is within it, or the folder within the rule's prefix.
        if key.startswith(prefix) or (key.endswith("/") and prefix.startswith(key)):
            return True
    return False


def what_it_does(rule: Mapping[str, Any]) -> str | None:
    """How a rule takes current objects away ("deletes them 30 days after they are
    written"), or None if it does not."""
    expiration = rule.get("Expiration") or {}
    if "Days" in expiration:
        return f"deletes them {days_said(expiration['Days'])} after they are written"
    if "Date" in expiration:
        return f"deletes them on {expiration['Date']}"
    for transition in rule.get("Transitions") or []:
        storage_class = transition.get("StorageClass")
        if storage_class in ARCHIVE_CLASSES:
            when = (
                f"{days_said(transition['Days'])} after they are written"
                if "Days" in transition
                else f"on {transition.get('Date')}"
            )
            return f"moves them to {storage_class} {when}"
    return None


def hazards(rules: Iterable[Mapping[str, Any]], key_prefix: str) -> list[str]:
    """One sentence per enabled rule that deletes or archives current objects below
    ``key_prefix`` (a store's key prefix with its trailing ``/``, or "" for a whole
    bucket). Pure."""
    found = []
    for rule in rules:
        if rule.get("Status") != "Enabled":
            continue
        prefix = rule_prefix(rule)
        if prefix is None or not _covers(prefix, key_prefix):
            continue
        does = what_it_does(rule)
        if does is not None:
            where = f"keys below {prefix!r}" if prefix else "every key"
            found.append(f"lifecycle rule {rule.get('ID', '(no id)')!r} ({where}) {does}")
    return found


@runtime_checkable
class LifecycleStore(Protocol):
    """A store in a bucket with lifecycle rules (S3)."""

    def lifecycle_hazards(self) -> list[str]:
        """The rules that delete or archive this store's current objects (sentences)."""
        ...


def lifecycle_store(storage: object) -> LifecycleStore | None:
    """The store with lifecycle rules behind ``storage`` (through wrappers such as the
    retrying one), if it is one."""
    inner: object | None = storage
    while inner is not None and not isinstance(inner, LifecycleStore):
        inner = getattr(inner, "inner", None)
    return inner
