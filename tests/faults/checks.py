"""The invariants every fault scenario must leave true, checked by one function.

After the fault and the operator's next run (:class:`Outcome`), :func:`check_invariants`
asserts, in this order:

(a) no completed backup lost: every backup that was ``completed`` before the fault is still
    in the repository and ``verify --all`` passes over it (scenarios that damage data on
    purpose name what they damaged and run their repair first); scenarios about restore
    have compared a real restore with its source already;
(b) nothing left behind: no ``respaldo_staging_*`` database or replication slot, nothing in
    respaldo's temporary
    directory (password files, spools, scratch directories), no ``.tmp-*`` object in a
    local repository, no half-written restore target;
(c) no catalog record ``in_progress`` or ``pending``, no copy ``pending``;
(d) the catalog agrees with the repositories: the completed records of the primary are
    exactly its manifests (and a catalog rebuilt from the repository into a scratch file
    lists the same completed backups), the completed copies are exactly the second
    repository's manifests;
(e) the message says what happened and what to do: every failed command printed one
    ``respaldo: error:`` line and a ``respaldo: hint:`` line and no traceback, and every
    failed record carries a one-line reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.world import Run, World

from respaldo.catalog import open_catalog
from respaldo.catalog.copies import BackupCopies

ERROR = re.compile(r"^respaldo: error: \S.*$")
HINT = re.compile(r"^respaldo: hint: \S.*$")


@dataclass
class Outcome:
    """What a scenario did, for the checker."""

    before: set[str]
    """Backups completed before the fault."""
    failed_runs: list[Run] = field(default_factory=list)
    """Commands that failed on purpose: each must say what happened and what to do."""
    damaged: set[str] = field(default_factory=set)
    """Backups the scenario damaged on purpose and could not repair (not counted as lost)."""
    verify_exit: int = 0
    """What ``verify --all`` must exit with at the end (3 where damage remains)."""
    summary: str = ""
    """One line for docs/reliability.md: what respaldo did."""


def assert_clear_message(run: Run) -> str:
    """(e) for one failed command: one error line, a hint, no traceback; returns the error."""
    assert run.code not in (0, -9), f"the command was meant to fail: {run}"
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert "Traceback" not in run.err, f"a traceback instead of a message: {run}"
    errors = [line for line in lines if ERROR.match(line)]
    assert len(errors) == 1, f"not exactly one error line: {run}"
    assert any(HINT.match(line) for line in lines), f"no hint: {run}"
    return errors[0].removeprefix("respaldo: error: ")


def leftovers(world: World) -> list[str]:
    """(b): everything a fault left that should not be there, as readable strings."""
    found = [f"database {name}" for name in world.databases() if name.startswith("respaldo_")]
    found += [
        f"replication slot {row[0]}"
        for row in world.pg.query("SELECT slot_name FROM pg_catalog.pg_replication_slots")
    ]
    found += [f"temporary {p}" for p in sorted(world.tmpdir.iterdir())]
    for root in (world.repo_dir, world.offsite_dir):
        if root is not None and root.is_dir():
            found += [f"object {p}" for p in sorted(root.rglob(".tmp-*"))]
    return found


def catalog_ids(url: str) -> tuple[set[str], set[str], set[str]]:
    """(completed records, unfinished records, completed copies in ``offsite``)."""
    catalog = open_catalog(url)
    try:
        with catalog.begin() as session:
            from respaldo.catalog import BackupRecords

            records = BackupRecords(session).list()
            copies = BackupCopies(session)
            completed = {r.id for r in records if r.status == "completed"}
            unfinished = {f"{r.id} {r.status}" for r in records if r.status in _UNFINISHED}
            offsite: set[str] = set()
            for record in records:
                for copy in copies.for_backup(record.id):
                    if copy.repository == "offsite" and copy.status == "completed":
                        offsite.add(record.id)
                    elif copy.status == "pending":
                        unfinished.add(f"{record.id} copy pending")
            return completed, unfinished, offsite
    finally:
        catalog.close()


_UNFINISHED = {"in_progress", "pending"}


def check_invariants(world: World, outcome: Outcome) -> None:
    # (e) first: what the operator saw.
    for run in outcome.failed_runs:
        assert_clear_message(run)

    # (c) and (d): a fresh start of the CLI reconciles what a killed process left.
    listed = world.run("list", "--json")
    assert listed.code == 0, str(listed)
    completed, unfinished, offsite = catalog_ids(f"sqlite:///{world.catalog_file}")
    assert not unfinished, f"records left unfinished: {sorted(unfinished)}"
    for record in world.records():
        if record.status == "failed":
            reason = record.error_message or ""
            assert reason.strip() and "\n" not in reason.strip(), (record.id, reason)

    primary = world.repository()
    manifests = set(primary.backup_ids())
    assert completed == manifests, (
        f"catalog and repository disagree: only in the catalog {sorted(completed - manifests)},"
        f" only in the repository {sorted(manifests - completed)}"
    )
    if (world.offsite_dir / "config").exists():
        copies = set(world.repository("offsite").backup_ids())
        assert offsite == copies, (
            f"copies and offsite disagree: catalog {sorted(offsite)}, offsite {sorted(copies)}"
        )
    # Only damaged manifests may be missing from a catalog rebuilt from the repository.
    rebuilt = _rebuilt_catalog(world)
    assert rebuilt <= manifests and manifests - rebuilt <= outcome.damaged, (
        f"a catalog rebuilt from the repository lists {sorted(rebuilt)}"
    )

    # (a) nothing completed lost.
    lost = outcome.before - outcome.damaged - manifests
    assert not lost, f"completed backups lost: {sorted(lost)}"
    verify = world.run("verify", "--all")
    assert verify.code == outcome.verify_exit, f"verify --all: {verify}"

    # (b) nothing left behind (after the next run and the checks' own runs). The
    # temporary file of a put killed before its rename is garbage collection's to remove,
    # once older than a lease lives (no live writer can own it then): age them as time
    # would, and run the operator's regular prune.
    if _age_temporaries(world):
        pruned = world.run("prune")
        assert pruned.code == 0, f"prune: {pruned}"
    left = leftovers(world)
    assert not left, f"left behind: {left}"


def _age_temporaries(world: World) -> bool:
    stale = world.settings().locks.stale_after_seconds
    found = False
    for root in (world.repo_dir, world.offsite_dir):
        if root is not None and root.is_dir():
            for path in root.rglob(".tmp-*"):
                old = path.stat().st_mtime - 2 * stale
                os.utime(path, (old, old))
                found = True
    return found


def _rebuilt_catalog(world: World) -> set[str]:
    """``catalog rebuild`` into a scratch catalog: the completed backups it finds."""
    scratch = world.tmp / "scratch-catalog.db"
    scratch.unlink(missing_ok=True)
    text = world.config.read_text().replace(
        f'url = "sqlite:///{world.catalog_file}"', f'url = "sqlite:///{scratch}"'
    )
    config = world.tmp / "scratch.toml"
    config.write_text(text)
    scratch_world = World(
        world.pg, world.tmp, world.dbname, config, world.capsys, world.tree, world.repo_dir
    )
    run = scratch_world.run("catalog", "rebuild")
    # Exit 3: damaged manifests were found and skipped (scenarios that damage one on purpose).
    assert run.code in (0, 3), f"catalog rebuild: {run}"
    completed, _, _ = catalog_ids(f"sqlite:///{scratch}")
    scratch.unlink(missing_ok=True)
    return completed


def tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
