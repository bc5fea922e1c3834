"""One word for each kind of backup in what respaldo says: the alerts of a database
backed up logically and physically said "no full backup of erp for 30 h" beside "no
restore test of a logical backup of erp ever passed" (the same backups), the status
"the newest full backup" beside "its logical backups", and the shipped Prometheus rules
"the full backups of erp" / "the incremental backups" (the metrics' label values) where
the status said logical and physical. The mail server is a real aiosmtpd on loopback, the
catalog real; the rules run in the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from respaldo.domain import BackupKind
from respaldo.operations import watchdog
from respaldo.operations.context import Context
from tests.servers.notify import Smtp, smtp  # noqa: F401
from tests.unit.operations.status_support import NOW, backup, drill, status_settings

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
RULES = Path(__file__).parents[3] / "docs" / "monitoring" / "respaldo-alerts.yml"


def _ctx(tmp_path: Path, smtp: Smtp, language: str) -> Context:  # noqa: F811
    target = {"name": "ops-mail", "url": smtp.url(), "levels": ["critical"]}
    settings = status_settings(tmp_path, notifications={"targets": [target], "language": language})
    return Context.open(settings, create=True)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            {
                "[respaldo] CRITICAL: no logical backup of erp for 30 h (RPO 26 h)",
                "[respaldo] CRITICAL: no restore test of a physical backup of erp ever passed",
            },
        ),
        (
            "es",
            {
                "[respaldo] CRÍTICO: sin backup lógico de erp desde hace 30 h (RPO 26 h)",
                "[respaldo] CRÍTICO: ninguna prueba de restauración de un backup físico de erp "
                "se ha superado nunca",
            },
        ),
    ],
)
def test_the_alerts_and_the_status_say_logical_and_physical(
    tmp_path: Path,
    smtp: Smtp,  # noqa: F811
    language: str,
    expected: set[str],
) -> None:
    """The logical backup is past its RPO, the physical one was never restore-tested."""
    with _ctx(tmp_path, smtp, language) as ctx:
        logical = backup(ctx, NOW - 30 * H)
        backup(ctx, NOW - H, kind=BackupKind.INCREMENTAL)
        drill(ctx, logical, NOW - 29 * H, passed=True)
        result = watchdog.check(ctx, NOW, wal_archived=("erp",), servers=False)
    items = {i.key: i for i in result.report.items}
    assert items["rpo:erp:full"].level == "red"
    assert items["restore_test:erp"].level == "red"
    # The status's words for the same backups: logical, as its restore-test reason.
    rpo = str(items["rpo:erp:full"].reason)
    assert rpo.startswith("the newest logical backup completed 30 h ago"), rpo
    assert "logical backups" in str(items["restore_test:erp"].reason)
    subjects = {str(m["Subject"]) for m in smtp.inbox.wait(2)}
    assert subjects == expected, subjects
    assert not any("full" in s or "completo" in s or "incremental" in s for s in subjects)


def _promtool_test(tmp_path: Path, tests: list[dict[str, object]]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    spec = tmp_path / "rules-test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests})
    )
    done = subprocess.run(
        [promtool, "test", "rules", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _description(alert: str) -> str:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    (rule,) = [r for r in rules if r.get("alert") == alert]
    description: str = rule["annotations"]["description"]
    return description


def test_the_shipped_restore_test_rules_say_logical_and_physical(tmp_path: Path) -> None:
    """A physical test failed, a logical one passed long ago: the rules' summaries."""
    series = [
        ('respaldo_restore_test_kind_last_passed{database="erp",kind="incremental"}', "0x30"),
        ('respaldo_restore_test_kind_last_passed{database="erp",kind="full"}', "1x30"),
        (
            'respaldo_restore_test_kind_last_success_timestamp_seconds{database="erp",kind="full"}',
            "0x30",
        ),
        (
            'respaldo_restore_test_kind_last_success_timestamp_seconds{database="erp",'
            'kind="incremental"}',
            "1150x30",
        ),
        ('respaldo_restore_test_max_age_seconds{database="erp"}', "100x30"),
        ('respaldo_backup_last_success_timestamp_seconds{database="erp",kind="full"}', "0x30"),
        ('respaldo_backup_rpo_seconds{database="erp",kind="full"}', "60x30"),
    ]
    labels = {"database": "erp", "severity": "critical"}
    _promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "RespaldoRestoreTestFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, "kind": "incremental"},
                                "exp_annotations": {
                                    "summary": "The last restore test of the physical "
                                    "backups of erp failed",
                                    "description": _description("RespaldoRestoreTestFailed"),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "RespaldoRestoreTestTooOld",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "database": "erp",
                                    "kind": "full",
                                    "severity": "warning",
                                },
                                "exp_annotations": {
                                    "summary": "No passed restore test of the logical "
                                    "backups of erp for 20m 0s",
                                    "description": _description("RespaldoRestoreTestTooOld"),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "RespaldoBackupTooOld",
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, "kind": "full"},
                                "exp_annotations": {
                                    "summary": "No logical backup of erp within its RPO",
                                    "description": "The newest completed logical backup of "
                                    "erp is older than its RPO ([rpo]; a value since 1970 "
                                    "means there never was one). 'respaldo status' and "
                                    "'respaldo jobs' show what happened.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )
