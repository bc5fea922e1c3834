"""How long a backup and a restore took, when the machine's clock is stepped meanwhile.

An NTP correction or a VM resumed from a snapshot steps the wall clock. The restore's
``seconds`` (its line, a logical drill's ``restore_seconds``: the catalog, the page, the
metrics) and the backup record's ``duration`` (the page, the API,
``respaldo_backup_last_duration_seconds``) were differences of wall-clock times: an hour
ahead made them an hour long. Each command here is a real process (the console entry's
code) whose wall clock libfaketime takes from a file the test rewrites, its monotonic
clock left alone; it stops once the work has started (tests/integration/paused_call.py)
and the test steps the clock then.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faketime import stepped_clock
from tests.integration.logical.conftest import PASSPHRASE, Respaldo

pytestmark = pytest.mark.integration

PAUSED_CALL = Path(__file__).parents[1] / "paused_call.py"


def _stepped(respaldo: Respaldo, at: str, *args: str) -> str:
    """``respaldo ARGS`` in a process of its own whose wall clock goes an hour ahead at
    the first call of ``at`` (MODULE.NAME); what it said (stdout, then stderr)."""
    clock, env = stepped_clock(respaldo.tmp)
    module, name = at.rsplit(".", 1)
    argv = [sys.executable, str(PAUSED_CALL), module, name, "--config", str(respaldo.config)]
    with subprocess.Popen(
        [*argv, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "RESPALDO_PASSPHRASE": PASSPHRASE},
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "paused\n"
        clock.write_text("+3600\n")
        out, err = process.communicate()  # closes its stdin: it goes on
    assert process.returncode == 0, err
    return out + err


def test_a_clock_step_does_not_make_a_backup_or_a_restore_an_hour_long(
    respaldo: Respaldo, new_dbname: str
) -> None:
    # Paused once the record says the backup started (its heartbeat is made next).
    _stepped(respaldo, "respaldo.operations.recorded.Heartbeat", "backup", "erp")
    (record,) = respaldo.records()
    assert record.duration is not None and record.duration < 600, record.duration

    # Paused once the restore has started (it opens the repository next).
    said = _stepped(
        respaldo,
        "respaldo.operations.restore.open_with_fallbacks",
        "restore",
        record.id,
        "--target-database",
        new_dbname,
    )
    found = re.search(rf"restored .* into {new_dbname}: .*, ([0-9.-]+) s\b", said)
    assert found is not None, said
    assert 0 <= float(found[1]) < 600, said
