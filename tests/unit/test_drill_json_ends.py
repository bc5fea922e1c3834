"""What ``drill DATABASE --json`` prints on stdout at each way a round ends early: the
round when its tests could not run; nothing when it was cancelled or interrupted,
whatever an earlier kind's test did (tests/integration/logical/test_drill.py runs the
real ones: could not run, Ctrl-C, SIGTERM, jobs cancel). The round itself is a stand-in
here: which kind fails first is not something a test cluster can be made to choose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from respaldo.cli import drill_cmd
from respaldo.cli.main import invoke
from respaldo.errors import JobCancelled, RepositoryError
from respaldo.operations.context import Context
from respaldo.operations.drill import DrillRound
from tests.configs import erp_config

pytestmark = pytest.mark.unit

LOGICAL, PHYSICAL = "20261206T020000Z-0000000a", "20261206T030000Z-0000000b"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return erp_config(tmp_path)


def _drill(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    ending: BaseException,
) -> tuple[int, str, str]:
    """``drill erp --json`` whose round finds the logical backup's repository closed,
    then ends with ``ending`` at the physical backup's test."""

    def round_(_ctx: Context, _target: str, *, tried: DrillRound, **_: Any) -> DrillRound:
        tried.errors.append((LOGICAL, RepositoryError("cannot open repository offsite")))
        raise ending

    monkeypatch.setattr(drill_cmd, "run_restore_test_round", round_)
    capsys.readouterr()
    code = invoke(["--config", str(config), "drill", "erp", "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_round_whose_tests_could_not_run_prints_it(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _drill(config, capsys, monkeypatch, RepositoryError("cannot open local"))
    assert code == 1, err
    assert json.loads(out)["errors"] == [
        {"backupId": LOGICAL, "error": "cannot open repository offsite"}
    ]


@pytest.mark.parametrize(
    ("ending", "status"),
    [(JobCancelled("cancelled by request"), 1), (KeyboardInterrupt(), 130)],
    ids=["jobs-cancel", "ctrl-c"],
)
def test_a_cancelled_round_prints_no_json_after_a_test_that_could_not_run(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    ending: BaseException,
    status: int,
) -> None:
    """'respaldo jobs cancel' of the round at its physical test, its logical one having
    found its repository closed: stdout had the round as if the physical backup had never
    been due ({passed: false, drills: [], errors: [the logical one]}), where Ctrl-C,
    SIGTERM, or the same cancel after a logical test that ran, print nothing. A cancelled
    round prints no JSON; stderr says it was cancelled."""
    code, out, err = _drill(config, capsys, monkeypatch, ending)
    assert (code, out) == (status, ""), err
