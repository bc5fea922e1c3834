"""Fixtures of the fault scenarios: a World per scenario, and the results file.

The PostgreSQL cluster and the sample ERP template are the integration suite's fixtures
(one cluster per session, i.e. per xdist worker, of its own: scenarios restart it). When
``RESPALDO_FAULTS_RESULTS`` names a directory, every scenario writes its outcome there as
``<name>.json`` (scripts/faults_table.py turns them into docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sample.cluster import TempCluster
from tests.faults.world import (
    FAST_KDF,
    World,
    make_tmpfs,
    unmount,
    use_tmpdir,
    write_config,
    write_tree,
)
from tests.integration.cli import secret_file
from tests.integration.conftest import erp_db, erp_template, pg, pg_major  # noqa: F401
from tests.integration.physical.conftest import (  # noqa: F401
    SHOP,
    Archiving,
    archiving_session,
)
from tests.servers.faultproxy import FaultProxy
from tests.servers.s3 import S3Endpoint, new_prefix

from respaldo.config import load_settings
from respaldo.operations.initialize import initialize

RESULTS_ENV = "RESPALDO_FAULTS_RESULTS"
S3_READ_TIMEOUT = 5
"""Seconds: what a stalled request costs (short, yet far above a loaded moto's answers)."""
_results = os.environ.get(RESULTS_ENV)  # read before clean_env drops RESPALDO_*

WorldFactory = Callable[[str], World]


@pytest.fixture
def make_world(
    pg: TempCluster,  # noqa: F811
    erp_db: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> Iterator[WorldFactory]:
    """``make_world(primary)``: a World whose primary repository is ``primary``.

    ``"file"``: a directory; ``"tmpfs"``: a directory on a 6 MB tmpfs (full disk);
    ``"s3"``: a fresh prefix of the moto bucket, reached through a FaultProxy;
    ``"archiving"``: the session's archiving cluster and its repository (physical backups).
    """
    mounts: list[Path] = []
    proxies: list[FaultProxy] = []

    def make(primary: str) -> World:
        if primary == "archiving":
            # The physical suite's archiving cluster (its own per session): WAL archived by
            # the real wal-push, physical backups, one repository for the session.
            arch: Archiving = request.getfixturevalue("archiving_session")
            use_tmpdir(monkeypatch, arch.base / "tmpdir")
            return World(arch.pg, arch.base, SHOP, arch.config, capsys, tmp_path, arch.repo_dir)
        use_tmpdir(monkeypatch, tmp_path / "tmpdir")
        tree = tmp_path / "uploads"
        write_tree(tree)
        repo_dir: Path | None = tmp_path / "repo"
        proxy = None
        if primary == "s3":
            endpoint: S3Endpoint = request.getfixturevalue("moto_server")
            proxy = FaultProxy(endpoint.endpoint_url).start()
            proxies.append(proxy)
            repo_dir = None
            secret = secret_file(tmp_path / "s3.secret", endpoint.secret_access_key)
            section = f"""[[repositories]]
name = "local"
url = "s3://{endpoint.bucket}/{new_prefix()}"
endpoint_url = "{proxy.url}"
region = "us-east-1"
access_key_id = "{endpoint.access_key_id}"
secret_access_key_file = "{secret}"
read_timeout = {S3_READ_TIMEOUT}
"""
        else:
            if primary == "tmpfs":
                assert repo_dir is not None
                make_tmpfs(repo_dir, "6m")
                mounts.append(repo_dir)
                repo_dir = repo_dir / "repo"
            section = f"""[[repositories]]
name = "local"
url = "file://{repo_dir}"
"""
        config = write_config(tmp_path, pg, erp_db, tree, section)
        initialize(load_settings(config), kdf=FAST_KDF)
        return World(pg, tmp_path, erp_db, config, capsys, tree, repo_dir, proxy)

    before = None
    try:
        from tests.integration.logical.support import databases

        before = databases(pg)
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()
        for mount in mounts:
            unmount(mount)
        if before is not None:
            from psycopg import sql

            for name in sorted(databases(pg) - before):
                pg.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def record_result(name: str, row: dict[str, str]) -> None:
    """Write one scenario's outcome for the reliability table (when asked to)."""
    if not _results:
        return
    directory = Path(_results)
    directory.mkdir(parents=True, exist_ok=True)
    row = {**row, "name": name, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    (directory / f"{name}.json").write_text(json.dumps(row, indent=2) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    callspec = getattr(item, "callspec", None)
    scenario = None if callspec is None else callspec.params.get("scenario")
    if scenario is None or not (report.when == "call" or report.failed):
        return report
    from tests.faults.scenarios import SCENARIOS

    record_result(
        scenario.name,
        {
            "index": str(SCENARIOS.index(scenario)),
            "operation": scenario.operation,
            "fault": scenario.fault,
            "expected": scenario.expected,
            "result": "pass" if report.passed else "FAIL",
            "observed": getattr(item, "fault_summary", "")
            if report.passed
            else _first_line(report.longreprtext),
            "seconds": f"{report.duration:.1f}",
            "python": f"{platform.python_version()} ({platform.python_implementation()}, "
            f"{_os_name()})",
        },
    )
    return report


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        return platform.system()


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("E "):
            return line[1:].strip()[:200]
    return text.strip().splitlines()[-1][:200] if text.strip() else ""
