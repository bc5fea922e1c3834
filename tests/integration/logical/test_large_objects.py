"""A logical backup records its large objects (count, bytes, a digest of their contents)
in the snapshot it dumps, and a restore and a restore test compare the restored ones with
that record before the database is called good: row counts cover tables only, and a
restore that lost or cut short large objects passed them.

The restored database is altered between pg_restore and the check (through the row
count check just before it, as a damaged dump or a failing load would leave it): the
restore fails naming what differs, and nothing is changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from sample.cluster import TempCluster

from respaldo.operations import drill as drill_module
from respaldo.operations import restore as restore_module
from respaldo.operations.backup_detail import backup_detail
from respaldo.operations.context import Context
from respaldo.postgres import ConnInfo
from respaldo.postgres.largeobjects import META_KEY
from tests.integration.logical.conftest import Respaldo
from tests.integration.logical.support import (
    databases,
    large_objects,
    staging_databases,
    table_checksums,
)
from tests.integration.majors import ON_EVERY_MAJOR

pytestmark = pytest.mark.integration

EMPTY, SPARSE, BIG = 9001, 9002, 9003
BIG_SIZE = 2 * 1024 * 1024 + 1000
"""More than two parts of the digest (postgres.largeobjects.PART_SIZE): the walk goes on
past the first part, and stops at a short one."""
SPARSE_END = 3 * 1024 * 1024


def _add_awkward_objects(pg: TempCluster, dbname: str) -> None:
    """Beside the sample's documents: an empty large object, a sparse one (written past
    its end: its hole has no pages, which pg_restore writes back as zeros) and one of
    several parts."""
    pg.execute(f"SELECT lo_create({EMPTY})", dbname=dbname)
    pg.execute(
        f"SELECT lo_from_bytea({SPARSE}, '\\x01'::bytea), lo_put({SPARSE}, {SPARSE_END}, 'end')",
        dbname=dbname,
    )
    pg.execute(
        f"SELECT lo_from_bytea({BIG}, decode(%s, 'hex'))",
        (os.urandom(BIG_SIZE).hex(),),
        dbname=dbname,
    )


def _pages(pg: TempCluster, dbname: str, loid: int) -> int:
    return int(pg.scalar(f"SELECT count(*) FROM pg_largeobject WHERE loid = {loid}", dbname=dbname))


def _sizes(pg: TempCluster, dbname: str) -> tuple[int, int]:
    """The witness: count and total size, as lo_get reads them."""
    row = pg.query(
        "SELECT count(*), coalesce(sum(length(lo_get(oid))), 0) FROM pg_largeobject_metadata",
        dbname=dbname,
    )[0]
    return int(row[0]), int(row[1])


def _tamper_after_row_counts(
    monkeypatch: pytest.MonkeyPatch, pg: TempCluster, module: Any, name: str, statement: str
) -> list[str]:
    """Run ``statement`` in the restored database once its row counts were checked (by
    ``module.name``), before anything else looks at it; returns the databases altered."""
    real: Callable[..., Any] = getattr(module, name)
    altered: list[str] = []

    def counted(manifest: Any, conninfo: ConnInfo, **options: Any) -> Any:
        result = real(manifest, conninfo, **options)
        assert conninfo.dbname is not None
        pg.execute(statement, dbname=conninfo.dbname)
        altered.append(conninfo.dbname)
        return result

    monkeypatch.setattr(module, name, counted)
    return altered


@pytest.fixture
def awkward(respaldo: Respaldo, pg: TempCluster) -> Respaldo:
    _add_awkward_objects(pg, respaldo.dbname)
    return respaldo


@ON_EVERY_MAJOR
def test_large_objects_are_recorded_and_checked(
    awkward: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    source = awkward.dbname
    backup_id = awkward.backup()["id"]
    record = awkward.repository().load_manifest(backup_id).meta[META_KEY]
    count, size = _sizes(pg, source)
    assert count > 3 and size > BIG_SIZE + SPARSE_END  # the sample's documents too
    assert (record["count"], record["bytes"]) == (count, size)
    assert record["part_size"] == 1024 * 1024 and int(record["digest"]) != 0
    # What the API and the page show of the backup (GET /admin/backups/{id}).
    with Context.open(awkward.settings()) as ctx:
        summary = backup_detail(ctx, backup_id).manifest
    assert summary is not None
    assert (summary.large_objects, summary.large_object_bytes) == (count, size)

    # One backup, restored serially and in parallel.
    for jobs in ("1", "2"):
        target = f"{new_dbname}_{jobs}"
        run = awkward.restore(backup_id, target, "--jobs", jobs)
        assert f"{count} large objects checked" in run.err, run.err
        assert "warning" not in run.err, run.err
        assert large_objects(pg, target) == large_objects(pg, source)
        # The sparse object came back whole, page by page: its pages differ from the
        # source's while its contents do not, and the check (of contents) passed.
        assert _pages(pg, source, SPARSE) < _pages(pg, target, SPARSE)
        assert staging_databases(pg) == set()


# What is done to the restored large objects, and what the restore then says: one lost,
# one cut short, one's contents altered.
_DIFFERENCES = [
    (
        f"SELECT lo_unlink({EMPTY})",
        "restored large objects differ from the backup's: {n_less} large objects, {n} expected",
    ),
    (
        f"SELECT lo_unlink({BIG}), lo_from_bytea({BIG}, 'cut short')",
        "restored large objects differ from the backup's: {short} bytes of large "
        "objects, {size} expected",
    ),
    (
        f"SELECT lo_put({SPARSE}, 1000, '\\x07'::bytea)",
        "restored large objects differ from the backup's: the large objects' contents "
        "differ (digest ",
    ),
]


@pytest.mark.parametrize("replace", [False, True], ids=["new", "replace"])
def test_a_restore_whose_large_objects_differ_fails_leaving_nothing(
    awkward: Respaldo,
    pg: TempCluster,
    new_dbname: str,
    monkeypatch: pytest.MonkeyPatch,
    replace: bool,
) -> None:
    source = awkward.dbname
    backup_id = awkward.backup()["id"]
    count, size = _sizes(pg, source)
    target = source if replace else new_dbname
    rows, objects = table_checksums(pg, source), large_objects(pg, source)
    options = ["--replace"] if replace else []
    # One backup for the three differences: each failed restore is checked to leave
    # nothing, so the next starts from where the first did.
    for statement, said in _DIFFERENCES:
        before = databases(pg)
        with monkeypatch.context() as patch:
            altered = _tamper_after_row_counts(
                patch, pg, restore_module, "check_row_counts", statement
            )
            run = awkward.run("restore", backup_id, "--target-database", target, *options)
        assert run.code == 1, str(run)
        assert len(altered) == 1 and altered[0] != target  # the staging database, before the swap
        expected = said.format(
            n_less=count - 1, n=count, short=size - BIG_SIZE + len("cut short"), size=size
        )
        assert run.err_lines[0].startswith(f"respaldo: error: {expected}"), run.err
        assert "respaldo: hint: the backup may be damaged" in run.err
        assert "Traceback" not in run.err
        assert databases(pg) == before  # no staging database left, nothing renamed or made
        assert staging_databases(pg) == set()
        assert table_checksums(pg, source) == rows and large_objects(pg, source) == objects


def test_a_drill_whose_large_objects_differ_fails(
    awkward: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = awkward.backup()["id"]
    count, _size = _sizes(pg, awkward.dbname)
    altered = _tamper_after_row_counts(
        monkeypatch, pg, drill_module, "row_count_differences", f"SELECT lo_unlink({SPARSE})"
    )
    run = awkward.run("drill", backup_id, "--json")
    assert run.code == 3, str(run)
    assert len(altered) == 1
    result = json.loads(run.out)
    (check,) = [c for c in result["checks"] if c["name"] == "large objects"]
    assert check["ok"] is False
    assert check["detail"].startswith(f"{count - 1} large objects, {count} expected"), check
    assert "FAIL large objects: " in run.err
    assert awkward.run("show", backup_id, "--json").json()["isVerified"] is False
    assert not {d for d in databases(pg) if d.startswith("respaldo_drill_")}


def _without_the_record(respaldo: Respaldo, backup_id: str, later: bool = False) -> str:
    """The same streams under a new id, with a manifest as backups before the record
    wrote it (no ``large_objects``), or, ``later``, with a record of a later format."""

    def edit(meta: dict[str, Any]) -> None:
        if later:
            meta[META_KEY]["format"] = 2
        else:
            del meta[META_KEY]

    return respaldo.as_older(backup_id, edit)


@pytest.mark.parametrize("later", [False, True], ids=["no-record", "later-format"])
def test_a_backup_from_before_the_record_restores_saying_they_were_not_checked(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str, later: bool
) -> None:
    older = _without_the_record(respaldo, respaldo.backup()["id"], later=later)
    run = respaldo.restore(older, new_dbname)
    assert "large objects checked" not in run.err
    assert (
        "warning: the backup holds no record of its large objects that this respaldo reads "
        "(it predates the record, or a newer respaldo wrote it): they were not checked"
        in " ".join(run.err.split())
    ), run.err
    assert large_objects(pg, new_dbname) == large_objects(pg, respaldo.dbname)

    drill = respaldo.run("drill", older, "--json")
    assert drill.code == 0, str(drill)
    (check,) = [c for c in json.loads(drill.out)["checks"] if c["name"] == "large objects"]
    assert check["ok"] is True and "predates the record" in check["detail"], check


def test_some_tables_restore_no_large_objects_and_check_none(
    respaldo: Respaldo, pg: TempCluster, new_dbname: str
) -> None:
    backup_id = respaldo.backup()["id"]
    run = respaldo.restore(backup_id, new_dbname, "--table", "docs.documentos")
    assert "large objects checked" not in run.err
    assert "large objects are not restored with --table or --schema" in " ".join(run.err.split()), (
        run.err
    )
    assert large_objects(pg, new_dbname).count == 0


# A page longer than a large object's page size (LOBLKSIZE, a quarter of the block size):
# what the server refuses to read as damaged ("invalid data field size").
_DAMAGED_PAGE = (
    f"UPDATE pg_largeobject SET data = decode(repeat('ab', 4000), 'hex')"
    f" WHERE loid = {BIG} AND pageno = 0"
)


def test_a_restore_whose_large_objects_cannot_be_read_fails_leaving_nothing(
    awkward: Respaldo, pg: TempCluster, new_dbname: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = awkward.backup()["id"]
    altered = _tamper_after_row_counts(
        monkeypatch, pg, restore_module, "check_row_counts", _DAMAGED_PAGE
    )
    before = databases(pg)
    run = awkward.run("restore", backup_id, "--target-database", new_dbname)
    assert run.code == 1, str(run)
    assert len(altered) == 1
    assert run.err_lines[0].startswith("respaldo: error: reading the restored large objects"), (
        run.err
    )
    assert f"pg_largeobject entry for OID {BIG}" in run.err_lines[0], run.err
    assert "Traceback" not in run.err
    assert databases(pg) == before


def test_a_drill_whose_large_objects_cannot_be_read_fails_that_check(
    awkward: Respaldo, pg: TempCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_id = awkward.backup()["id"]
    _tamper_after_row_counts(monkeypatch, pg, drill_module, "row_count_differences", _DAMAGED_PAGE)
    run = awkward.run("drill", backup_id, "--json")
    assert run.code == 3, str(run)
    (check,) = [c for c in json.loads(run.out)["checks"] if c["name"] == "large objects"]
    assert check["ok"] is False
    assert check["detail"].startswith("reading the restored large objects"), check
    assert f"pg_largeobject entry for OID {BIG}" in check["detail"], check
    assert not {d for d in databases(pg) if d.startswith("respaldo_drill_")}
