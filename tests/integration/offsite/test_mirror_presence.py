"""The service's daily verify looks at the mirrors too: a mirror that lost a pack (a disk
put back from an old image, objects deleted by someone holding the bucket's keys) went on
taking copies that "completed" by deduplicating against the lost pack, and nothing the
service ran ever noticed; the day the primary was lost, the mirror could not restore.

Real CLI, real local repositories, a real files backup; the daily slice run as the
service runs its job."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import RespaldoError
from respaldo.operations import jobs
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.jobs import JobRequest
from respaldo.operations.repositories import open_repository
from respaldo.operations.scheduled import run_queued
from tests.integration.cli import RunsCli
from tests.integration.physical.conftest import FAST_KDF

pytestmark = pytest.mark.integration

PASSPHRASE = "mirror presence (test passphrase)"


@dataclass
class Site(RunsCli):
    root: Path
    config: Path
    tree: Path
    capsys: pytest.CaptureFixture[str]
    failure: RespaldoError | None = None

    def backup(self) -> str:
        out, _ = self.ok("backup", "uploads", "--json")
        backup_id: str = json.loads(out)["id"]
        return backup_id

    def daily_verify(self) -> JobStatus:
        """The service's daily verify job (one slice: every chunk of the primary)."""
        request = JobRequest(JobKind.VERIFY, None, TriggeredBy.SCHEDULE, "verify", {"slices": 1})
        with Context.open(load_settings(self.config)) as ctx:
            job = jobs.submit(ctx, request)
            try:
                run_queued(ctx, job.id)
            except RespaldoError as exc:
                self.failure = exc
            return jobs.get(ctx, job.id).status


@pytest.fixture
def site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Site]:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    tree = tmp_path / "uploads"
    tree.mkdir()
    for n in range(40):
        (tree / f"factura-{n:03d}.pdf").write_bytes(bytes([n]) * 30000 + str(n).encode() * 500)
    config = tmp_path / "respaldo.toml"
    config.write_text(f"""
cache_dir = "{tmp_path / "cache"}"
pack_size = 65536

[catalog]
url = "sqlite:///{tmp_path / "catalog.db"}"

[chunker]
min_size = 1024
avg_size = 4096
max_size = 16384

[[repositories]]
name = "local"
url = "file://{tmp_path / "repo"}"

[[repositories]]
name = "mirror"
url = "file://{tmp_path / "mirror"}"

[[file_sets]]
name = "uploads"
paths = ["{tree}"]
""")
    initialize(load_settings(config), kdf=FAST_KDF)
    yield Site(tmp_path, config, tree, capsys)


def test_a_pack_lost_from_a_mirror_fails_the_daily_verify_naming_it(site: Site) -> None:
    first = site.backup()
    packs = sorted((site.root / "mirror" / "packs").rglob("*"))
    lost = next(p for p in packs if p.is_file())
    lost.unlink()
    # A later backup's copy deduplicates against the lost pack (its unchanged chunks are
    # there, the mirror's index still names them): it is refused before its manifest,
    # naming the pack (it used to "complete", and the mirror could not restore it).
    (site.tree / "nueva.pdf").write_bytes(b"nueva" * 1000)
    out, err = site.ok("backup", "uploads", "--json")
    second = json.loads(out)["id"]
    assert "copy not written" in err and f"{lost.name} (missing)" in err, err
    # The copies the pack held are quarantined in the mirror: the copy run again sends
    # them anew, and the mirror restores it.
    site.ok("copy", second, "--to", "mirror")
    site.ok("restore", second, "--repository", "mirror", "--target-dir", str(site.root / "b2"))

    # The first backup's copy still lacks what the pack held: the daily verify names it.
    assert site.daily_verify() is JobStatus.FAILED
    assert site.failure is not None
    said = f"{site.failure.message} {site.failure.hint}"
    assert "mirror" in said and lost.name in said, said
    assert "respaldo repair mirror" in said, said

    # What the message says to do makes the mirror whole again: what the lost pack held
    # is quarantined, repair copies it from the primary.
    _, err = site.ok("repair", "mirror")
    assert "rewrote" in err
    site.ok("prune")
    site.ok("verify", "--all", "--repository", "mirror")
    for backup_id in (first, second):
        target = site.root / f"again-{backup_id}"
        site.ok("restore", backup_id, "--repository", "mirror", "--target-dir", str(target))
    site.failure = None
    assert site.daily_verify() is JobStatus.COMPLETED, site.failure


def test_a_mirror_that_cannot_be_opened_does_not_fail_the_daily_verify(site: Site) -> None:
    # Its copies fail, and alert, on their own; the primary's slice is what the job is.
    site.backup()
    (site.root / "mirror").rename(site.root / "mirror-away")
    assert site.daily_verify() is JobStatus.COMPLETED, site.failure


def test_verify_all_of_a_mirror_that_lost_a_pack_lets_one_repair_make_it_whole(
    site: Site,
) -> None:
    # Found by hand rather than by the daily job: 'verify --all' quarantined only the
    # copies its reads of the backups reached, and the lost pack also held a backup's
    # chunk list, whose entries it could not read: one repair left some of them
    # missing, and verify failed again after it.
    backups = [site.backup()]
    (site.tree / "nueva.pdf").write_bytes(b"nueva" * 1000)
    backups.append(site.backup())
    for lost in sorted((site.root / "mirror" / "packs").rglob("*")):
        if lost.is_file():
            lost.unlink()
            break
    code, _, err = site.run("verify", "--all", "--repository", "mirror")
    assert code == 3 and lost.name in err
    site.ok("repair", "mirror")
    site.ok("prune")
    site.ok("verify", "--all", "--repository", "mirror")
    for backup_id in backups:
        target = site.root / f"again-{backup_id}"
        site.ok("restore", backup_id, "--repository", "mirror", "--target-dir", str(target))


def test_a_prune_before_the_repair_fails_naming_it_and_the_mirror_stays_unrestorable(
    site: Site,
) -> None:
    # The night after the daily verify found the lost pack, the service's prune ran
    # before anyone repaired: its garbage collection dropped the pack from the index
    # (its copies quarantined), said "12 chunks ... have only damaged copies" in a line
    # and succeeded; from then on the daily verify passed while the mirror could
    # restore neither backup.
    (site.tree / "grande.bin").write_bytes(random.Random(3).randbytes(2_000_000))
    backups = [site.backup()]
    (site.tree / "nueva.pdf").write_bytes(b"nueva" * 1000)
    backups.append(site.backup())
    lost = _a_pack_of_data_only(site, backups)
    lost.unlink()
    assert site.daily_verify() is JobStatus.FAILED

    code, _, err = site.run("prune")
    assert code != 0, err
    said = " ".join(line for line in err.splitlines() if "mirror" in line)
    assert "have only damaged copies" in said and "respaldo repair mirror" in said, err
    code, _, err = site.run(
        "restore", backups[1], "--repository", "mirror", "--target-dir", str(site.root / "x")
    )
    assert code != 0, "the mirror should still not be able to restore the backup"

    site.ok("repair", "mirror")
    site.ok("prune")
    site.ok("verify", "--all", "--repository", "mirror")
    for backup_id in backups:
        target = site.root / f"again-{backup_id}"
        site.ok("restore", backup_id, "--repository", "mirror", "--target-dir", str(target))
    assert site.daily_verify() is JobStatus.COMPLETED, site.failure


def _a_pack_of_data_only(site: Site, backups: list[str]) -> Path:
    """A pack of the mirror that holds no chunk list of ``backups`` (garbage collection
    refuses to run while a list is unreadable: that case never reaches the index)."""
    mirror = open_repository(load_settings(site.config), "mirror")
    with_lists = set()
    for backup_id in backups:
        for stream in mirror.load_manifest(backup_id).streams:
            for list_id in stream.lists:
                location = mirror.index.get(bytes.fromhex(list_id))
                assert location is not None
                with_lists.add(location.pack_id)
    packs = sorted(p for p in (site.root / "mirror" / "packs").rglob("*") if p.is_file())
    return next(p for p in packs if p.name not in with_lists)
