"""A watchdog check that hangs (here: reading a named pipe nobody writes, a real block
as a read on a hung NFS mount is) is told by the service's stall monitor, from a thread
other than the stuck one: a critical alert naming what it was reading, a red item in the
status, /health not ok; the alert is resolved once the check ends. Before, later checks
were skipped with a line in the log and nothing else."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from respaldo.catalog import Deliveries
from respaldo.notify import Alert, Event, Level
from respaldo.operations import alerts, stall, status
from respaldo.operations.context import Context
from respaldo.operations.health import CHECK_STUCK, CHECK_STUCK_ON_MIRROR, check_health
from respaldo.operations.repositories import init_repositories
from respaldo.scheduling.service import Service
from tests.servers.notify import Webhook, webhook  # noqa: F401
from tests.unit.api.conftest import FAST_KDF
from tests.unit.operations.status_support import status_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.unit

STARTED = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
LIMIT = timedelta(minutes=30)


@pytest.fixture
def ctx(tmp_path: Path, webhook: Webhook) -> Iterator[Context]:  # noqa: F811
    target = {"name": "hook", "url": webhook.url, "levels": ["critical", "resolved"]}
    settings = status_settings(
        tmp_path,
        notifications={"targets": [target], "language": "es"},
        rpo={"watchdog_stuck_minutes": 30},
        schedules={"time_zone": "UTC"},
    )
    with Context.open(settings, create=True) as context:
        yield context


def test_a_hung_check_is_alerted_shown_and_resolved_when_it_ends(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
    tmp_path: Path,
) -> None:
    pipe = tmp_path / "hung"
    os.mkfifo(pipe)
    entered = threading.Event()
    clock = [STARTED]

    def hangs(context: Context, now: datetime) -> None:
        stall.at(stall.REPOSITORY, repository="offsite")
        entered.set()
        pipe.read_bytes()  # blocks until a writer opens the pipe and closes it

    service = Service(ctx, [], watchdog=hangs, clock=lambda: clock[0])
    # A daemon: a check that starts only after the test gave up on it never ends.
    checking = threading.Thread(target=service.watch, daemon=True)
    checking.start()
    try:
        assert entered.wait(120), "the watchdog check never reached its hung read"
        # Not yet past the limit: nothing to tell.
        clock[0] = STARTED + LIMIT
        assert service.look_for_stuck_checks(LIMIT) == []
        assert check_health(ctx, now=clock[0]).checks.ok
        clock[0] = STARTED + LIMIT + timedelta(minutes=1)
        (found,) = service.look_for_stuck_checks(LIMIT)
        assert (found.check, found.since) == ("watchdog", STARTED)
        (told,) = webhook.inbox.wait(1)
        said: dict[str, Any] = told["json"]
        assert (
            "la comprobación de vigilancia lleva 31 min atascada: leyendo el repositorio "
            "offsite" in said["title"]
        ), said
        # /health and the status say so meanwhile.
        health = check_health(ctx, now=clock[0])
        assert not health.ok and health.catalog.ok
        assert (health.checks.ok, health.checks.error) == (False, CHECK_STUCK)
        report = status.compute_status(ctx, clock[0], wal_archived=(), servers=False)
        (item,) = [i for i in report.items if i.check == "stuck"]
        assert (item.key, item.level) == ("stuck:watchdog", "red")
        assert item.reason == "watchdog check stuck for 31 min in reading repository offsite"
        # Looked at again: the same run is not told twice (repeats are throttled).
        service.look_for_stuck_checks(LIMIT)
        assert len(webhook.inbox.items) == 1
    finally:
        # Opening the pipe to write waits for its reader: only the hung check is one.
        if entered.is_set():
            with pipe.open("wb"):
                pass  # the hung read ends
            checking.join()
    assert service.look_for_stuck_checks(LIMIT) == []
    got = webhook.inbox.wait(2)
    assert len(got) == 2, got
    assert got[1]["json"]["type"] == "success" and "atascada" in got[1]["json"]["title"], got
    assert check_health(ctx, now=clock[0]).checks.ok
    report = status.compute_status(ctx, clock[0], wal_archived=(), servers=False)
    assert not [i for i in report.items if i.check == "stuck"]


def test_a_stuck_alert_left_firing_by_a_killed_service_is_resolved_at_the_first_look(
    ctx: Context,
    webhook: Webhook,  # noqa: F811
) -> None:
    alerts.set_condition(
        ctx,
        "stuck:lost-jobs-sweep",
        True,
        message=stall.MESSAGES["lost-jobs-sweep"],
        args={"minutes": 40, "doing": "x"},
        now=STARTED,
    )
    webhook.inbox.wait(1)
    service = Service(ctx, [], clock=lambda: STARTED + timedelta(hours=1))
    assert service.look_for_stuck_checks(LIMIT) == []
    got = webhook.inbox.wait(2)
    assert len(got) == 2 and got[1]["json"]["type"] == "success", got
    assert alerts.firing_keys(ctx, stall.PREFIX) == []


def claimed(ctx: Context) -> bool:
    """Whether the one alert waiting was taken by a resend (its attempt begun)."""
    with ctx.catalog.read() as session:
        return [d.attempts for d in Deliveries(session).pending()] == [1]


def test_a_hung_resend_of_waiting_alerts_is_alerted_shown_and_resolved_when_it_ends(
    tmp_path: Path,
    webhook: Webhook,  # noqa: F811
) -> None:
    # The resend of the alerts that wait for a target (Service.resend) runs one at a time
    # as the watchdog does: one that hangs skipped every later one, and nothing said so.
    # Here it hangs on a target's url_file that is a named pipe nobody writes (a real
    # block, as the watchdog's hung read above).
    pipe = tmp_path / "url"
    os.mkfifo(pipe, 0o600)
    targets = [
        {"name": "hook", "url": webhook.url, "levels": ["critical", "resolved"]},
        {"name": "piped", "url_file": str(pipe), "levels": ["warning"]},
    ]
    settings = status_settings(
        tmp_path, notifications={"targets": targets}, rpo={"watchdog_stuck_minutes": 30}
    )
    clock = [STARTED]
    with Context.open(settings, create=True) as ctx:
        waiting = Alert(Level.WARNING, Event.FAILED, "copy", "here", STARTED)
        assert alerts._send(settings, ctx.catalog, waiting, later=True) == ([], True)
        service = Service(ctx, [], clock=lambda: clock[0])
        resending = threading.Thread(target=service.resend, daemon=True)
        resending.start()
        try:
            wait_for("the resend to take the alert for the piped target", lambda: claimed(ctx))
            clock[0] = STARTED + LIMIT + timedelta(minutes=1)
            (found,) = service.look_for_stuck_checks(LIMIT)
            assert (found.check, found.since) == ("alert-resend", STARTED)
            assert found.doing == "sending what waits for notification target piped"
            (told,) = webhook.inbox.wait(1)
            assert told["json"]["title"] == (
                "[respaldo] CRITICAL: resend of waiting alerts stuck for 31 min in sending "
                "what waits for notification target piped"
            ), told
            assert "are not sent while the resend is stuck" in told["json"]["message"]
            report = status.compute_status(ctx, clock[0], wal_archived=(), servers=False)
            (item,) = [i for i in report.items if i.check == "stuck"]
            assert (item.key, item.level) == ("stuck:alert-resend", "red")
        finally:
            # Opening the pipe to write waits for its reader: only the hung resend is one.
            with pipe.open("w") as url:
                url.write(webhook.url)
            resending.join()
        assert service.look_for_stuck_checks(LIMIT) == []
        got = webhook.inbox.wait(3)  # the stuck alert, the waiting one, the resolved
        assert [g["json"]["type"] for g in got] == ["failure", "warning", "success"], got


def test_a_step_just_after_a_check_read_the_clock_does_not_make_it_stuck(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine's clock stepped an hour ahead right after the service read it to start
    a check (on a loaded machine the thread can be put off there): the run's wall-clock
    start, read after the step, showed no step, and the check that had just started was
    "stuck for 60 min". test_serve_stuck_clock_step steps serve's clock while a sweep
    may be starting (one every 2 s there). The step is made exact here: the service's
    clock (the wall clock, as in serve) steps it."""
    step = [timedelta(0)]
    real = datetime

    class Wall(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return real.now(tz) + step[0]

    monkeypatch.setattr(stall, "datetime", Wall)
    reads: list[datetime] | None = None  # the clock's readings once the check starts

    def clock() -> datetime:
        now = Wall.now(UTC)
        if reads is not None:
            reads.append(now)
            if len(reads) == 1:
                step[0] = timedelta(hours=1)  # just after the check's first read
        return now

    seen: list[list[stall.Stuck]] = []

    def watchdog(context: Context, now: datetime) -> None:
        seen.append(stall.stuck(Wall.now(UTC), LIMIT))

    service = Service(ctx, [], watchdog=watchdog, clock=clock)
    reads = []
    service.watch()
    assert seen == [[]]
    assert reads[0] < reads[-1] - timedelta(minutes=59)  # the step came in between


def test_a_check_stuck_only_on_a_mirror_is_health_degraded_naming_it(tmp_path: Path) -> None:
    # A mirror down alone is "degraded" (200), but the watchdog hung on its hung mount
    # turned /health 503 ("failing") after watchdog_stuck_minutes: a load balancer took
    # the API out of rotation for a mirror. Stuck on the primary it stays 503.
    settings = status_settings(
        tmp_path,
        secondary=True,
        passphrase="correct horse (test)",
        rpo={"watchdog_stuck_minutes": 30},
    )
    init_repositories(settings, kdf=FAST_KDF)
    clock = [STARTED]
    reached = {name: threading.Event() for name in ("offsite", "local")}
    go_on = threading.Event()
    ended = threading.Event()

    def hangs(context: Context, now: datetime) -> None:
        stall.at(stall.REPOSITORY, repository="offsite")
        reached["offsite"].set()
        go_on.wait()
        stall.at(stall.REPOSITORY, repository="local")
        reached["local"].set()
        ended.wait()

    with Context.open(settings, create=True) as ctx:
        service = Service(ctx, [], watchdog=hangs, clock=lambda: clock[0])
        checking = threading.Thread(target=service.watch, daemon=True)
        checking.start()
        try:
            assert reached["offsite"].wait(120), "the watchdog check never reached the mirror"
            clock[0] = STARTED + LIMIT + timedelta(minutes=1)
            health = check_health(ctx, now=clock[0])
            assert (health.ok, health.status) == (False, "degraded")
            assert health.checks.error == CHECK_STUCK_ON_MIRROR.format(repository="offsite")
            assert [r.ok for r in health.repositories] == [True, True]
            go_on.set()
            assert reached["local"].wait(120), "the watchdog check never reached the primary"
            health = check_health(ctx, now=clock[0])
            assert health.status == "failing"
            assert (health.checks.ok, health.checks.error) == (False, CHECK_STUCK)
        finally:
            go_on.set()
            ended.set()
            checking.join()
