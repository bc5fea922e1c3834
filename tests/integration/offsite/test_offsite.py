"""Several destinations and recovery from the bucket alone, on real PostgreSQL and S3.

The primary repository is a local directory, the secondary a prefix in a bucket of the
SeaweedFS server the test session starts (SSE AES256). Commands run through the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from sample.cluster import TempCluster

from tests.integration.cli import RunsCli, secret_file
from tests.integration.logical.support import flip_byte
from tests.integration.prune.test_prune_cli import DAY, back_date
from tests.ports import closed_port
from tests.servers.faultproxy import FaultProxy, Rule
from tests.servers.notify import Webhook
from tests.servers.s3 import S3Endpoint, new_prefix

pytestmark = pytest.mark.integration
PASSPHRASE = "offsite test passphrase"


@dataclass
class Setup(RunsCli):
    pg: TempCluster
    dbname: str
    tmp: Path
    config: Path
    s3: S3Endpoint
    prefix: str
    capsys: pytest.CaptureFixture[str]

    def local_only(self) -> None:
        """Rewrite the config without the offsite repository."""
        text = self.config.read_text()
        start = text.index('[[repositories]]\nname = "offsite"')
        self.config.write_text(text[:start] + text[text.index("[[databases]]") :])

    def bucket_keys(self, prefix: str = "") -> list[str]:
        client = self.s3.client()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=f"{self.prefix}/{prefix}"
        ):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys


def _config(
    tmp: Path, pg: TempCluster, dbname: str, s3: S3Endpoint, prefix: str, endpoint: str
) -> Path:
    secret = secret_file(tmp / "s3.secret", s3.secret_access_key)
    password = secret_file(tmp / "db.pass", pg.password.get_secret_value())
    config = tmp / "respaldo.toml"
    config.write_text(
        f"""
cache_dir = "{tmp / "cache"}"
pack_size = 131072
[catalog]
url = "sqlite:///{tmp / "catalog.db"}"
[chunker]
min_size = 1024
avg_size = 4096
max_size = 16384
[[repositories]]
name = "local"
url = "file://{tmp / "repo"}"
[[repositories]]
name = "offsite"
url = "s3://{s3.bucket}/{prefix}"
endpoint_url = "{endpoint}"
region = "us-east-1"
access_key_id = "{s3.access_key_id}"
secret_access_key_file = "{secret}"
server_side_encryption = "AES256"
storage_class = "STANDARD"
[[databases]]
name = "erp"
dsn = "postgresql://{pg.superuser}@127.0.0.1:{pg.port}/{dbname}"
password_file = "{password}"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def setup(
    pg: TempCluster,
    erp_db: str,
    s3_server: S3Endpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Setup]:
    prefix = new_prefix()
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    config = _config(tmp_path, pg, erp_db, s3_server, prefix, s3_server.endpoint_url)
    setup = Setup(pg, erp_db, tmp_path, config, s3_server, prefix, capsys)
    setup.ok("init")
    yield setup


def _record(setup: Setup, backup_id: str) -> dict[str, Any]:
    out, _ = setup.ok("show", backup_id, "--json")
    record: dict[str, Any] = json.loads(out)
    return record


def _checksums(pg: TempCluster, dbname: str) -> dict[str, str]:
    rows = pg.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%'",
        dbname=dbname,
    )
    query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
    return {
        f"{s}.{t}": str(pg.scalar(query.format(sql.Identifier(s, t)), dbname=dbname))
        for s, t in rows
    }


def test_a_backup_lands_in_both_repositories(setup: Setup) -> None:
    out, err = setup.ok("backup", "erp")
    backup_id = out.strip().splitlines()[-1]
    assert f"copied {backup_id} to offsite" in err
    assert any(k.endswith(f"manifests/{backup_id}") for k in setup.bucket_keys("manifests/"))
    assert setup.bucket_keys("packs/")
    record = _record(setup, backup_id)
    assert record["s3Url"] == f"s3://{setup.s3.bucket}/{setup.prefix}/manifests/{backup_id}"
    assert record["storageTier"] == "STANDARD"
    assert record["storagePath"].startswith("file://")
    # Copied again while the bucket opens but refuses its manifests (AccessDenied: not
    # retried, no backoff to wait out): the copy fails, and its completed copy stays
    # recorded. Marked pending, then failed, the bucket counted as lacking it (retention,
    # the status's copy: items, 'copy --all') though the attempt wrote nothing there.
    proxy = FaultProxy(setup.s3.endpoint_url).start()
    config = setup.config.read_text()
    try:
        setup.config.write_text(config.replace(setup.s3.endpoint_url, proxy.url))
        proxy.add(Rule("403", path="/manifests/", times=None))
        code, _, err = setup.run("copy", backup_id, "--to", "offsite")
        assert code == 1 and "403" in err, err
    finally:
        proxy.stop()
        setup.config.write_text(config)
    _, err = setup.ok("copy", "--all", "--to", "offsite")
    assert "nothing to copy" in err, err
    # Whole, as the catalog says.
    setup.ok("verify", backup_id, "--repository", "offsite")
    head = setup.s3.client().head_object(
        Bucket=setup.s3.bucket, Key=f"{setup.prefix}/manifests/{backup_id}"
    )
    assert head.get("ServerSideEncryption") == "AES256"


def test_a_chunk_lost_locally_is_read_from_s3(setup: Setup, new_dbname: str) -> None:
    out, _ = setup.ok("backup", "erp")
    backup_id = out.strip().splitlines()[-1]
    packs = sorted((setup.tmp / "repo" / "packs").rglob("*"))
    packs = [p for p in packs if p.is_file()]
    packs[0].unlink()
    data = bytearray(packs[1].read_bytes())
    data[30] ^= 0xFF
    packs[1].write_bytes(bytes(data))
    code, _, err = setup.run("verify", backup_id)
    assert code == 3 and "pack is missing" in err
    _, err = setup.ok("restore", backup_id, "--target-database", new_dbname)
    assert "read from s3://" in err
    assert packs[0].name in err  # the warning names the damaged object
    # What is wrong follows the chunk's id as it is: "chunk 1f2e…: pack is missing in …",
    # where it once read "chunk 1f2e… is pack is missing in …".
    assert re.search(r"chunk [0-9a-f]{16}: .+? in file://", err), err
    assert not re.search(r"chunk [0-9a-f]{16} is ", err), err
    assert _checksums(setup.pg, setup.dbname) == _checksums(setup.pg, new_dbname)


def test_s3_unreachable_fails_only_the_copy_and_defers_the_prune_there(
    setup: Setup, new_dbname: str
) -> None:
    # Two backups the bucket holds, then it is down (connections refused).
    held = [setup.ok("backup", "erp")[0].strip().splitlines()[-1] for _ in range(2)]
    webhook = Webhook()
    # The clock check off: the backups are dated days apart with nothing between them.
    good_config = setup.config.read_text() + "\n[retention]\nmin_keep = 1\nclock_check_days = 0\n"
    closed = f"http://127.0.0.1:{closed_port()}"
    outage = (
        good_config.replace(setup.s3.endpoint_url, closed)
        + f'\n[[notifications.targets]]\nname = "hook"\nurl = "{webhook.url}"\n'
        + 'levels = ["critical", "warning", "resolved"]\n'
    )
    # A backup never copied, which expires during the outage: taken with the bucket out
    # of the config (no copy tried, as none completed; the failed copy's retries cost 2 s).
    setup.config.write_text(outage)
    setup.local_only()
    uncopied = setup.ok("backup", "erp")[0].strip().splitlines()[-1]
    setup.config.write_text(outage)
    code, out, err = setup.run("backup", "erp")
    assert code == 0, err
    backup_id = out.strip().splitlines()[-1]
    assert "warning: copy of" in err and "offsite" in err
    assert _record(setup, backup_id)["status"] == "completed"
    setup.ok("restore", backup_id, "--target-database", new_dbname)
    # Prune meanwhile: a long outage must not let the local repository fill up, nor fail
    # every nightly prune. The primary is pruned; the bucket's part waits, with a warning
    # and an alert.
    for backup, age in zip([*held, uncopied], (12, 9, 8), strict=True):
        back_date(setup, backup, age * DAY)  # 7 days' retention: all expired
    try:
        out, _ = setup.ok("prune", "--json")
        prunes = [i["json"] for i in webhook.inbox.items if "prune" in i["json"]["title"]]
    finally:
        webhook.close()
    report = json.loads(out)
    said = " ".join(report["warnings"])
    assert "repository offsite could not be reached (cannot open: " in said, said
    assert "2 expired backups keep their records until they are deleted there" in said
    assert report["deleted"] == []
    offsite = report["repositories"][1]
    assert offsite["error"] is None and offsite["deferred"].startswith("cannot open")
    assert len(prunes) == 1, prunes
    assert "repository offsite could not be reached" in prunes[0]["message"]
    # held[1] is the newest backup the bucket holds (the later copy failed): kept in the
    # primary too, as when the bucket can be listed.
    decisions = {d["id"]: d for d in report["decisions"]}
    assert decisions[held[1]]["rules"] == ["newest in offsite"]
    assert {p.name for p in (setup.tmp / "repo" / "manifests").iterdir()} == {held[1], backup_id}
    # The status's copy item counts the backup whose copy failed, not the one that
    # expired before any copy of it (deleted from the primary, it can never be copied
    # there: 'copy --all' leaves it out too); it said "2 backups are not copied".
    _, out, _ = setup.run("status", "--json", "--no-servers")
    items = [i for d in json.loads(out)["databases"] for i in d["items"]]
    (copy,) = [i for i in items if i["key"] == "copy:erp:offsite"]
    assert copy["count"] == 1 and copy["backupId"] == backup_id, copy
    # What waits for the bucket is gone from the primary: not listed as a backup to
    # restore, nor reported lost by a full verify of the primary (exit 3 and an alert).
    listed, _ = setup.ok("list", "--json")
    assert {b["id"] for b in json.loads(listed)} == {held[1], backup_id}
    setup.ok("verify", "--all", "--repository", "local")
    code, _, err = setup.run(
        "restore", held[0], "--target-database", new_dbname, "--repository", "local"
    )
    said = " ".join(err.split())
    assert code != 0 and f"backup {held[0]} was deleted from repository local on " in said
    # Reached but refused (an access key the store does not know: 403) or nothing at
    # the prefix (every object of the mirror deleted): no outage to wait out, so the
    # prune fails there rather than completing with a throttled warning. Dry runs.
    key = f'access_key_id = "{setup.s3.access_key_id}"'
    for broken in (
        good_config.replace(key, 'access_key_id = "nobody"'),
        good_config.replace(setup.prefix, f"{setup.prefix}-gone"),
    ):
        setup.config.write_text(broken)
        code, out, _ = setup.run("prune", "--dry-run", "--json")
        offsite = json.loads(out)["repositories"][1]
        assert code == 1 and offsite["deferred"] is None, offsite
        assert offsite["error"].startswith("cannot open"), offsite
    # Back online: the copy that failed is retried and completes; the expired backup
    # never copied is not copied (it failed, "no manifest", and alerted until the next
    # prune).
    setup.config.write_text(good_config)
    _, err = setup.ok("copy", "--all", "--to", "offsite")
    assert f"{backup_id}: copied to offsite" in err and uncopied not in err
    setup.ok("verify", backup_id, "--repository", "offsite")
    _, err = setup.ok("copy", "--all", "--to", "offsite")
    assert "nothing to copy" in err
    # The first prune that reaches the bucket finishes there what waited.
    out, _ = setup.ok("prune", "--json")
    assert sorted(json.loads(out)["deleted"]) == sorted([*held, uncopied])
    assert [k.rsplit("/", 1)[1] for k in setup.bucket_keys("manifests/")] == [backup_id]


def test_kill_during_upload_leaves_both_verifiable(setup: Setup) -> None:
    # Incompressible data for a score of packs: the proxy below holds the copy at its
    # fourth, so more data only makes every backup, copy and verify slower (4,000 rows,
    # 25 MB, took twice as long).
    setup.pg.execute(
        "CREATE TABLE public.fotos AS SELECT g AS id, "
        "decode(string_agg(md5(random()::text || g || x), ''), 'hex') AS img "
        "FROM generate_series(1, 400) g, generate_series(1, 200) x GROUP BY g",
        dbname=setup.dbname,
    )
    setup.ok("backup", "erp")  # the first one is copied in full
    config = setup.config.read_text()
    # The second backup is taken with the offsite repository out of the config, so that
    # its copy can be started (and killed) on its own.
    setup.local_only()
    setup.pg.execute(
        "UPDATE public.fotos SET img = decode(md5(random()::text), 'hex') || img",
        dbname=setup.dbname,
    )
    out, _ = setup.ok("backup", "erp")
    second = out.strip().splitlines()[-1]
    setup.config.write_text(config)
    before = len(setup.bucket_keys("packs/"))
    # The copy goes through a proxy that lets three packs through and then holds every
    # further pack upload: the kill strikes mid-upload whatever the machine's speed (a
    # fast copy could otherwise finish, manifest included, between a look and the kill).
    proxy = FaultProxy(setup.s3.endpoint_url).start()
    held = proxy.add(Rule("stall", path="/packs/", method="PUT", times=None, after=3))
    setup.config.write_text(config.replace(setup.s3.endpoint_url, proxy.url))
    env = dict(os.environ, RESPALDO_PASSPHRASE=PASSPHRASE)
    script = Path(sys.executable).with_name("respaldo")
    try:
        child = subprocess.Popen(
            [str(script), "--config", str(setup.config), "copy", second, "--to", "offsite"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300  # generous: only a hang waits this long
        while held.hits == 0 and child.poll() is None:
            assert time.monotonic() < deadline, "the copy never reached its fourth pack"
            time.sleep(0.02)
        assert child.poll() is None, f"the copy ended (status {child.returncode}) unheld"
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        proxy.clear()
        proxy.stop()
        setup.config.write_text(config)
    # Two uploads are in flight at most: the fourth began once two had landed.
    assert len(setup.bucket_keys("packs/")) >= before + 2  # killed mid-upload, not before
    assert not any(k.endswith(f"manifests/{second}") for k in setup.bucket_keys("manifests/"))
    setup.ok("verify", "--all", "--repository", "offsite")
    setup.ok("verify", "--all", "--repository", "local")
    _, err = setup.ok("copy", "--all", "--to", "offsite")
    assert second in err
    setup.ok("verify", second, "--repository", "offsite")


def test_recovery_from_the_bucket_alone(setup: Setup, new_dbname: str) -> None:
    out, _ = setup.ok("backup", "erp")
    backup_id = out.strip().splitlines()[-1]
    expected = _checksums(setup.pg, setup.dbname)
    # The machine is lost: local repository, catalog and cache are gone.
    shutil.rmtree(setup.tmp / "repo")
    (setup.tmp / "catalog.db").unlink()
    shutil.rmtree(setup.tmp / "cache", ignore_errors=True)
    _, err = setup.ok("catalog", "rebuild", "--repository", "offsite")
    assert "1 records created" in err
    out, _ = setup.ok("list", "--json")
    assert [r["id"] for r in json.loads(out)] == [backup_id]
    # The runbook's steps as docs/disaster-recovery.md gives them: verify the bucket, then
    # restore with the roles.
    setup.ok("verify", "--all", "--repository", "offsite")
    _, err = setup.ok("restore", backup_id, "--target-database", new_dbname, "--globals")
    assert "repository local cannot be read" in err
    assert _checksums(setup.pg, new_dbname) == expected
    # Back to normal: init makes the new local repository a mirror of the survivor, so
    # the next backup is written locally and copied offsite again.
    _, err = setup.ok("init")
    assert "local" in err and "created" in err
    out, err = setup.ok("backup", "erp")
    new_id = out.strip().splitlines()[-1]
    assert f"copied {new_id} to offsite" in err
    setup.ok("verify", "--all", "--repository", "local")
    setup.ok("verify", "--all", "--repository", "offsite")


def test_a_rebuilt_catalog_still_tells_a_new_server_from_the_old_one(
    setup: Setup, new_dbname: str
) -> None:
    # The runbook's step 5: after a catalog rebuild and a restore onto a new server (here
    # a new database: the source is <system identifier>/<database>), the first backup of
    # the new one makes the logical-backup item amber, naming both. The rebuilt records
    # had no source, and it stayed green.
    out, _ = setup.ok("backup", "erp")
    backup_id = out.strip().splitlines()[-1]
    (setup.tmp / "catalog.db").unlink()
    setup.ok("catalog", "rebuild", "--repository", "offsite")
    setup.ok("restore", backup_id, "--target-database", new_dbname)
    setup.config.write_text(
        setup.config.read_text().replace(f'/{setup.dbname}"', f'/{new_dbname}"')
    )
    setup.ok("backup", "erp")
    _, out, _ = setup.run("status", "--json", "--no-servers")  # red: never restore-tested
    (item,) = [
        i for d in json.loads(out)["databases"] for i in d["items"] if i["key"] == "rpo:erp:full"
    ]
    system = str(setup.pg.scalar("SELECT system_identifier FROM pg_control_system()"))
    assert item["level"] == "amber", item
    assert f"the one before it from {system}/{setup.dbname}" in item["reason"]


def test_a_mirror_that_stays_down_is_alerted_once_however_many_backups_retry(
    setup: Setup,
) -> None:
    # Every backup retries every copy still missing: with an alert per failed attempt, an
    # offsite store down for a while made each backup's copy be told again at every later
    # backup (20 minutes into such an outage, 9 alerts in 6 seconds).
    proxy = FaultProxy(setup.s3.endpoint_url).start()
    webhook = Webhook()
    try:
        text = setup.config.read_text().replace(setup.s3.endpoint_url, proxy.url)
        setup.config.write_text(
            f'{text}\n[[notifications.targets]]\nname = "hook"\nurl = "{webhook.url}"\n'
        )
        proxy.add(Rule("503", path="/manifests/", times=None))
        for _ in range(2):
            _, err = setup.ok("backup", "erp")
            assert "warning: copy of" in err
        titles = [item["json"]["title"] for item in webhook.inbox.items]
        assert len(titles) == 1, titles
        assert "copy" in titles[0] and "offsite" in webhook.inbox.items[0]["json"]["message"]
        # The store is back, but the copy finds the backups' data damaged in the primary:
        # news of those backups, not the outage told above again (it was kept quiet for
        # the repeat interval, 6 hours by default).
        proxy.clear()
        for pack in (setup.tmp / "repo" / "packs").rglob("*"):
            if pack.is_file():
                flip_byte(pack, pack.stat().st_size // 2)
        code, _, err = setup.run("copy", "--all", "--to", "offsite")
        assert code != 0 and "damaged" in err, err
        damaged = [item["json"]["message"] for item in webhook.inbox.items[1:]]
        assert damaged and all("damaged" in message for message in damaged), damaged
    finally:
        proxy.clear()
        proxy.stop()
        webhook.close()
