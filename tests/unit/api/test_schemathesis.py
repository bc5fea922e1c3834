"""schemathesis against /openapi.json: for every operation, generated requests get no
500 and no answer that breaks the schema (status declared, body and headers as
declared). A few derandomised examples per operation, so that it stays fast and the
same on every run. (Its pytest plugin does not work with pytest 9: the operations are
walked here.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hypothesis
import schemathesis
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from respaldo.api import create_app
from respaldo.config import Settings
from respaldo.domain import BackupKind
from respaldo.operations.context import Context
from tests.unit.api.conftest import completed_backup

EXAMPLES = 8
# Not positive_data_acceptance: a schema-valid request may still be refused with a 422
# (a database that is not configured, a restore of a failed backup).
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]


def test_no_500_and_no_answer_breaks_the_schema(
    settings: Settings, context: Context, admin: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    completed_backup(context, "erp", BackupKind.FULL, now - timedelta(days=1), verified=True)
    completed_backup(context, "erp", BackupKind.FULL, now)
    app = create_app(settings, context)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tested = []
    try:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()

            @hypothesis.given(case=operation.as_strategy())
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def call(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
                case.call_and_validate(headers=admin, checks=CHECKS)

            call()
            tested.append(operation.label)
    finally:
        asgi.shutdown_lifespans()
    assert "GET /admin/backups" in tested and len(tested) >= 12
