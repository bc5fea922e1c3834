"""The shipped alerting rules (docs/monitoring/respaldo-alerts.yml) as Prometheus itself
evaluates them: ``promtool check rules`` and ``promtool test rules`` (Debian's
prometheus package; scripts/setup.sh installs it) over the series two respaldo
installations expose, each with a database called erp."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.api.test_monitoring_docs import RULES

pytestmark = pytest.mark.unit

SITES = ("site-a:9187", "site-b:9187")
KIND_PASSED = "respaldo_restore_test_kind_last_passed"
LAG = "respaldo_wal_archive_lag_seconds"
FAILED_AT = "respaldo_notification_last_failure_timestamp_seconds"


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, (
        "promtool is missing: scripts/setup.sh installs it (out of Debian's prometheus package)"
    )
    return found


def _series(name: str, value: float, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": f"{value:g}x30"}


def _expr(alert: str) -> str:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    return str(next(r["expr"] for r in rules if r.get("alert") == alert))


def _samples(alert: str, *found: tuple[float, dict[str, str]]) -> dict[str, Any]:
    """The series of ``alert``'s expression at 20 minutes: each one an alert, with its
    labels (an alert's are those, less the name, plus the rule's own)."""
    samples = []
    for value, labels in found:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        samples.append({"labels": f"{{{inner}}}", "value": value})
    return {"expr": _expr(alert), "eval_time": "20m", "exp_samples": samples}


def _at(instance: str, **labels: str) -> dict[str, str]:
    return {"job": "respaldo", "instance": instance, **labels}


def test_the_rules_load_in_prometheus() -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_comparison_keeps_its_series_labels_and_matches_its_own_installation(
    tmp_path: Path,
) -> None:
    """A comparison with a threshold matched on the database alone kept only that label
    (RespaldoRestoreTestTooOld's fallback, RespaldoBackupTooOld, RespaldoWalArchiveLagging,
    RespaldoNotificationsFailing), and RespaldoJobsQueuedTooLong summed every queue of
    every installation: the alert had no job or instance to route or silence by. And
    with two installations scraped, each with a database erp, such comparisons found two
    thresholds for erp and failed to evaluate; the per-kind series of one installation
    hid the other's fallback. Site A's erp relies on its full backups'
    restore tests (the kind series); site B's has none recent (the per-database
    series)."""
    a, b = SITES
    series = []
    for site in SITES:
        at = {"job": "respaldo", "instance": site}
        series += [
            _series(
                "respaldo_backup_last_success_timestamp_seconds",
                0,
                database="erp",
                kind="full",
                **at,
            ),
            _series("respaldo_backup_rpo_seconds", 60, database="erp", kind="full", **at),
            _series(
                "respaldo_restore_test_last_success_timestamp_seconds", 0, database="erp", **at
            ),
            _series("respaldo_restore_test_last_passed", 0, database="erp", **at),
            _series("respaldo_restore_test_max_age_seconds", 60, database="erp", **at),
            _series("respaldo_wal_archive_lag_seconds", 120, database="erp", **at),
            _series("respaldo_wal_archive_max_lag_seconds", 60, database="erp", **at),
            _series(
                "respaldo_notification_last_failure_timestamp_seconds", 100, target="ops", **at
            ),
            _series("respaldo_notification_last_success_timestamp_seconds", 50, target="ops", **at),
            _series("respaldo_jobs_queued", 2, kind="backup", **at),
            _series("respaldo_jobs_queued", 1, kind="drill", **at),
        ]
    on_a = {"job": "respaldo", "instance": a, "database": "erp", "kind": "full"}
    series += [
        _series("respaldo_restore_test_kind_last_success_timestamp_seconds", 0, **on_a),
        _series("respaldo_restore_test_kind_last_passed", 0, **on_a),
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    _samples(
                        "RespaldoBackupTooOld",
                        *((1200, _at(s, database="erp", kind="full")) for s in SITES),
                    ),
                    _samples(
                        "RespaldoRestoreTestTooOld",
                        (1200, _at(a, database="erp", kind="full")),
                        (1200, _at(b, database="erp")),
                    ),
                    _samples(
                        "RespaldoRestoreTestFailed",
                        (0, _at(a, database="erp", kind="full", __name__=KIND_PASSED)),
                        (0, _at(b, database="erp", __name__="respaldo_restore_test_last_passed")),
                    ),
                    _samples(
                        "RespaldoWalArchiveLagging",
                        *((120, _at(s, database="erp", __name__=LAG)) for s in SITES),
                    ),
                    _samples("RespaldoJobsQueuedTooLong", *((3, _at(s)) for s in SITES)),
                    _samples(
                        "RespaldoNotificationsFailing",
                        *((100, _at(s, target="ops", __name__=FAILED_AT)) for s in SITES),
                    ),
                ],
            }
        ],
    }
    path = tmp_path / "respaldo-alerts.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(
        [_promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
