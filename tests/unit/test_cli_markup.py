"""What the CLI prints from the catalog is printed as it is, never read as Rich markup: a
job's error, a restore test's failure or a name someone typed at the login page that
holds ``[...]`` is neither swallowed (``[backup x object y]`` is a valid style tag) nor
a crash (``[/tmp]`` is a closing tag that matches nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.catalog import DrillRuns, Jobs
from respaldo.cli.main import invoke
from respaldo.config import load_settings
from respaldo.domain import AuditAction, AuditOutcome, JobKind, JobStatus, TriggeredBy
from respaldo.operations import audit
from respaldo.operations.context import Context
from tests.configs import local_config

pytestmark = pytest.mark.unit

ERROR = "cannot write [/srv/backup] [backup 1 object 2]"
"""What a storage error may say: a path in brackets, and the verifier's own suffix."""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = local_config(tmp_path)
    with Context.open(load_settings(path), create=True) as ctx, ctx.catalog.begin() as session:
        jobs = Jobs(session)
        job = jobs.submit(
            JobKind.BACKUP, target="erp", triggered_by=TriggeredBy.CLI, requested_by="t"
        )
        jobs.start(job.id, pid=1)
        jobs.finish(job.id, JobStatus.FAILED, error=ERROR)
        runs = DrillRuns(session)
        run = runs.start("20261128T083000Z-1a2b3c4d", database="erp", scratch_name="s")
        runs.finish(run.id, passed=False, restore_seconds=1.0, checks=[], error=ERROR)
    with Context.open(load_settings(path)) as ctx:
        # A failed login at the page records the user name as typed: anyone's text.
        audit.record(ctx, "[/b]", AuditAction.LOGIN, None, AuditOutcome.FAILURE, ERROR)
    return path


@pytest.mark.parametrize(
    "command",
    [["jobs"], ["jobs", "show", "1"], ["drills"], ["audit"]],
    ids=" ".join,
)
def test_text_from_the_catalog_is_printed_as_it_is(
    config: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    capsys.readouterr()
    code = invoke(["--config", str(config), *command])
    out = capsys.readouterr().out
    assert code == 0
    # Tables fold long cells: compare without the line breaks and the borders.
    flat = " ".join(out.replace("│", " ").split())
    assert "[/srv/backup]" in flat, out
    assert "[backup 1 object 2]" in flat, out
    if command == ["audit"]:
        assert "[/b]" in flat, out


@pytest.mark.parametrize(
    ("command", "header"), [(["list"], "expires (UTC)"), (["drills"], "started (UTC)")]
)
def test_a_tables_times_say_their_zone(
    config: Path, capsys: pytest.CaptureFixture[str], command: list[str], header: str
) -> None:
    # Times are printed in UTC: a column that does not say so reads as local time.
    capsys.readouterr()
    assert invoke(["--config", str(config), *command]) == 0
    assert header in capsys.readouterr().out
