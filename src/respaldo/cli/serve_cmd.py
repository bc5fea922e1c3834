"""``respaldo serve``: run the schedule and the HTTP server; ``respaldo schedule``: list it."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from respaldo.cli.app import app, err_console, out_console, print_json, state
from respaldo.config import Settings, check_private_file
from respaldo.errors import ConfigError, RespaldoError
from respaldo.operations import queue
from respaldo.operations.context import Context
from respaldo.operations.listen import clear_text_warning
from respaldo.operations.models import to_json_list
from respaldo.phrases import counted

# The HTTP server (uvicorn, FastAPI) and the scheduler (APScheduler) are imported by the
# two commands that use them: every other command (a backup from cron, each wal-fetch of
# a recovery) would pay about 0.2 s and 13 MB for them otherwise.
if TYPE_CHECKING:
    import uvicorn

    from respaldo.operations.schedule import EntryInfo
    from respaldo.scheduling.service import Service

log = logging.getLogger(__name__)

_SIGNAL_CHECK_SECONDS = 0.5
"""How long the main thread of ``serve`` sleeps at most between looks for a signal.
Python runs a signal's handler in the main thread only, and wakes it only if the signal
was delivered to it: the kernel may hand SIGTERM to any thread of the process (one of the
HTTP server's, the scheduler's, a job's), and a main thread waiting without a timeout then
never ran the handler. serve ignored SIGTERM for minutes, until it was killed."""


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    count: Annotated[int, typer.Option("--next", min=1, help="Next run times to show.")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List what 'respaldo serve' runs, and when it next runs it."""
    _list(state(ctx).settings, count, as_json)


@app.command("serve")
def serve(
    ctx: typer.Context,
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the schedule (as 'respaldo schedule').")
    ] = False,
) -> None:
    """Run the schedule and the HTTP server (\\[server] listen) until SIGTERM or Ctrl-C.

    With a SQLite catalog it runs its jobs itself; on SIGTERM the running jobs are
    cancelled and recorded as cancelled before it exits. With a PostgreSQL catalog its
    jobs go to the queue, and it works as a worker too unless \\[server] run_jobs = false.
    """
    settings = state(ctx).settings
    if list_only:
        _list(settings, 3, False)
        return
    from respaldo.operations.scrub import scrub_logs

    # The service's log is read by more people than its secrets are meant for.
    scrub_logs(settings)
    if (warning := clear_text_warning(settings.server)) is not None:
        log.warning("%s", warning)
    started = threading.Event()
    try:
        # retry_lost: a job this service lost when it was killed is retried (and run) here.
        # alerts_later: the lost jobs' alerts are recorded, sent by the service's resend.
        with Context.open(settings, retry_lost=True, alerts_later=True) as context:
            from respaldo.scheduling.service import Service

            queue.warn_clock_offset(context)  # a PostgreSQL catalog's fleet: locks need it
            queue.warn_repositories(context)  # and one repository under each name
            service = Service.create(context)
            worker = None
            if service.queued and settings.server.run_jobs:
                worker = queue.WorkerThread(context, queue.WorkerOptions(name=None))
            _run(settings, context, service, worker, started)
    except RespaldoError as exc:
        if not started.is_set():
            _tell_not_started(settings, exc)
        raise


def _tell_not_started(settings: Settings, exc: RespaldoError) -> None:
    """Alert that ``serve`` could not start (the catalog does not open, the repository's
    passphrase is wrong, the port is taken...): nothing runs the schedule then, and the
    watchdog that would tell is the service's own. Its service manager starts it again
    every 30 s (Restart=on-failure), so the alert is throttled to one per repeat interval,
    in the catalog or, when that is what fails, in a file of ``cache_dir`` (as a WAL
    push's). Before, each try ended in the journal alone while no backup was taken."""
    from respaldo.operations.alerts import notify_failure_settings

    notify_failure_settings(settings, "serve", exc, throttle_key="serve:start")


def _run(
    settings: Settings,
    context: Context,
    service: Service,
    worker: queue.WorkerThread | None,
    started: threading.Event,
) -> None:
    from respaldo.operations.workers import Workers
    from respaldo.web.site import create_site

    # First: a bad JWT secret or ERP key, or a TLS key others can read, is a ConfigError
    # before anything listens or any signal handler is replaced.
    if settings.server.tls_key is not None:
        check_private_file(settings.server.tls_key, "[server] tls_key", root_group_read=True)
    workers = Workers(context, size=settings.server.job_workers)
    api = create_site(settings, context, workers)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = http_server(settings, api)
    # uvicorn installs no signal handlers outside the main thread: these stay ours.
    web = threading.Thread(target=_serve_http, args=(server,), name="http", daemon=True)
    try:
        web.start()
        while not server.started and web.is_alive():
            stop.wait(0.05)  # uvicorn offers no event to wait on
        if not server.started:
            raise ConfigError(
                f"cannot listen on {settings.server.listen}",
                hint="another process may use that port; set [server] listen",
            )
        service.start()
        started.set()
        if worker is not None:
            worker.start()
        where = "a worker of every queue" if worker else "jobs to the queue's workers"
        scheme = "https" if settings.server.tls else "http"
        address = f"{scheme}://{listening_on(settings, server)}"
        err_console.print(
            started_line(len(service.schedule), address, where if service.queued else None),
            highlight=False,
        )
        while not stop.wait(_SIGNAL_CHECK_SECONDS):
            pass  # each wake-up runs the handlers of signals another thread took
        err_console.print(f"respaldo serve: {received[0]}: stopping", highlight=False)
    finally:
        server.should_exit = True
        reason = f"respaldo serve stopped ({received[0] if received else 'error'})"
        service.stop(reason)
        workers.stop(reason)
        if worker is not None:
            worker.stop()
        if web.is_alive():
            web.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_http(server: uvicorn.Server) -> None:
    # uvicorn ends with sys.exit(3) when it cannot listen (it logged why): the main thread
    # sees that the server never started and says so; the exit is no crash of this thread.
    with contextlib.suppress(SystemExit):
        server.run()


def listening_on(settings: Settings, server: uvicorn.Server) -> str:
    """``HOST:PORT`` the started ``server`` listens on: ``[server] listen`` with the port
    the system gave when that port is 0 (the only way to learn it)."""
    host = settings.server.listen.rpartition(":")[0]
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"{host}:{port}"


def _list(settings: Settings, count: int, as_json: bool) -> None:
    from respaldo.operations.schedule import schedule_listing

    with Context.open(settings) as context:
        entries = schedule_listing(context, datetime.now(UTC), count)
    if as_json:
        print_json(to_json_list(entries))
        return
    out_console.print(_table(entries))


def _table(entries: list[EntryInfo]) -> Table:
    table = Table("schedule", "job", "cron", "next runs")
    for entry in entries:
        table.add_row(
            entry.name,
            f"{entry.kind.value} {entry.target or ''}".strip(),
            f"{entry.cron} ({entry.time_zone})",
            ", ".join(when.strftime("%Y-%m-%d %H:%M %Z") for when in entry.next_runs),
        )
    return table


def started_line(schedules: int, address: str, where: str | None) -> str:
    """What ``respaldo serve`` prints once it runs: its schedules (one said "1
    schedules"), its address, and where queued jobs run."""
    line = counted(schedules, "{count} schedule", "{count} schedules")
    return f"respaldo serve: {line}, listening on {address}" + (f", {where}" if where else "")


def http_server(settings: Settings, api: Any) -> uvicorn.Server:
    """The HTTP server of ``serve`` for the ASGI application ``api``, its log scrubbed.

    uvicorn configures its loggers (``uvicorn``, ``uvicorn.access``) when its Config is
    made, with handlers of their own that do not pass records on to the root logger,
    where :func:`~respaldo.operations.scrub.scrub_logs` was installed first: the text of
    an unexpected exception (which may echo a loaded secret) would reach the service's
    log from there unscrubbed.
    """
    import ipaddress
    import logging

    import uvicorn

    from respaldo.operations.scrub import scrub_logs

    tls = settings.server
    config = uvicorn.Config(
        api,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        ssl_certfile=str(tls.tls_certificate) if tls.tls_certificate else None,
        ssl_keyfile=str(tls.tls_key) if tls.tls_key else None,
        # uvicorn believes X-Forwarded-For and -Proto from loopback unless told whom to
        # trust: a local client would choose the address the audit log and the login
        # limits see. Only [server] trusted_proxies (none: no one), as networks: uvicorn
        # ignores one written with host bits (10.1.2.3/8), which the config accepts.
        forwarded_allow_ips=[
            str(ipaddress.ip_network(p, strict=False)) for p in tls.trusted_proxies
        ],
        # A client's idle HTTPS keep-alive connection otherwise holds SIGTERM for
        # asyncio's 30-second TLS close; jobs are cancelled and recorded apart.
        timeout_graceful_shutdown=5,
    )
    for name in ("uvicorn", "uvicorn.access"):
        scrub_logs(settings, logging.getLogger(name))
    return uvicorn.Server(config)
