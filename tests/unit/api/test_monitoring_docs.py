"""The sample alerting rules and Grafana dashboard of docs/monitoring/ use only metrics
and labels that respaldo exposes, and docs/monitoring.md names every metric.

The rules are parsed as YAML, checked for the shape Prometheus loads, and every metric
name (and label) in their PromQL is looked up in a real exposition of a catalog that has
every kind of row; test_alert_rules_promtool.py has Prometheus's promtool evaluate them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from respaldo.api import create_app
from respaldo.catalog import Notifications
from respaldo.config import Settings
from respaldo.domain import BackupKind, JobKind, JobStatus
from respaldo.operations.metrics_status import status_metrics
from respaldo.operations.status import DatabaseStatus, StatusItem, StatusReport
from respaldo.operations.status_server import ArchiveView
from tests.unit.api.metrics_support import T0, backup, drill, installation, job, opened

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs"
RULES = DOCS / "monitoring" / "respaldo-alerts.yml"
DASHBOARD = DOCS / "monitoring" / "grafana-dashboard.json"
EXTERNAL = {"up"}
"""Metrics of Prometheus itself that the rules may use."""

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name -> label names, from a catalog with every kind of row."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        settings = installation(tmp_path_factory.mktemp("monitoring"), monkeypatch)
        # A configured target: only those have the timestamps RespaldoNotificationsFailing
        # compares.
        target = {"name": "ops-mail", "url": "json://127.0.0.1:1/"}
        settings = Settings(**{**settings.model_dump(), "notifications": {"targets": [target]}})
        with opened(settings) as context:
            logical = backup(context, BackupKind.FULL, T0)
            backup(context, BackupKind.INCREMENTAL, T0)
            backup(context, BackupKind.FULL, T0 + timedelta(hours=1), failed=True)
            # Of a backup on record: the per-kind series know its kind.
            drill(context, T0, passed=True, seconds=30, backup_id=logical)
            drill(context, T0 + timedelta(days=1), passed=False, seconds=30, backup_id=logical)
            job(context, JobKind.BACKUP, JobStatus.FAILED, error="down")
            job(context, JobKind.PRUNE, JobStatus.COMPLETED, outcome={"bytes_reclaimed": {}})
            with context.catalog.begin() as session:
                Notifications(session).add(
                    sent_at=T0,
                    level="critical",
                    kind="backup",
                    key=None,
                    target="ops-mail",
                    ok=False,
                    error="connection refused",
                )
            with TestClient(create_app(settings, context)) as client:
                text = client.get("/metrics").text
    finally:
        monkeypatch.undo()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    # The servers here do not answer: the WAL families come from a report of a server
    # that does (tests/integration/physical/test_status.py checks them against one).
    for metric in status_metrics(_archiving_report()):
        for sample in metric.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _archiving_report() -> StatusReport:
    archive = ArchiveView(
        archive_mode="on",
        archived_count=10,
        last_archived_wal="000000010000000000000010",
        last_archived_at=T0,
        last_archived_age_seconds=30.0,
        failed_count=1,
        last_failed_wal=None,
        last_failed_at=None,
        waiting=2,
        oldest_waiting_age_seconds=40.0,
    )
    item = StatusItem(
        key="archive:erp",
        check="archive",
        database="erp",
        level="green",
        reason="",
        limit_seconds=900,
    )
    erp = DatabaseStatus(
        database="erp",
        level="green",
        physical=True,
        server_version="16",
        archive=archive,
        items=[item],
    )
    return StatusReport(checked_at=T0, level="green", general=[], databases=[erp])


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords,
    label names, strings or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in _NAME.finditer(text):
        follows = text[match.end() :].lstrip()
        if match.group() not in _KEYWORDS and not follows.startswith("("):
            names.add(match.group())
    return names


def check_expr(expr: str, exposed: dict[str, set[str]]) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    unknown = names - set(exposed) - EXTERNAL
    assert not unknown, f"{expr!r} uses {sorted(unknown)}, which respaldo does not expose"
    for name, matchers in _SELECTOR.findall(expr):
        if name in EXTERNAL:
            continue
        labels = {label for label, _, _ in _MATCHER.findall(matchers)}
        assert labels <= exposed[name], f"{expr!r}: {name} has only {sorted(exposed[name])}"


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    (group,) = loaded["groups"]
    assert group["name"] == "respaldo"
    return list(group["rules"])


def test_the_alerting_rules_load_and_use_only_exposed_metrics(
    exposed: dict[str, set[str]],
) -> None:
    alerts = rules()
    assert len({r["alert"] for r in alerts}) == len(alerts)
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Respaldo[A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "for" in rule:
            assert re.fullmatch(r"[0-9]+[smhdwy]", rule["for"]), rule["for"]
        check_expr(rule["expr"], exposed)


def test_the_rules_cover_what_the_issue_asks_to_hear_about() -> None:
    used = set().union(*(metric_names(r["expr"]) for r in rules()))
    for needed in (
        "up",  # no scrape
        "respaldo_backup_last_success_timestamp_seconds",  # too old against the RPO
        "respaldo_backup_failures_since_success",  # failures
        "respaldo_jobs_total",
        "respaldo_restore_test_last_passed",  # restore test failed
        "respaldo_restore_test_last_success_timestamp_seconds",  # restore test too old
        "respaldo_restore_test_kind_last_passed",  # of each kind of backup
        "respaldo_restore_test_kind_last_success_timestamp_seconds",
        "respaldo_wal_archive_lag_seconds",  # archive lag
        "respaldo_wal_archive_failures_total",
    ):
        assert needed in used, needed


def dashboard_exprs() -> Iterator[str]:
    board = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            yield target["expr"]


def test_the_dashboard_uses_only_exposed_metrics(exposed: dict[str, set[str]]) -> None:
    exprs = list(dashboard_exprs())
    assert len(exprs) >= 15
    for expr in exprs:
        check_expr(expr, exposed)
    board = json.loads(DASHBOARD.read_text())
    for variable in board["templating"]["list"]:
        metric, label = re.fullmatch(
            r"label_values\((\w+), (\w+)\)", variable["query"]["query"]
        ).groups()  # type: ignore[union-attr]
        assert label in exposed[metric]


def test_docs_monitoring_names_every_metric(exposed: dict[str, set[str]]) -> None:
    text = (DOCS / "monitoring.md").read_text()
    missing = [name for name in sorted(exposed) if f"`{name}`" not in text]
    assert not missing, f"docs/monitoring.md does not describe {missing}"


def test_the_notifications_failing_rule_says_what_its_target_missed() -> None:
    # A message that another target took is never sent to the failing one again (only
    # one that reached no target waits for the watchdog; docs/notifications.md): the
    # description must not promise it, and says where to find what was missed.
    (rule,) = [r for r in rules() if r["alert"] == "RespaldoNotificationsFailing"]
    description = rule["annotations"]["description"]
    assert "again once the target answers" not in description
    assert "not sent to this target again" in description
    for where in ("'respaldo notify test'", "/alerts", "'respaldo status'"):
        assert where in description, where


def test_the_dashboards_backup_age_thresholds_are_the_default_rpo() -> None:
    # The dashboard cannot read respaldo's [rpo]: its red steps are the defaults, and went
    # stale when physical_hours became 8 (the fall-back night of an every-6-hours schedule).
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    rpo = Settings().rpo
    physical = panels["Age of the newest physical backup"]
    steps = physical["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": rpo.physical_hours * 3600}
    assert f"{rpo.physical_hours:g} h RPO" in physical["description"]


def test_the_dashboard_says_logical_and_physical_as_respaldo_does() -> None:
    """9f44b01 renamed the panel "Age of the newest logical backup"; its description still
    said "the 26 h RPO of full backups" beside the physical panel's "physical backups".
    The kind label's values (full, incremental) stay in the queries."""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        said = f"{panel['title']} {panel.get('description', '')}"
        assert not re.search(r"\b(full|incremental) backups?\b", said), said
