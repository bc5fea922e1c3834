"""``respaldo check DATABASE``: what the server and the repository lack for physical
backups and point-in-time recovery, and how to fix each.

The server side is :func:`respaldo.postgres.checks.check_server`. Added here: the
``archive_command`` to suggest (this respaldo, this config file), and the repository's
record of which cluster the database is: absent (the first WAL push or physical backup
writes it), matching, or naming another cluster, which ``adopt`` replaces after a
deliberate re-creation of the server.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from respaldo.config import Settings
from respaldo.errors import RespaldoError
from respaldo.operations.models import ResultModel
from respaldo.operations.physical_restore import default_program
from respaldo.operations.wal import open_wal_repository
from respaldo.postgres import ConnInfo
from respaldo.postgres.checks import Finding, ServerCheck, Status, check_server
from respaldo.postgres.server_user import (
    can_ask_as,
    local_server_user,
    program_problem,
    read_problems,
    repository_problems,
)
from respaldo.repository.wal import ClusterRecord, read_cluster, write_cluster
from respaldo.storage.registry import local_path


@dataclass
class CheckResult:
    database: str
    server: ServerCheck
    adopted: bool = False

    @property
    def findings(self) -> list[Finding]:
        return self.server.findings

    @property
    def ok(self) -> bool:
        return self.server.ok

    def view(self) -> CheckView:
        """The result model that ``check --json`` prints and the API returns."""
        return CheckView(
            database=self.database,
            ok=self.ok,
            adopted=self.adopted,
            findings=[
                FindingView(check=f.name, status=f.status.value, value=f.value, fix=f.fix)
                for f in self.findings
            ],
        )


class FindingView(ResultModel):
    """One thing checked: ``status`` is ok, missing (backups or recovery will fail) or
    warning (works, not as well as it should); ``fix`` says how to fix it."""

    check: str
    status: Literal["ok", "missing", "warning"]
    value: str
    fix: str


class CheckView(ResultModel):
    """What ``check`` found for one database (``check --json`` prints ``findings``)."""

    database: str
    ok: bool
    adopted: bool
    findings: list[FindingView]


def suggested_archive_command(settings: Settings, database: str) -> str:
    config = type(settings).toml_path
    try:
        program = default_program()
    except RespaldoError:
        program = "respaldo"
    # PostgreSQL replaces %p, %f and %% in archive_command before the shell sees it.
    parts = [shlex.quote(program).replace("%", "%%")]
    if config is not None:
        parts += ["--config", shlex.quote(str(config.absolute())).replace("%", "%%")]
    parts.append("wal-push")
    if len(settings.databases) > 1:
        parts += ["--database", database]
    return " ".join([*parts, "%p"])


def check_database(settings: Settings, database: str, *, adopt: bool = False) -> CheckResult:
    """Check the server of configured ``database`` and the repository's record of it.

    Never raises for what is missing (each is a finding) except ConfigError for a
    database that is not configured.
    """
    db = settings.database(database)
    conninfo = ConnInfo.from_settings(db)
    server = check_server(
        conninfo,
        archive_command=suggested_archive_command(settings, db.name),
        pg_bin_dir=db.pg_bin_dir,
        slot_wal_limit=int(settings.rpo.slot_wal_mb * 1_000_000),
        standby_lag=settings.rpo_for(db.name).standby_lag,
    )
    result = CheckResult(db.name, server)
    if server.system_identifier is None:
        return result
    server.findings.extend(_server_user_findings(settings, server))
    sysid = str(server.system_identifier)
    try:
        repo = open_wal_repository(settings)
        record = read_cluster(repo, db.name)
        if adopt and (record is None or record.system_identifier != sysid):
            write_cluster(repo, ClusterRecord(db.name, sysid, datetime.now(UTC), "check --adopt"))
            record = read_cluster(repo, db.name)
            result.adopted = True
    except RespaldoError as exc:
        server.findings.append(Finding("repository", Status.MISSING, str(exc), exc.hint))
        return result
    if record is None:
        server.findings.append(
            Finding(
                "cluster record",
                Status.OK,
                f"none yet; cluster {sysid} will be recorded by the first WAL push or backup",
            )
        )
    elif record.system_identifier == sysid:
        server.findings.append(Finding("cluster record", Status.OK, f"cluster {sysid}"))
    else:
        server.findings.append(
            Finding(
                "cluster record",
                Status.MISSING,
                f"the repository records cluster {record.system_identifier}, the server is {sysid}",
                f"if the server was re-created on purpose: respaldo check {db.name} --adopt",
            )
        )
    return result


def _server_user_findings(settings: Settings, server: ServerCheck) -> list[Finding]:
    """Whether the server's OS user can run ``archive_command`` and write the repository,
    asked as that user; nothing when the server is on another machine."""
    user = local_server_user(server.data_directory)
    command = server.archive_command or ""
    if user is None or "wal-push" not in command:
        return []
    if not can_ask_as(user):
        return [
            Finding(
                "server user",
                Status.WARNING,
                f"cannot check what {user.name} may run and write as this user",
                f"run respaldo check as root or as {user.name}",
            )
        ]
    findings: list[Finding] = []
    problem = program_problem(command, user)
    findings.append(
        Finding("archive program", Status.OK, f"{user.name} runs it")
        if problem is None
        else Finding(
            "archive program",
            Status.MISSING,
            f"{user.name} cannot run it: {problem}",
            "install respaldo for the whole machine (make install, docs/install.md) and "
            "use /usr/local/bin/respaldo in archive_command",
        )
    )
    config = type(settings).toml_path
    files = [path for path in (config, settings.passphrase_file) if path is not None]
    unreadable = read_problems([Path(path) for path in files], user)
    primary = settings.repository()
    root = local_path(primary.url)
    blocked = unreadable + (repository_problems(root, user) if root is not None else [])
    findings.append(
        Finding(
            "server user access",
            Status.OK,
            f"{user.name} reads the config and writes the repository",
        )
        if not blocked
        else Finding(
            "server user access",
            Status.MISSING,
            f"{user.name} {'; '.join(blocked)}",
            f"the repository belongs to the server's user: chown -R {user.name} the repository "
            "directory (respaldo run as root then writes as its owner; docs/install.md), and "
            f"make the config and passphrase files readable by {user.name}",
        )
    )
    return findings
