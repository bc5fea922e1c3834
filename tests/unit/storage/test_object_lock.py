"""Object Lock without a server: the policy, the rewind planner, the settings, the headers.

What SeaweedFS and moto do with locked objects is tested in
``tests/integration/offsite/test_object_lock.py`` and by the contract suite's locked backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from respaldo.config import RepositorySettings
from respaldo.errors import (
    ConfigError,
    ObjectNotFound,
    PermanentStorageError,
    TransientStorageError,
)
from respaldo.operations.repositories import storage_options
from respaldo.storage.base import ObjectInfo
from respaldo.storage.memory import MemoryStorage
from respaldo.storage.object_lock import (
    BucketLockState,
    LockPolicy,
    ObjectVersion,
    RewindStep,
    bucket_warnings,
    extend_locks,
    locking_store,
    plan_rewind,
    require_locking_store,
    rewind,
)
from respaldo.storage.retry import RetryingStorage
from respaldo.storage.s3 import S3Storage

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- the policy -------------------------------------------------------------------------


def test_a_lock_is_renewed_once_less_than_half_the_period_is_left() -> None:
    policy = LockPolicy("COMPLIANCE", 30)
    now = T0
    assert policy.until(now) == now + timedelta(days=30)
    assert not policy.needs_renewal(now + timedelta(days=16), now)
    assert not policy.needs_renewal(now + timedelta(days=15), now)
    assert policy.needs_renewal(now + timedelta(days=14, hours=23), now)
    assert policy.needs_renewal(now - timedelta(days=1), now)  # already ended
    assert policy.needs_renewal(None, now)  # never locked


@pytest.mark.parametrize(
    ("mode", "days", "message"),
    [
        ("governance", 7, "unknown object_lock_mode"),
        ("LEGAL_HOLD", 7, "unknown object_lock_mode"),
        ("COMPLIANCE", 0, "1 or more"),
        ("COMPLIANCE", -3, "1 or more"),
        ("COMPLIANCE", True, "1 or more"),
    ],
)
def test_bad_policies_are_refused(mode: str, days: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LockPolicy(mode, days)


# --- rewind planning ------------------------------------------------------------------


def v(name: str, vid: str, minutes: float, *, marker: bool = False, latest: bool = False) -> Any:
    return ObjectVersion(name, vid, at(minutes), 10, delete_marker=marker, latest=latest)


def test_rewind_restores_what_was_deleted_or_overwritten_and_hides_what_is_new() -> None:
    versions = [
        # deleted by the attacker at minute 30
        v("packs/aa/1", "m1", 30, marker=True, latest=True),
        v("packs/aa/1", "p1", 0),
        # overwritten with garbage
        v("manifests/b", "bad", 31, latest=True),
        v("manifests/b", "good", 1),
        # written by the attacker, did not exist before
        v("ransom-note", "n1", 32, latest=True),
        # untouched
        v("config", "c1", 0, latest=True),
        # deleted (by garbage collection) before the attack: stays deleted
        v("packs/bb/2", "gc", 10, marker=True, latest=True),
        v("packs/bb/2", "p2", 0),
        # a lease: exempt
        v("locks/shared-x", "l2", 33, latest=True),
    ]
    steps = plan_rewind(versions, at(20), exempt=("locks/",))
    assert steps == [
        RewindStep("manifests/b", "restore", "good", 10),
        RewindStep("packs/aa/1", "restore", "p1", 10),
        RewindStep("ransom-note", "delete", size=10),
    ]


def test_rewind_of_an_untouched_store_changes_nothing() -> None:
    versions = [v("config", "c2", 5, latest=True), v("config", "c1", 0)]
    assert plan_rewind(versions, at(10)) == []


def test_rewind_takes_the_newer_of_two_versions_in_the_same_second() -> None:
    # Listed newest first, as the store lists them: the first one counts.
    versions = [v("config", "second", 0, latest=True), v("config", "first", 0)]
    assert plan_rewind(versions, at(0)) == []
    versions = [
        v("config", "third", 5, latest=True),
        v("config", "second", 0),
        v("config", "first", 0),
    ]
    assert plan_rewind(versions, at(1)) == [RewindStep("config", "restore", "second", 10)]


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20), st.booleans()),
        max_size=30,
    ),
    st.integers(0, 20),
)
def test_after_a_rewind_every_name_is_as_it_was(
    history: list[tuple[str, int, bool]], to: int
) -> None:
    """Applying the plan to a model of the store gives the state at ``to``."""
    versions: list[ObjectVersion] = []
    for number, (name, minute, marker) in enumerate(sorted(history, key=lambda h: h[1])):
        versions.append(ObjectVersion(name, f"v{number}", at(minute), 1, delete_marker=marker))
    # Mark the newest per name as latest, and list newest first, as S3 does.
    newest: dict[str, ObjectVersion] = {}
    for version in versions:
        newest[version.name] = version
    listed = [
        ObjectVersion(x.name, x.version_id, x.modified, 1, x.delete_marker, newest[x.name] is x)
        for x in reversed(versions)
    ]

    def state(upto: datetime | None) -> dict[str, str]:
        current: dict[str, str] = {}
        for version in versions:
            if upto is None or version.modified <= upto:
                if version.delete_marker:
                    current.pop(version.name, None)
                else:
                    current[version.name] = version.version_id
        return current

    after = state(None)
    for step in plan_rewind(listed, at(to)):
        if step.action == "restore":
            after[step.name] = step.version_id
        else:
            del after[step.name]
    assert after == state(at(to))


# --- finding the capability -----------------------------------------------------------


def test_the_locking_store_is_found_behind_the_retry_wrapper() -> None:
    s3 = S3Storage("bucket", "p", endpoint_url="http://127.0.0.1:9")
    assert locking_store(RetryingStorage(s3)) is s3
    assert locking_store(RetryingStorage(MemoryStorage("x"))) is None
    with pytest.raises(ConfigError, match="needs a versioned S3 bucket"):
        require_locking_store(RetryingStorage(MemoryStorage("x")), "rewind")


# --- settings -------------------------------------------------------------------------


def _settings(**extra: Any) -> RepositorySettings:
    return RepositorySettings.model_validate({"name": "s3", "url": "s3://b/p"} | extra)


def test_lock_settings_reach_the_store_with_leases_exempt() -> None:
    options = storage_options(_settings(object_lock_mode="COMPLIANCE", object_lock_days=30))
    assert options["object_lock_mode"] == "COMPLIANCE"
    assert options["object_lock_days"] == 30
    assert options["object_lock_exempt"] == ("locks/",)
    # Any S3 repository: leases are never rewound either, locked bucket or not.
    assert storage_options(_settings())["object_lock_exempt"] == ("locks/",)
    local = RepositorySettings.model_validate({"name": "l", "url": "file:///srv/r"})
    assert "object_lock_exempt" not in storage_options(local)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"object_lock_mode": "COMPLIANCE"}, "go together"),
        ({"object_lock_days": 30}, "go together"),
        ({"object_lock_mode": "compliance", "object_lock_days": 30}, "object_lock_mode"),
        ({"object_lock_mode": "COMPLIANCE", "object_lock_days": 0}, "object_lock_days"),
        (
            {"url": "file:///srv/backups", "object_lock_mode": "COMPLIANCE", "object_lock_days": 3},
            "only on S3",
        ),
    ],
)
def test_bad_lock_settings_are_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**extra)


def test_the_store_refuses_half_a_lock_setting() -> None:
    with pytest.raises(ConfigError, match="go together"):
        S3Storage("bucket", object_lock_mode="GOVERNANCE")


# --- what a locked put sends ----------------------------------------------------------


def _locked_store(**options: Any) -> S3Storage:
    return S3Storage(
        "bucket",
        "repo",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SecretStr("secret"),
        storage_class=None,
        object_lock_mode="GOVERNANCE",
        object_lock_days=7,
        object_lock_exempt=("locks/",),
        **options,
    )


def _bucket_state(stubber: Stubber, *, lock: bool) -> None:
    stubber.add_response("get_bucket_versioning", {"Status": "Enabled"}, {"Bucket": "bucket"})
    if lock:
        stubber.add_response(
            "get_object_lock_configuration",
            {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}},
            {"Bucket": "bucket"},
        )
    else:
        stubber.add_client_error(
            "get_object_lock_configuration",
            "ObjectLockConfigurationNotFoundError",
            http_status_code=404,
        )


def test_a_locked_put_carries_mode_and_date_and_a_lease_does_not() -> None:
    store = _locked_store()
    with Stubber(store.client) as stubber:
        stubber.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": "repo/packs/aa/x",
                "Body": b"data",
                "ContentMD5": ANY,
                "ObjectLockMode": "GOVERNANCE",
                "ObjectLockRetainUntilDate": ANY,
            },
        )
        stubber.add_response(
            "put_object",
            {},
            {"Bucket": "bucket", "Key": "repo/locks/shared-1", "Body": b"l", "ContentMD5": ANY},
        )
        before = datetime.now(UTC)
        store.put("packs/aa/x", b"data")
        store.put("locks/shared-1", b"l")  # and no request asks the bucket anything
        stubber.assert_no_pending_responses()
    request: dict[str, Any] = {}
    store._add_object_options(request, "packs/bb/y")  # type: ignore[arg-type]
    until = request["ObjectLockRetainUntilDate"]
    assert before + timedelta(days=7) <= until <= datetime.now(UTC) + timedelta(days=7)


def test_a_refused_locked_write_to_a_bucket_without_object_lock_says_why() -> None:
    store = _locked_store()
    with Stubber(store.client) as stubber:
        # SeaweedFS's wording: nothing in it says "Object Lock".
        stubber.add_client_error("put_object", "InvalidRequest", "Invalid Request", 400)
        _bucket_state(stubber, lock=False)
        with pytest.raises(ConfigError, match="has no Object Lock; nothing was written") as info:
            store.put("packs/aa/x", b"data")
        assert "object-lock-enabled-for-bucket" in (info.value.hint or "")
        stubber.assert_no_pending_responses()


def test_an_invalid_request_to_a_lockable_bucket_stays_what_it_was() -> None:
    store = _locked_store()
    with Stubber(store.client) as stubber:
        stubber.add_client_error("put_object", "InvalidRequest", "Something else", 400)
        _bucket_state(stubber, lock=True)
        with pytest.raises(PermanentStorageError, match="Something else"):
            store.put("packs/aa/x", b"data")
        stubber.assert_no_pending_responses()


def test_a_rewind_skips_what_already_has_the_old_bytes() -> None:
    # A second run after a partial failure: the restored copy has a new version id but
    # the same ETag and size as the version it came from.
    versions = [
        ObjectVersion("packs/aa/1", "copy", at(40), 10, latest=True, etag='"e1"'),
        ObjectVersion("packs/aa/1", "m1", at(30), delete_marker=True),
        ObjectVersion("packs/aa/1", "p1", at(0), 10, etag='"e1"'),
        ObjectVersion("packs/bb/2", "m2", at(30), delete_marker=True, latest=True),
        ObjectVersion("packs/bb/2", "p2", at(0), 10, etag='"e2"'),
    ]
    assert plan_rewind(versions, at(20)) == [RewindStep("packs/bb/2", "restore", "p2", 10)]


# --- versions as S3 lists them ----------------------------------------------------------


def test_versions_are_newest_first_and_a_version_beats_a_marker_of_the_same_second() -> None:
    store = S3Storage("bucket", "repo", endpoint_url="http://127.0.0.1:9")
    second = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
    with Stubber(store.client) as stubber:
        stubber.add_response(
            "list_object_versions",
            {
                "Versions": [
                    {
                        "Key": "repo/config",
                        "VersionId": "v2",
                        "IsLatest": True,
                        "LastModified": second + timedelta(seconds=5),
                        "Size": 3,
                        "ETag": '"b"',
                    },
                    {
                        "Key": "repo/config",
                        "VersionId": "v1",
                        "IsLatest": False,
                        "LastModified": second,
                        "Size": 3,
                        "ETag": '"a"',
                    },
                    {
                        "Key": "elsewhere/x",
                        "VersionId": "o",
                        "IsLatest": True,
                        "LastModified": second,
                        "Size": 1,
                    },
                ],
                "DeleteMarkers": [
                    {
                        "Key": "repo/config",
                        "VersionId": "m1",
                        "IsLatest": False,
                        "LastModified": second,
                    },
                ],
            },
            {"Bucket": "bucket", "Prefix": "repo/"},
        )
        listed = list(store.versions())
    assert [(v.version_id, v.delete_marker, v.latest) for v in listed] == [
        ("v2", False, True),
        ("v1", False, False),
        ("m1", True, False),
    ]
    assert listed[1].etag == '"a"'
    # Rewound into that second: the version counts as the newer, so it comes back.
    assert plan_rewind(listed, second + timedelta(seconds=1)) == [
        RewindStep("config", "restore", "v1", 3)
    ]


# --- lock renewal and rewind over a store in memory -------------------------------------


class FakeLockingStore:
    """A versioned store in memory with locks, failing where a test tells it to."""

    location = "fake://bucket"
    lock_exempt = ("locks/",)

    def __init__(self) -> None:
        self.lock_policy: LockPolicy | None = LockPolicy("COMPLIANCE", 10)
        self.until: dict[str, datetime | None] = {}
        self.history: dict[str, list[ObjectVersion]] = {}
        self.fail: dict[str, list[Exception]] = {}
        self.extended: list[str] = []
        self.versioning = "Enabled"
        self.clock = 0

    def _maybe_fail(self, name: str) -> None:
        if self.fail.get(name):
            raise self.fail[name].pop(0)

    def write(self, name: str, minute: float, until: datetime | None = None) -> None:
        self.clock += 1
        vid = f"v{self.clock}"
        old = [
            ObjectVersion(v.name, v.version_id, v.modified, v.size, v.delete_marker, False, v.etag)
            for v in self.history.get(name, [])
        ]
        self.history[name] = [
            ObjectVersion(name, vid, at(minute), 1, latest=True, etag=f"{name}@{minute}"),
            *old,
        ]
        self.until[name] = until

    def bucket_lock_state(self) -> BucketLockState:
        return BucketLockState(self.lock_policy is not None, self.versioning)

    def noncurrent_expiration_days(self) -> int | None:
        return None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(
            ObjectInfo(n, 1) for n, h in sorted(self.history.items()) if not h[0].delete_marker
        )

    def locked_until(self, name: str) -> datetime | None:
        self._maybe_fail(name)
        if name not in self.until:
            raise ObjectNotFound(f"no {name}", name=name)
        return self.until[name]

    def extend_lock(self, name: str, until: datetime) -> None:
        self.extended.append(name)
        self.until[name] = until

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        return iter([v for n in sorted(self.history) for v in self.history[n]])

    def restore_version(self, name: str, version_id: str) -> None:
        self._maybe_fail(name)
        (old,) = [v for v in self.history[name] if v.version_id == version_id]
        self.clock += 1
        rest = [
            ObjectVersion(v.name, v.version_id, v.modified, v.size, v.delete_marker, False, v.etag)
            for v in self.history[name]
        ]
        self.history[name] = [
            ObjectVersion(name, f"v{self.clock}", at(1000), old.size, latest=True, etag=old.etag),
            *rest,
        ]

    def delete(self, name: str) -> None:
        self._maybe_fail(name)
        self.clock += 1
        rest = [
            ObjectVersion(v.name, v.version_id, v.modified, v.size, v.delete_marker, False, v.etag)
            for v in self.history[name]
        ]
        self.history[name] = [
            ObjectVersion(name, f"m{self.clock}", at(1000), delete_marker=True, latest=True),
            *rest,
        ]


def test_renewal_asks_every_object_and_renews_those_with_little_left() -> None:
    store = FakeLockingStore()
    now = at(0)
    store.write("packs/aa/fresh", 0, now + timedelta(days=9))  # plenty left
    store.write("packs/aa/old", 0, now + timedelta(days=2))  # less than half left
    store.write("config", 0, None)  # written before the lock was configured
    store.write("locks/shared-1", 0, None)  # exempt
    store.write("packs/aa/flaky", 0, now + timedelta(days=1))
    store.fail["packs/aa/flaky"] = [TransientStorageError("slow down")]
    store.write("packs/aa/broken", 0, now)
    store.fail["packs/aa/broken"] = [PermanentStorageError("access denied")]

    dry = extend_locks(store, now, dry_run=True)
    assert (dry.checked, dry.extended, store.extended) == (5, 3, [])
    assert len(dry.failed) == 1 and "access denied" in dry.failed[0]

    real = extend_locks(store, now)
    assert (real.checked, real.extended) == (5, 4)
    assert sorted(store.extended) == ["config", "packs/aa/broken", "packs/aa/flaky", "packs/aa/old"]
    assert all(store.until[n] == now + timedelta(days=10) for n in store.extended)
    assert store.until["locks/shared-1"] is None


def test_a_rewind_run_again_after_a_failure_finishes_the_rest() -> None:
    store = FakeLockingStore()
    for name in ("config", "packs/aa/1", "packs/bb/2"):
        store.write(name, 0)
    for name in ("config", "packs/aa/1", "packs/bb/2"):
        store.delete(name)  # the attack
    store.fail["packs/bb/2"] = [PermanentStorageError("denied")]  # not retried
    first = rewind(store, at(500), now=at(2000))
    assert (first.restored, first.applied, len(first.failed)) == (3, 2, 1)
    second = rewind(store, at(500), now=at(2000))
    assert [(s.name, s.action) for s in second.steps] == [("packs/bb/2", "restore")]
    assert second.applied == 1 and not second.failed
    assert rewind(store, at(500), now=at(2000), dry_run=True).steps == []


def test_a_rewind_refuses_the_future_and_a_bucket_without_versions() -> None:
    store = FakeLockingStore()
    store.write("config", 0)
    with pytest.raises(ConfigError, match="not in the past"):
        rewind(store, at(10), now=at(5))
    with pytest.raises(ConfigError, match="time zone"):
        rewind(store, datetime(2026, 1, 1), now=at(5))
    store.versioning = ""
    with pytest.raises(ConfigError, match="does not keep versions"):
        rewind(store, at(1), now=at(5))


class _ExpiringStore(FakeLockingStore):
    def __init__(self, days: int) -> None:
        super().__init__()
        self.days = days

    def noncurrent_expiration_days(self) -> int | None:
        return self.days


def test_a_lifecycle_of_one_day_says_one_day() -> None:
    """The warning said "removes old versions after 1 days" for a rule of one day."""
    (said,) = bucket_warnings(_ExpiringStore(1))
    assert said.startswith("the bucket's lifecycle removes old versions after 1 day, before "), said
    (said,) = bucket_warnings(_ExpiringStore(3))
    assert "old versions after 3 days, before object_lock_days (10) ends" in said, said
