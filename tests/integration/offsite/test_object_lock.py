"""S3 Object Lock end to end: locked backups, an attacker with the credentials, rewind.

The repository is a prefix in the servers' *locked* bucket (versioned, Object Lock
enabled; tests/servers/s3.py makes it), written in COMPLIANCE mode for one day. The
attacker is a plain boto3 client with the same credentials. Both SeaweedFS and moto run
the main scenario: SeaweedFS enforces locks as AWS does; moto checks, as AWS does, that
locked uploads carry Content-MD5.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sample
from botocore.exceptions import ClientError
from sample.cluster import TempCluster

from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.operations.context import Context
from respaldo.operations.prune import prune
from tests.integration.cli import RunsCli, secret_file
from tests.integration.offsite.test_offsite import _checksums
from tests.servers.s3 import S3Endpoint, new_prefix

pytestmark = pytest.mark.integration
PASSPHRASE = "object lock test passphrase"
DAY = timedelta(days=1)


@dataclass
class Locked(RunsCli):
    pg: TempCluster
    dbname: str
    tmp: Path
    config: Path
    s3: S3Endpoint
    bucket: str
    prefix: str
    capsys: pytest.CaptureFixture[str]

    def objects(self, below: str = "") -> dict[str, str]:
        """Current keys below the prefix, with their ETags."""
        client = self.s3.client()
        found: dict[str, str] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/{below}"
        ):
            found |= {item["Key"]: item["ETag"] for item in page.get("Contents", [])}
        return found

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.s3.client().head_object(Bucket=self.bucket, Key=key))


def write_config(
    tmp: Path,
    pg: TempCluster,
    dbname: str,
    s3: S3Endpoint,
    bucket: str,
    prefix: str,
    *,
    lock: str = 'object_lock_mode = "COMPLIANCE"\nobject_lock_days = 1',
    extra: str = "",
) -> Path:
    password = secret_file(tmp / "db.pass", pg.password.get_secret_value())
    secret = secret_file(tmp / "s3.secret", s3.secret_access_key)
    config = tmp / "respaldo.toml"
    config.write_text(
        f"""
cache_dir = "{tmp / "cache"}"
pack_size = 131072
{extra}
[catalog]
url = "sqlite:///{tmp / "catalog.db"}"
[chunker]
min_size = 1024
avg_size = 4096
max_size = 16384
[[repositories]]
name = "main"
url = "s3://{bucket}/{prefix}"
endpoint_url = "{s3.endpoint_url}"
region = "us-east-1"
access_key_id = "{s3.access_key_id}"
secret_access_key_file = "{secret}"
storage_class = "STANDARD"
{lock}
[[databases]]
name = "erp"
dsn = "postgresql://{pg.superuser}@127.0.0.1:{pg.port}/{dbname}"
password_file = "{password}"
""",
        encoding="utf-8",
    )
    return config


def make_locked(
    request: pytest.FixtureRequest, server: str, pg: TempCluster, dbname: str, tmp: Path, **kw: Any
) -> Locked:
    s3: S3Endpoint = request.getfixturevalue(server)
    prefix = new_prefix()
    config = write_config(tmp, pg, dbname, s3, s3.locked_bucket, prefix, **kw)
    capsys = request.getfixturevalue("capsys")
    return Locked(pg, dbname, tmp, config, s3, s3.locked_bucket, prefix, capsys)


@pytest.fixture(params=["s3_server", "moto_server"], ids=["seaweedfs", "moto"])
def locked(
    request: pytest.FixtureRequest,
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Locked]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    setup = make_locked(request, request.param, pg, erp_db, tmp_path)
    setup.ok("init")
    yield setup


def _past_second() -> datetime:
    """A moment strictly between what was written before and what is written after.

    S3 keeps modification times to the second (or millisecond); waiting a little over a
    second on each side keeps the two apart on every server.
    """
    time.sleep(1.2)
    moment = datetime.now(UTC)
    time.sleep(1.2)
    return moment


def test_backups_are_locked_and_survive_an_attacker_with_the_credentials(
    locked: Locked, new_dbname: str
) -> None:
    out, _ = locked.ok("backup", "erp")
    backup_id = out.strip().splitlines()[-1]
    expected = _checksums(locked.pg, locked.dbname)
    written = datetime.now(UTC)
    keys = locked.objects()
    assert any("/packs/" in key for key in keys) and any("/manifests/" in key for key in keys)
    assert not locked.objects("locks/"), "leases are gone when the backup ends"
    for key in keys:
        head = locked.head(key)
        assert head["ObjectLockMode"] == "COMPLIANCE", key
        until = head["ObjectLockRetainUntilDate"]
        assert written - DAY - timedelta(minutes=5) < until - DAY <= written, key

    before_attack = _past_second()
    # The attacker holds the repository's own credentials: deletes everything, tries to
    # destroy every version for good, and leaves a changed config behind.
    attacker = locked.s3.client()
    refused = 0
    for key in keys:
        attacker.delete_object(Bucket=locked.bucket, Key=key)
    versions = attacker.list_object_versions(Bucket=locked.bucket, Prefix=locked.prefix + "/")
    leases = 0
    for version in versions.get("Versions", []):
        if "/locks/" in version["Key"]:
            # Leases are written unlocked (exempt): their old versions can go.
            attacker.delete_object(
                Bucket=locked.bucket, Key=version["Key"], VersionId=version["VersionId"]
            )
            leases += 1
            continue
        with pytest.raises(ClientError) as info:
            attacker.delete_object(
                Bucket=locked.bucket, Key=version["Key"], VersionId=version["VersionId"]
            )
        assert info.value.response["Error"]["Code"] == "AccessDenied"
        refused += 1
    assert refused >= len(keys)
    assert leases > 0
    attacker.put_object(Bucket=locked.bucket, Key=f"{locked.prefix}/config", Body=b"ransom")
    assert list(locked.objects()) == [f"{locked.prefix}/config"]
    code, _, err = locked.run("verify", "--all")
    assert code != 0

    # A dry run says what it would do and changes nothing.
    _, err = locked.ok("rewind", "main", "--to", before_attack.isoformat(), "--dry-run")
    assert f"would restore {len(keys)} objects" in err
    assert list(locked.objects()) == [f"{locked.prefix}/config"]

    _, err = locked.ok("rewind", "main", "--to", before_attack.isoformat())
    assert f"restored {len(keys)} objects" in err
    assert "catalog rebuild" in err
    assert locked.objects() == keys  # the same objects, byte for byte (same ETags)
    for key in keys:  # and locked again, as the store locks what it writes
        assert locked.head(key)["ObjectLockMode"] == "COMPLIANCE"
    locked.ok("verify", "--all")
    locked.ok("restore", backup_id, "--target-database", new_dbname)
    assert _checksums(locked.pg, new_dbname) == expected


def test_prune_renews_the_locks_kept_backups_need_and_expires_behind_markers(
    request: pytest.FixtureRequest,
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    retention = "[retention]\nkeep_until_expires = false\nkeep_last = 1\nmin_keep = 1"
    setup = make_locked(request, "s3_server", pg, erp_db, tmp_path, extra=retention)
    setup.ok("init")
    out, _ = setup.ok("backup", "erp")
    first = out.strip().splitlines()[-1]
    sample.day_of_work(pg.conninfo_kwargs(erp_db), seed=3, day=1)
    out, _ = setup.ok("backup", "erp")
    second = out.strip().splitlines()[-1]

    # Today: the first backup expires; its manifest and the packs only it needed are
    # hidden behind delete markers, their locked versions stay. Nothing needs renewal yet.
    out, _ = setup.ok("prune", "--json")
    report = json.loads(out)
    assert report["deleted"] == [first]
    (repo,) = report["repositories"]
    assert repo["objectLock"]["renewed"] == 0
    assert repo["objectLock"]["checked"] == len(setup.objects()) - len(setup.objects("locks/"))
    assert repo["error"] is None
    setup.ok("verify", "--all")
    manifest = f"{setup.prefix}/manifests/{first}"
    assert manifest not in setup.objects()
    client = setup.s3.client()
    history = client.list_object_versions(Bucket=setup.bucket, Prefix=manifest)
    assert history["DeleteMarkers"] and history["Versions"]

    # Fourteen hours later less than half of the day is left: prune renews every object
    # still there (a dry run first, which renews nothing).
    later = datetime.now(UTC) + timedelta(hours=14)
    settings = load_settings(setup.config)
    ctx = Context.open(settings)
    try:
        dry = prune(ctx, dry_run=True, now=later)
        assert dry.repositories[0].locks is not None
        assert dry.repositories[0].locks.extended == dry.repositories[0].locks.checked > 0
        key = next(k for k in setup.objects("packs/"))
        assert setup.head(key)["ObjectLockRetainUntilDate"] < later + timedelta(hours=12)
        real = prune(ctx, now=later)
        locks = real.repositories[0].locks
        assert locks is not None and real.ok
        assert locks.extended == locks.checked == dry.repositories[0].locks.checked
        again = prune(ctx, now=later)
        assert again.repositories[0].locks is not None
        assert again.repositories[0].locks.extended == 0
    finally:
        ctx.close()
    for key in setup.objects():
        until = setup.head(key)["ObjectLockRetainUntilDate"]
        assert later + DAY - timedelta(seconds=5) <= until <= later + DAY + timedelta(seconds=5)
    setup.ok("restore", second, "--target-database", f"{erp_db}_r")
    setup.pg.execute(f'DROP DATABASE "{erp_db}_r" WITH (FORCE)')


# --- bad input: clear messages, nothing changed -----------------------------------------


@pytest.mark.parametrize("server", ["s3_server", "moto_server"], ids=["seaweedfs", "moto"])
def test_a_bucket_without_object_lock_is_refused_and_nothing_is_written(
    request: pytest.FixtureRequest,
    server: str,
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    s3: S3Endpoint = request.getfixturevalue(server)
    prefix = new_prefix()
    locked = write_config(tmp_path, pg, erp_db, s3, s3.bucket, prefix)
    setup = Locked(pg, erp_db, tmp_path, locked, s3, s3.bucket, prefix, capsys)
    code, _, err = setup.run("init")
    assert code != 0
    assert "has no Object Lock" in err and "object-lock-enabled-for-bucket" in err
    assert setup.objects() == {}

    # The repository made without the lock, and the setting added afterwards: the backup's
    # first locked write is refused by the server, and the message says why.
    plain = tmp_path / "plain.toml"
    plain.write_text(locked.read_text().replace('object_lock_mode = "COMPLIANCE"', ""))
    plain.write_text(plain.read_text().replace("object_lock_days = 1", ""))
    setup.ok("--config", str(plain), "init")
    before = setup.objects()
    code, _, err = setup.run("backup", "erp")
    assert code != 0
    assert "has no Object Lock; nothing was written" in err, err
    assert setup.objects() == before


def test_rewind_refuses_bad_times_and_unversioned_repositories(
    request: pytest.FixtureRequest,
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    setup = make_locked(request, "moto_server", pg, erp_db, tmp_path)
    _, err = setup.ok("init")
    # No lifecycle rule on the test bucket: old versions would be kept for ever.
    assert "keeps old versions for ever" in err
    before = setup.objects()
    for when, message in [
        ("yesterday", "is not a date and time"),
        ("2026-11-28T09:00:00", "has no time zone"),
        ((datetime.now(UTC) + DAY).isoformat(), "not in the past"),
    ]:
        code, _, err = setup.run("rewind", "main", "--to", when)
        assert code != 0 and message in err, err
    code, _, err = setup.run("rewind", "elsewhere", "--to", "2026-01-01T00:00:00Z")
    assert code != 0 and "elsewhere" in err
    assert setup.objects() == before

    # A bucket that keeps no versions has nothing to go back to.
    plain = write_config(tmp_path, pg, erp_db, setup.s3, setup.s3.bucket, new_prefix(), lock="")
    code, _, err = setup.run(
        "--config", str(plain), "rewind", "main", "--to", "2026-01-01T00:00:00Z"
    )
    assert code != 0 and "does not keep versions" in err, err


def test_rewind_of_a_local_repository_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    config = tmp_path / "respaldo.toml"
    config.write_text(
        f'[catalog]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
        f'[[repositories]]\nname = "local"\nurl = "file://{tmp_path / "repo"}"\n'
    )
    code = invoke(["--config", str(config), "rewind", "local", "--to", "2026-01-01T00:00:00Z"])
    _, err = capsys.readouterr()
    assert code != 0 and "needs a versioned S3 bucket" in err
    assert not (tmp_path / "repo").exists()


def test_rewind_on_a_versioned_bucket_without_locks_leaves_leases_alone(
    request: pytest.FixtureRequest,
    pg: TempCluster,
    erp_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    # The versioned bucket, but no object_lock_mode: nothing is locked, versions are kept.
    # A Madrid installation (the rewind time's offset is checked against it).
    madrid = '[schedules]\ntime_zone = "Europe/Madrid"'
    setup = make_locked(request, "moto_server", pg, erp_db, tmp_path, lock="", extra=madrid)
    setup.ok("init")
    setup.ok("backup", "erp")
    client = setup.s3.client()
    stale_lease = f"{setup.prefix}/locks/shared-{'0' * 32}"
    client.put_object(Bucket=setup.bucket, Key=stale_lease, Body=b"{}")
    objects = setup.objects()
    assert all("ObjectLockMode" not in setup.head(key) for key in objects)
    before = _past_second()
    for key in objects:
        client.delete_object(Bucket=setup.bucket, Key=key)

    # Given in summer time's offset (+02:00) in December: the same instant, planned the
    # same, but an hour later than what a Madrid clock showed at 'before' in +02:00 (an
    # hour's writes or deletions kept); said, as restore --target-time says it.
    summer = before.astimezone(timezone(timedelta(hours=2)))
    out, err = setup.ok("rewind", "main", "--to", summer.isoformat(), "--dry-run", "--json")
    assert (
        f"warning: the rewind time {summer.isoformat(sep=' ')} is "
        f"{before.astimezone(ZoneInfo('Europe/Madrid')):%Y-%m-%d %H:%M:%S} CET in Europe/Madrid "
        "([schedules] time_zone), whose UTC offset then is +01:00, not +02:00: the repository "
        "goes back to that moment; "
    ) in " ".join(err.split()), err
    plan = json.loads(out)
    assert plan["dryRun"] is True and plan["applied"] == 0 and plan["failed"] == []
    assert plan["restored"] == len(objects) - 1 and plan["deleted"] == 0
    assert {step["action"] for step in plan["steps"]} == {"restore"}
    assert not any(step["name"].startswith("locks/") for step in plan["steps"])
    _, err = setup.ok("rewind", "main", "--to", before.isoformat())
    assert "warning:" not in err  # UTC is taken as meant
    assert f"restored {len(objects) - 1} objects" in err  # all but the lease
    # Audited (it hides what was written after --to); the dry run was not.
    out, _ = setup.ok("audit", "--json")
    audited = [(e["action"], e["target"], e["outcome"], e["detail"]) for e in json.loads(out)]
    detail = f"to {before.isoformat()}: restored {len(objects) - 1} objects, hid 0"
    assert audited[0] == ("rewind", "main", "success", detail)
    assert [entry[0] for entry in audited] == ["rewind", "backup.create"]
    assert setup.objects() == {k: v for k, v in objects.items() if k != stale_lease}
    setup.ok("verify", "--all")
