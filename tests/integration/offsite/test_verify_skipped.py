"""A mirror the daily verify cannot check (a garbage collection holds its lock) is skipped
with a warning and the job completes, as before; what is new is that the status notes
when each repository was last checked, so one skipped day after day turns red and the
watchdog alerts, instead of going unchecked for ever with nobody told. And a verify that
waits for such a lock stops when its job is cancelled, not when the wait ends.

Real parts: local repositories, a real files backup, the lock held by a second process
(as a prune running elsewhere holds it), the daily verify run as the service runs its
job, the alert through a real SMTP server (aiosmtpd), in Spanish."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from respaldo import reasons
from respaldo.cancellation import CancelToken, cancellable
from respaldo.config import Settings, load_settings
from respaldo.domain import JobKind, JobStatus, TriggeredBy
from respaldo.errors import JobCancelled
from respaldo.i18n import translations
from respaldo.operations import jobs, watchdog
from respaldo.operations.context import Context
from respaldo.operations.initialize import initialize
from respaldo.operations.jobs import JobRequest
from respaldo.operations.prune_report import prune_backups
from respaldo.operations.scheduled import run_queued
from respaldo.operations.status import StatusItem, compute_status
from respaldo.operations.verify import VerifyResult, check_presence
from tests.integration.physical.conftest import FAST_KDF
from tests.servers.notify import Smtp, smtp  # noqa: F401

pytestmark = pytest.mark.integration

PASSPHRASE = "verify skipped (test passphrase)"
HOLDER = Path(__file__).with_name("lock_holder.py")
PROJECT = Path(__file__).parents[3]


@pytest.fixture
def settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: Smtp,  # noqa: F811
) -> Settings:
    monkeypatch.setenv("RESPALDO_PASSPHRASE", PASSPHRASE)
    tree = tmp_path / "uploads"
    tree.mkdir()
    for n in range(20):
        (tree / f"factura-{n:03d}.pdf").write_bytes(bytes([n]) * 20000)
    config = tmp_path / "respaldo.toml"
    config.write_text(f"""
cache_dir = "{tmp_path / "cache"}"
pack_size = 65536

[catalog]
url = "sqlite:///{tmp_path / "catalog.db"}"

[chunker]
min_size = 1024
avg_size = 4096
max_size = 16384

[locks]
wait_seconds = 0

[[repositories]]
name = "local"
url = "file://{tmp_path / "repo"}"

[[repositories]]
name = "mirror"
url = "file://{tmp_path / "mirror"}"

[[file_sets]]
name = "uploads"
paths = ["{tree}"]

[notifications]
language = "es"
timeout_seconds = 5

[[notifications.targets]]
name = "ops-mail"
url = "{smtp.url()}"
""")
    loaded = load_settings(config)
    initialize(loaded, kdf=FAST_KDF)
    with Context.open(loaded) as ctx:
        from respaldo.operations.snapshot import backup_source

        backup_source(ctx, "uploads")
    return loaded


@contextmanager
def collection_holding(root: Path, *shared: str) -> Iterator[str]:
    """A second process holding the exclusive lock of the repository at ``root`` (the
    one garbage collection takes; with ``"shared", PURPOSE`` a running backup's lease)
    until the block ends; yields its lock object's name."""
    child = subprocess.Popen(
        [sys.executable, str(HOLDER), str(root), *shared],
        cwd=PROJECT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        line = child.stdout.readline()
        assert line.startswith("held locks/"), line + child.stderr.read()
        yield line.split()[1]
    finally:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == "released", out


def _root(settings: Settings, name: str) -> Path:
    return Path(settings.repository(name).url.removeprefix("file://"))


def daily_verify(settings: Settings) -> tuple[JobStatus, Any]:
    """The service's daily verify job (one slice: every chunk of the primary)."""
    request = JobRequest(JobKind.VERIFY, None, TriggeredBy.SCHEDULE, "verify", {"slices": 1})
    with Context.open(settings) as ctx:
        job = jobs.submit(ctx, request)
        result = run_queued(ctx, job.id)
        return jobs.get(ctx, job.id).status, result


def verify_items(settings: Settings, now: datetime) -> dict[str, StatusItem]:
    with Context.open(settings) as ctx:
        report = compute_status(ctx, now, servers=False)
    return {i.key: i for i in report.general if i.check == "verify"}


def _text(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return " ".join(body.get_content().split())


def test_a_mirror_a_collection_keeps_locked_turns_red_and_alerts_until_checked(
    settings: Settings,
    smtp: Smtp,  # noqa: F811
) -> None:
    with collection_holding(_root(settings, "mirror")):
        status, result = daily_verify(settings)
    # As before: skipped with a warning, the job completes (the primary was verified).
    assert status is JobStatus.COMPLETED
    assert isinstance(result, VerifyResult)
    (warning,) = result.warnings
    assert warning.startswith("repository mirror was not checked: garbage collection is running")

    now = datetime.now(UTC)
    items = verify_items(settings, now)
    assert set(items) == {"verify:local", "verify:mirror"}
    local, mirror = items["verify:local"], items["verify:mirror"]
    assert local.level == "green" and local.reason.startswith("repository local was last verified")
    assert local.at is not None and local.limit_seconds == 50 * 3600
    assert mirror.level == "green", mirror.reason
    assert mirror.reason.startswith("repository mirror was never verified in the 0 s since")

    # 51 hours on, neither was checked since: both red, both alerted.
    later = now + timedelta(hours=51)
    with Context.open(settings) as ctx:
        checked = watchdog.check(ctx, later, servers=False)
    raised = {c.key for c in checked.conditions if c.action == "raised"}
    assert {"verify:local", "verify:mirror"} <= raised, checked.conditions
    red = {i.key: i for i in checked.report.general}["verify:mirror"]
    assert red.level == "red"
    assert "garbage collection holds its lock longer than [locks] wait_seconds" in red.reason
    # The Spanish page says it whole in Spanish.
    assert reasons.reason(red.reason, translations("es").gettext) == (
        "el repositorio mirror no se ha verificado nunca desde que el estado lo miró por "
        "primera vez, hace 51 h (límite 50 h); la verificación diaria se lo salta cuando no "
        "puede abrirlo o una recolección de basura retiene su bloqueo más de [locks] "
        "wait_seconds: los avisos de su trabajo dicen cuál"
    )
    mails = smtp.inbox.wait(len(raised))
    (mail,) = [m for m in mails if "repositorio mirror" in m["Subject"]]
    assert mail["Subject"] == (
        "[respaldo] CRÍTICO: el repositorio mirror no se ha verificado nunca en 51 h (límite 50 h)"
    ), mail["Subject"]
    text = _text(mail)
    assert "'respaldo verify --all --repository mirror' lo comprueba ahora" in text, text
    assert "garbage collection" not in text

    # The collection over, the next daily verify checks the mirror: last verified now.
    status, result = daily_verify(settings)
    assert status is JobStatus.COMPLETED and not result.warnings, result.warnings
    checked_now = verify_items(settings, datetime.now(UTC))["verify:mirror"]
    assert checked_now.level == "green"
    assert checked_now.reason.startswith("repository mirror was last verified")


def test_a_verify_waiting_for_a_collection_stops_when_its_job_is_cancelled(
    settings: Settings,
) -> None:
    mirror = _root(settings, "mirror")
    token = CancelToken()
    outcome: list[BaseException | VerifyResult] = []
    with collection_holding(mirror) as held, Context.open(settings) as ctx:
        # An hour's wait, as [locks] wait_seconds may be set for a long prune.
        ctx.repository("mirror").lock_wait = 3600.0

        def run() -> None:
            with cancellable(token):
                try:
                    outcome.append(check_presence(ctx, "mirror"))
                except BaseException as exc:
                    outcome.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        token.cancel("cancelled by the operator")
        # Far below the hour: a wait that the cancel did not end would still be waiting.
        thread.join(timeout=300)
        assert not thread.is_alive()
        locks = sorted(p.name for p in (mirror / "locks").iterdir())
        # Nothing of the verify's is left behind: only the collection's lock.
        assert locks == [held.removeprefix("locks/")]
    (caught,) = outcome
    assert isinstance(caught, JobCancelled), caught
    assert "cancelled by the operator" in str(caught)


def test_a_prune_a_running_backup_keeps_out_alerts_its_error_and_hint_in_spanish(
    settings: Settings,
    smtp: Smtp,  # noqa: F811
) -> None:
    # A backup holds its lease on the mirror (another process, as a backup running
    # there does): the prune's collection there cannot start, and it says so.
    purpose = "backup 20261206T040000Z-3f9a1c2e"
    mirror = _root(settings, "mirror")
    with collection_holding(mirror, "shared", purpose), Context.open(settings) as ctx:
        report = prune_backups(ctx)
    failure = report.found_failure()
    assert failure is not None and "the repository is in use: shared lock for " + purpose in (
        failure
    )
    (mail,) = smtp.inbox.wait(1)
    text = _text(mail)
    assert (
        "Error: recolección de basura: el repositorio está en uso: bloqueo compartido para "
        f"{purpose} (pid " in text
    ), text
    assert (
        "(la recolección de basura espera a los backups en curso; ejecute prune de nuevo "
        "cuando terminen; el bloqueo de un proceso que murió se ignora pasado 0:10:00 (al "
        "momento en el mismo host))" in text
    ), text
    assert "Qué hacer: ejecute 'respaldo prune' de nuevo; termina lo que quedó pendiente" in text
    assert "garbage collection" not in text and "run 'respaldo prune'" not in text, text
