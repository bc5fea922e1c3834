"""The reasons respaldo stores in English (a job's error, a restore test's checks, a
health check's reason), said in another language: the page's, and the alerts'
(``[notifications] language``). One table of phrases for both.

The catalog keeps what the operations wrote, in English, for the CLI, the API and the
logs. The page and the alerts translate the phrases respaldo forms itself (the frame of a
failure, the names of a restore test's checks, the reasons of a lapsed or cancelled job);
what such a phrase carries (an error of PostgreSQL, of a tool, of the storage; a path, a
name) stays as written. A stored reason that no phrase below matches whole is shown as
stored.

Each phrase is written once, as its message (``{name}`` where a part goes); the pattern
that recognises it is made from the message, so the two cannot drift apart. Each part is
itself translated when it is one of these phrases.

A reason that comes as a :class:`~respaldo.phrases.Phrase` (the health checks' reasons,
computed when asked for) needs no pattern: it carries its message and values. Its message
is translated, each value that is a phrase too is said in turn, and one that is text (what
a job or a check recorded) is recognised as above, or put back as written.

Shared, beside :mod:`respaldo.phrases` and :mod:`respaldo.i18n`: the page
(:mod:`respaldo.web`) and the alerts (:mod:`respaldo.notify`, and the application layer's
:mod:`respaldo.operations.alerts`) sit in layers that may not import each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from respaldo.phrases import N_, Phrase, Quantity

Gettext = Callable[[str], str]
Show = Callable[[Quantity], str]
"""How a language writes a :class:`~respaldo.phrases.Quantity` (a size, a share, a time);
without one, as its English text."""


_CHECKS = {
    "restore": N_("restore"),
    "recovery": N_("recovery"),
    "row counts": N_("row counts"),
    "large objects": N_("large objects"),
    "wal archive": N_("WAL archive"),
    "contents": N_("contents"),
    "copies": N_("copies"),
    "roles": N_("roles"),
    "unlogged tables": N_("unlogged tables"),
    "unlogged sequences": N_("unlogged sequences"),
    "drill": N_("restore test"),
}
"""The checks of a restore test (operations/drill.py); ``validation: NAME`` and
``pg_amcheck`` are in :data:`_PHRASES` and kept as named."""

_PHRASES = (
    # operations/drill.py: DrillResult.found_failure, and its checks.
    N_("the restore test failed: {failure}"),
    N_("validation: {name}"),
    N_("got {value}, expected {expected}"),
    N_("consistent, promoted"),
    N_("no corruption"),
    # operations/drill.py: what a restore test's restore check did.
    N_("{restored} bytes in {seconds} s"),
    N_("{restored} bytes in {seconds} s (until the server accepted connections)"),
    # operations/verify.py, operations/prune_report.py: found_failure.
    N_("verify found {count} problem: {problem}"),
    N_("verify found {count} problems: {problem}"),
    N_("prune could not finish in {repository}: {error}"),
    # operations/jobs.py, workers.py, queue.py: why a job was cancelled or skipped.
    N_("cancelled"),
    N_("cancelled by request"),
    N_("interrupted"),
    N_("terminated by SIGTERM"),
    N_("terminated by SIGHUP"),
    N_("respaldo serve is stopping"),
    N_("the worker was stopped before the job ended"),
    N_("the previous run (job {job}) still runs"),
    # catalog/jobs.py: a job whose process is gone.
    N_("process {pid} died while the job ran (found at start-up)"),
    N_("the lease of process {pid} on {host} lapsed: no sign of life since {since}"),
    N_("the job's lease lapsed"),
    # catalog/jobs.py: _silence, the {since} of a lapsed lease.
    N_("{since} ({silent} s before {now} by the catalog's clock; the lease is {lease} s)"),
    # Errors respaldo words, as a failed job records them (str(error)); raised at the
    # page's action they come as Phrases. postgres/server.py: a connection that failed.
    N_("cannot connect to PostgreSQL ({target}): {error}"),
    N_("check the user and password (password_file) and the server's pg_hba.conf"),
    N_("check the database name in the DSN"),
    N_("check that the server is running and accepts connections on that host and port"),
    # postgres/standby.py: stale_reason, a backup refused because its source is a standby
    # whose data is not the database now (each with the commit its replay reached, when
    # it has one), and what its "and ..." says of how old that is; with their hints.
    N_(
        "the server is a standby whose WAL replay is paused: a backup of it would hold the "
        "data of when replay stopped, not the database now"
    ),
    N_(
        "the server is a standby whose WAL replay is paused (its last transaction replayed "
        "committed at {committed}): a backup of it would hold the data of when replay "
        "stopped, not the database now"
    ),
    N_(
        "the server is a standby that applies WAL only {delay} after it was written "
        "(recovery_min_apply_delay): a backup of it would hold the database as it was "
        "{delay} ago, not now"
    ),
    N_(
        "the server is a standby that applies WAL only {delay} after it was written "
        "(recovery_min_apply_delay) (its last transaction replayed committed at {committed}): "
        "a backup of it would hold the database as it was {delay} ago, not now"
    ),
    N_(
        "the server is a standby that is not connected to its primary (no WAL receiver) and "
        "{old}: whether the primary wrote nothing since or its changes do not reach the "
        "standby cannot be told from here, and a backup of it would hold the data of then, "
        "not the database now"
    ),
    N_(
        "the server is a standby whose replay is behind what it received from its primary "
        "(replayed up to {replayed}, the primary's WAL at {upstream}) and {old}: a backup of "
        "it would hold the data of then, not the database now"
    ),
    N_(
        "its last transaction replayed committed at {committed}, {age} ago (more than "
        "[rpo] standby_lag_minutes = {minutes})"
    ),
    N_("it has replayed no transaction since it started ([rpo] standby_lag_minutes = {minutes})"),
    N_(
        "back up through a dsn that leads to the primary, or to a standby that replays what "
        "it receives"
    ),
    N_(
        "back up through a dsn that leads to the primary, or to a standby that replays what "
        "it receives; or resume replay there (SELECT pg_wal_replay_resume())"
    ),
    N_(
        "back up through a dsn that leads to the primary, or to a standby that replays what "
        "it receives; the standby's server log says why it does not connect "
        "(primary_conninfo); a standby fed from a WAL archive alone, whose primary is quiet "
        "for longer, needs a larger [rpo] standby_lag_minutes"
    ),
    N_(
        "back up through a dsn that leads to the primary, or to a standby that replays what "
        "it receives; replay may wait for a query on the standby that conflicts with it "
        "(max_standby_streaming_delay; pg_stat_activity there shows it)"
    ),
    # postgres/standby_blocked.py: replay_blocked, a backup through a standby that waited
    # longer than [rpo] standby_lock_wait_minutes for a lock WAL replay holds or waits
    # for; the sessions named (pg_stat_activity's words) stay as written. The one that
    # names them first: without, {relation} would take them in.
    N_(
        "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
        "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes}: "
        "replay is stuck, waiting for a lock on table {relation}, held by the standby's "
        "{sessions}, which it does not cancel (max_standby_streaming_delay = {delay}); the "
        "standby's data stays as of then"
    ),
    N_(
        "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
        "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes}: "
        "replay is stuck, waiting for a lock on table {relation}, which it does not cancel "
        "(max_standby_streaming_delay = {delay}); the standby's data stays as of then"
    ),
    N_(
        "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
        "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes}: "
        "replay holds an ACCESS EXCLUSIVE lock on table {tables} for a transaction of the "
        "primary that has not ended (DDL, TRUNCATE or LOCK TABLE there)"
    ),
    N_(
        "the server is a standby whose WAL replay blocks a table's lock the backup needs, and "
        "the backup waited for it longer than [rpo] standby_lock_wait_minutes = {minutes} "
        "(what replay waited for could not be told: it may have moved on since)"
    ),
    N_(
        "end that session on the standby (SELECT {calls}) or let replay cancel such queries "
        "(max_standby_streaming_delay not -1), then back up again; or back up through a dsn "
        "that leads to the primary"
    ),
    N_(
        "end those sessions on the standby (SELECT {calls}) or let replay cancel such queries "
        "(max_standby_streaming_delay not -1), then back up again; or back up through a dsn "
        "that leads to the primary"
    ),
    N_(
        "end the session or let replay cancel such queries (max_standby_streaming_delay not "
        "-1), then back up again; or back up through a dsn that leads to the primary"
    ),
    N_(
        "back up again once that transaction has ended on the primary; or back up through a "
        "dsn that leads to the primary"
    ),
    N_(
        "pg_locks and pg_stat_activity on the standby show what its startup process waits "
        "for; or back up through a dsn that leads to the primary"
    ),
    # errors.py: PostgresError (what the program wrote follows it), ToolNotFound.
    N_("{program} exited with status {code}"),
    N_("{program} was killed by signal {signal}"),
    # operations/restore.py: _unchanged, the hint of a restore's pg_restore that failed.
    N_("nothing was changed: {database} is as it was; {then}"),
    N_("nothing was changed: no database {database} was created; {then}"),
    # ... and _roles_created, when --globals had created roles (before, without naming
    # them: the two after, kept for the rows that say it).
    N_(
        "the database {database} is as it was, but the backup's roles this server lacked "
        "were created ({option}): {roles}; {then}"
    ),
    N_(
        "no database {database} was created, but the backup's roles this server lacked "
        "were ({option}): {roles}; {then}"
    ),
    N_(
        "the database {database} is as it was, but the backup's roles this server lacked "
        "were created ({option}); {then}"
    ),
    N_(
        "no database {database} was created, but the backup's roles this server lacked "
        "were ({option}); {then}"
    ),
    N_(
        "something outside respaldo stopped {program} (signal 9 is most often the "
        "system's out-of-memory killer, which the system's log names): restore "
        "again once that is dealt with"
    ),
    N_("restore again once the cause is dealt with"),
    N_("{program} not found (looked in {searched})"),
    N_("{program} not found"),
    # operations/jobs.py: check_free.
    N_("job {job} ({kind} of {target}) is running"),
    # operations/verify.py: the alert of a verify that found damage.
    N_("verify of repository {repository} found {count} problem: {problem}"),
    N_("verify of repository {repository} found {count} problems: {problem}"),
    N_(
        "the damaged copies are quarantined: run 'respaldo repair' to take good copies from "
        "a mirror, then 'respaldo verify --all'"
    ),
    # Damage in a repository (errors.py's IntegrityError, repository/verify.py's Problem):
    # where it was read, then what was wrong. repository/reader.py, verify.py.
    N_("chunk {chunk} of stream {stream}"),
    N_("chunk list of stream {stream}"),
    N_("chunk {chunk}"),
    # A backup's record that failed verification (operations/repair.py: damage_problem,
    # operations/recorded.py: unconfirmed_problem), as the status and the backup's page
    # say it. Rows stored before they agreed ("1 chunks have") are said by the plural.
    N_(
        "damaged: {count} chunk has no good copy in any repository (respaldo repair, "
        "{when} UTC); it cannot be restored"
    ),
    N_(
        "damaged: {count} chunks have no good copy in any repository (respaldo repair, "
        "{when} UTC); it cannot be restored"
    ),
    # operations/repair.py: repaired_problem, stored by a repair that made a backup whole.
    N_(
        "repaired: every chunk it had lost is in repository {repository} again "
        "('respaldo repair', {when} UTC); it counts as failed verification until a "
        "restore test of it passes"
    ),
    # operations/repair.py: quarantined_problem, stored by a catalog rebuild.
    N_(
        "damaged: {count} chunk it uses was found corrupt and quarantined by 'respaldo "
        "verify' ({when} UTC) and no repository read holds a good copy; it cannot be "
        "restored unless 'respaldo repair' finds one in a mirror"
    ),
    N_(
        "damaged: {count} chunks it uses were found corrupt and quarantined by "
        "'respaldo verify' ({when} UTC) and no repository read holds a good copy; it "
        "cannot be restored unless 'respaldo repair' finds them in a mirror"
    ),
    # operations/repair.py: lost_packs_problem, stored by a backup that found packs lost.
    N_(
        "damaged: {count} chunk it uses was lost with a pack found missing or truncated "
        "({when} UTC) and no repository read holds a good copy; it cannot be restored "
        "unless 'respaldo repair' finds one in a mirror"
    ),
    N_(
        "damaged: {count} chunks it uses were lost with packs found missing or truncated "
        "({when} UTC) and no repository read holds a good copy; it cannot be restored "
        "unless 'respaldo repair' finds them in a mirror"
    ),
    N_(
        "not known-good: references {count} chunk that verification found damaged while "
        "the backup ran; run 'respaldo repair', or take a new backup"
    ),
    N_(
        "not known-good: references {count} chunks that verification found damaged while "
        "the backup ran; run 'respaldo repair', or take a new backup"
    ),
    # operations/lost_packs.py: _copy_problem, a mirror's copy failed for the data it
    # lost there (catalog/copies.py: COPY_LOST_DATA first), and how it was lost.
    N_(
        "lost data: {count} chunk the copy of {backup} uses was {how} in {repository} "
        "({when} UTC) and no other pack there holds a good copy; it cannot be restored from "
        "{repository} until the next copy sends them again"
    ),
    N_(
        "lost data: {count} chunks the copy of {backup} uses were {how} in {repository} "
        "({when} UTC) and no other pack there holds a good copy; it cannot be restored from "
        "{repository} until the next copy sends them again"
    ),
    N_("lost with packs found missing or truncated"),
    N_("found damaged by verify"),
    # repository/pack_check.py: _lost, a backup or copy failed on packs lost (the pack
    # names and "(missing)" as written); a copy's row has " [backup ...]" and its hint
    # after it. Its hint, "; "-joined: what to do about this backup (its "then"), then
    # what it means for the earlier ones (operations/lost_packs.py: mark_lost_packs).
    N_("backup not recorded: 1 pack it references is missing or truncated in {location}: {packs}"),
    N_(
        "backup not recorded: {count} packs it references are missing or truncated in "
        "{location}: {packs}"
    ),
    N_("copy not written: 1 pack it references is missing or truncated in {location}: {packs}"),
    N_(
        "copy not written: {count} packs it references are missing or truncated in "
        "{location}: {packs}"
    ),
    N_(
        "copy not written: 1 pack it references is missing or truncated in {location}: "
        "{packs} [backup {backup}]"
    ),
    N_(
        "copy not written: {count} packs it references are missing or truncated in "
        "{location}: {packs} [backup {backup}]"
    ),
    N_(
        "their {count} chunk copies are quarantined now, so the backup stores that data anew: "
        "run it again"
    ),
    N_(
        "their {count} chunk copies are quarantined now, so the copy sends that data anew: "
        "run it again"
    ),
    N_(
        "recording them as lost failed ({error}): run 'respaldo verify --all', which records "
        "them, then the backup again"
    ),
    N_(
        "any earlier backup that uses them is damaged: 'respaldo verify --all' names them, "
        "'respaldo repair' takes good copies from a mirror"
    ),
    N_(
        "earlier backup {backups}, which uses them and no repository read holds a good copy "
        "of, is marked damaged in the catalog (retention no longer counts it as good): "
        "'respaldo repair' may recover the chunks from a mirror"
    ),
    N_(
        "earlier backups {backups}, which use them and no repository read holds a good copy "
        "of, are marked damaged in the catalog (retention no longer counts them as good): "
        "'respaldo repair' may recover the chunks from a mirror"
    ),
    N_(
        "the copy in {repository} of earlier backup {backups}, which uses them and no other "
        "pack of {repository} holds a good copy of, is marked failed in the catalog "
        "(retention and the status no longer count it as held there): the next copy sends "
        "the lost chunks again"
    ),
    N_(
        "the copies in {repository} of earlier backups {backups}, which use them and no other "
        "pack of {repository} holds a good copy of, are marked failed in the catalog "
        "(retention and the status no longer count them as held there): the next copy sends "
        "the lost chunks again"
    ),
    N_("no earlier backup in the catalog uses them without a good copy elsewhere"),
    N_("no earlier backup in the catalog uses them without a good copy in {repository}"),
    N_(
        "looking for the earlier backups that use them failed ({error}): 'respaldo verify "
        "--all --repository {repository}' names them"
    ),
    N_(
        "looking for the earlier backups that use them failed ({error}): 'respaldo verify "
        "--all' names them, 'respaldo repair' takes good copies from a mirror"
    ),
    N_("chunk is not in the index"),
    N_("chunk is not in the index ({damage})"),
    N_("chunk is damaged ({problem}; quarantined {when} UTC) and no good copy is indexed"),
    N_("pack is missing"),
    N_("pack listed in the index is missing"),
    N_("stream {stream} does not match its checksum ({read} bytes read, {length} expected)"),
    N_("stream {stream} does not match its SHA-256"),
    N_("index and pack header disagree on chunk {chunk}"),
    N_("index file is damaged (the chunks it describes are not sliced)"),
    N_("index file is damaged"),
    N_("manifest is damaged"),
    N_("pack is too short"),
    N_("pack trailer is damaged"),
    N_("pack header is damaged"),
    N_("cannot read pack"),
    # repository/crypto.py: SealError, why a sealed chunk or file did not open.
    N_("authentication failed (data corrupt or tampered with)"),
    N_("chunk content does not match its id"),
    N_("blob is truncated"),
    N_("decompression failed"),
    # repository/reader.py: _integrity's hint.
    N_(
        "run 'respaldo verify' and 'respaldo repair' (which takes good copies from mirrors), "
        "restore from another repository, or run 'respaldo index rebuild' if the index is at "
        "fault"
    ),
    # operations/drill.py: what a restore test's other checks found. Its row counts
    # (operations/restore.py, restore_parallel.py: one per table, "; "-joined).
    N_("restored into {datadir}"),
    N_("{count} table matches the snapshot"),
    N_("{count} tables match the snapshot"),
    # Its roles' script (operations/drill.py: _roles_check).
    N_("{bytes} bytes read whole"),
    N_("not in the encoding their script declares: {error}"),
    N_("the backup recorded no row counts (it predates them): nothing compared"),
    # Each with its number agreeing (counted; rows stored before said "1 rows": the
    # plural says them).
    N_("{table}: {count} row, {recorded} expected"),
    N_("{table}: {count} rows, {recorded} expected"),
    N_("{table}: missing rows, {recorded} expected"),
    N_("{table}: the backup recorded no row count for it"),
    N_("and {count} more"),
    N_("restored row counts differ from the backup's: {differences}"),
    # A logical backup's warning when its role could not read pg_authid
    # (operations/backup.py: ROLES_WITHOUT_PASSWORDS, on the backup's page).
    N_(
        "role passwords were not backed up (the backup's role cannot read pg_authid, which "
        "needs a superuser): a restore --globals creates login roles without passwords, to be "
        "set again before the applications connect"
    ),
    # Its large objects (operations/restore.py, postgres/largeobjects.py).
    # Each with its singular (counted; rows stored before said "1 large objects").
    N_("{count} large object, {bytes} bytes, matches the snapshot"),
    N_("{count} large objects, {bytes} bytes, match the snapshot"),
    N_(
        "the backup holds no record of its large objects that this respaldo reads (it "
        "predates the record, or a newer respaldo wrote it): they were not checked"
    ),
    N_("{count} large object, {expected} expected"),
    N_("{count} large objects, {expected} expected"),
    N_("{bytes} bytes of large objects, {expected} expected"),
    N_("the large objects' contents differ (digest {digest}, {expected} expected)"),
    N_("restored large objects differ from the backup's: {differences}"),
    # Its validation queries (postgres/queries.py: what failed to run; the engine's words
    # follow).
    N_(
        "query failed on {target}: it is more than one statement; a validation query must "
        "be one statement (one SELECT), which runs read-only and within the time limit"
    ),
    N_("query failed on {target}: {error}"),
    # Its WAL archive (operations/wal_coverage.py: archive_check, archived_after).
    N_("continuous from the backup's end to {lsn}"),
    N_("continuous from the backup's end to {lsn}, 1 archived segment read whole"),
    N_("continuous from the backup's end to {lsn}, {count} archived segments read whole"),
    N_("WAL segment {segment} cannot be read ({error}): recovery cannot go past {lsn}"),
    N_(
        "WAL segment {segment} is missing from the archive (archived again from {resumes} "
        "on): recovery cannot go past {lsn}"
    ),
    N_("the backup's manifest does not say where its WAL ends: the archive was not checked"),
    N_("could not read the archived WAL's names and history to check it for gaps: {error}"),
    # ... and two a restore test recorded before recovery followed the newest timeline
    # that descends from the backup rather than give up on checking (kept for its rows).
    N_(
        "recovery follows timeline {newest}, which does not descend from the backup's "
        "timeline {timeline}: the archived WAL was not checked for gaps"
    ),
    N_(
        "timeline {timeline} branched off before the backup's end: recovery from it cannot "
        "follow the newest timeline, and the archived WAL was not checked for gaps"
    ),
    # A physical backup's unlogged tables, given back empty (drill.py: _unlogged_check).
    N_(
        "1 unlogged table came back empty, as from every physical backup: {tables} "
        "(PostgreSQL writes no WAL for them and a physical backup holds none of their rows; "
        "a logical backup holds them)"
    ),
    N_(
        "{count} unlogged tables came back empty, as from every physical backup: {tables} "
        "(PostgreSQL writes no WAL for them and a physical backup holds none of their rows; "
        "a logical backup holds them)"
    ),
    N_(
        "1 unlogged sequence came back reset to its start, as from every physical backup: "
        "{sequences} (a table numbered from one gets numbers its rows hold; set each with "
        "setval to its table's highest number after a physical restore, or make it logged)"
    ),
    N_(
        "{count} unlogged sequences came back reset to their start, as from every physical "
        "backup: {sequences} (a table numbered from one gets numbers its rows hold; set each "
        "with setval to its table's highest number after a physical restore, or make it "
        "logged)"
    ),
    N_("not listed ({error}); every unlogged table came back empty, as from every physical backup"),
    # A files backup's contents (drill.py: _files_contents).
    # Each count a phrase of its own (operations/drill.py: _files_contents), which agrees
    # with its noun ("1 links" before); rows stored before match these too.
    N_("{files}, {directories}, {links}, {bytes} bytes (the backup recorded no counts to compare)"),
    N_("{files}, {directories}, {links}, {bytes} bytes, as backed up"),
    N_("{count} file"),
    N_("{count} files"),
    N_("{count} directory"),
    N_("{count} directories"),
    N_("{count} link"),
    N_("{count} links"),
    N_("files: {count} restored, {expected} backed up"),
    N_("directories: {count} restored, {expected} backed up"),
    N_("symlinks: {count} restored, {expected} backed up"),
    N_("file_bytes: {count} restored, {expected} backed up"),
    # A drill that read chunks from a mirror (drill.py: _copies); the chunks as written.
    N_(
        "1 chunk missing or damaged in the repository read first came from another: "
        "{chunks}; run 'respaldo verify --all' and 'respaldo repair'"
    ),
    N_(
        "{count} chunks missing or damaged in the repository read first came from another: "
        "{chunks}; run 'respaldo verify --all' and 'respaldo repair'"
    ),
    # ... and each chunk so read (operations/restore.py: StreamReader's note, "; "-joined
    # with the next).
    N_("chunk {chunk}: {problem} in {location} ({object})"),
    N_("read from {repository}"),
    # drill.py: _alert, a failed restore test's alert (its error and hint reach the
    # alert as text: the alerts scrub them). Its failed checks as the run's error reads.
    N_("restore test of backup {backup} failed ({failures})"),
    N_("restore test of backup {backup} failed"),
    N_(
        "'respaldo drill {backup}' runs it again and shows every check; until a "
        "restore test passes, this backup may not restore"
    ),
    # notify/send.py: why an alert did not reach a target (the notifications' error). What
    # apprise and the service said stays as written.
    N_("notification target {target}: {reason}"),
    N_("the service refused the message"),
    N_("apprise cannot use its URL (refused)"),
    N_("apprise cannot use its URL ({said})"),
    N_("environment variable {variable} (url_env) is not set"),
    N_("environment variable {variable} (secret_env) is not set"),
    # The audit log's details (operations/admin.py, auth.py, users.py, api_tokens.py,
    # job_audit.py, api/security.py, web/pages.py, cli/snapshot_cmd.py): what was
    # refused and why, what a change started ("; job N" after it), a login's failure.
    N_("needs {permission}"),
    N_("a snapshot is pinned: needs {permission}"),
    N_("logical backup of {database}, job {job}"),
    N_("physical backup of {database}, job {job}"),
    # As rows stored before 2026-12-07 say it: said as the two above (_SAID_NOW).
    N_("full backup of {database}, job {job}"),
    N_("incremental backup of {database}, job {job}"),
    N_("files backup of {database}, job {job}"),
    N_("snapshot backup of {database}, job {job}"),
    N_(
        "restore of backup {backup} over database {database} started: the application is "
        "stopped while the database is swapped"
    ),
    N_("restore of backup {backup} into the new database {database} started"),
    N_("restore test of backup {backup} started"),
    N_("restore test of the newest backup of {database} ({backup}) started"),
    # ... of a database backed up both ways: one backup of each kind (background.py).
    N_("restore test of the newest backups of {database}, one of each kind ({backups}) started"),
    N_("job {job}"),
    # A database's restore test that tested a backup of each kind (job_audit, drill.py).
    N_("restore tests of backups {backups} passed"),
    N_("manifests deleted from none"),
    N_("manifests deleted from {repositories}"),
    N_("{kind} of {target}: {status}"),
    # cli/snapshot_cmd.py's audit detail; a row stored before it agreed ("1 backups
    # pinned") is said by the second.
    N_("{count} backup pinned, {failed} failed"),
    N_("{count} backups pinned, {failed} failed"),
    N_("role {role}"),
    N_("signed in to the page with {method}"),
    N_("too many failed logins"),
    N_("wrong user name or password"),
    N_("the refresh token is not valid (unknown, or already used)"),
    N_("the refresh token was used a moment ago by another request"),
    N_("the session was logged out"),
    N_("the session has expired"),
    N_("user {user} was removed or disabled"),
    N_("the bearer token is malformed"),
    N_("the token's signature does not verify"),
    N_("the bearer token is not valid: {error}"),
    N_("the bearer token is not an access token"),
    N_("the session of this token was logged out"),
    N_("the session of this token has expired"),
    N_("the access token has expired"),
    N_("the API token is not valid"),
    N_("the API token {token} was revoked"),
    N_("the ERP token has expired"),
    N_("the ERP token is not valid: {error}"),
    N_("the ERP token has no {claim} claim"),
    # ... and a change refused (catalog/access.py, catalog/jobs.py, operations/users.py).
    N_("user {user} already exists"),
    N_("no user {user}"),
    N_("an API token named {token} already exists"),
    N_("no API token named {token}"),
    N_("{user} is not a valid user name"),
    N_("the password is shorter than {count} characters"),
    N_("no job {job}"),
    N_("job {job} has already ended ({status})"),
    # A files backup's warnings, kept in its manifest (files/tree.py,
    # operations/files_backup.py; the backup's page lists them), and the paths that
    # failed it (its job's error; the OS's words after them stay as written).
    N_("{path} vanished before it was read"),
    N_("{path} vanished before it was listed"),
    N_("{path} was replaced before it was read"),
    N_("{path} grew while read: cut at {bytes} bytes"),
    N_("{path}: special file, skipped"),
    N_(
        "{path} is a link to the directory {target}, outside the file set: its files are not "
        "backed up"
    ),
    N_("{path}: respaldo's own repository {repository}, left out"),
    N_("{path}: respaldo's own cache, left out"),
    N_("{path}: respaldo's own catalog, left out"),
    N_("{path}: cannot list: {error}"),
    N_("{path}: cannot read: {error}"),
    N_("{path}: changed while read, {count} times (the backup holds a torn copy)"),
    N_("file set {name}: {count} path could not be backed up whole: {paths}"),
    N_("file set {name}: {count} paths could not be backed up whole: {paths}"),
    N_(
        "give respaldo's user read access to them, exclude them (exclude = [...] in the file "
        "set), or back up while nothing rewrites them; this backup is recorded as failed"
    ),
    N_(
        "file set {name}: {paths} is an empty directory, where backup {backup} found a file "
        "system mounted: its share or disk is not mounted (a backup now would hold none of "
        "its files)"
    ),
    N_(
        "mount it and back up again; if it was emptied for good, remove the empty directory "
        "(or put its files there) and back up again"
    ),
    # What prune could not finish in a repository (operations/prune.py: its outcome's
    # error, "; "-joined, and its alert's hint), and the lock in its way
    # (repository/locks.py: _locked).
    N_("garbage collection"),
    N_("WAL retention"),
    N_("cannot open"),
    N_(
        "garbage collection found {count} damaged chunk copy that kept backups reference "
        "(quarantined; no backup deduplicates against it now): run 'respaldo verify --all "
        "--repository {repository}', which marks the backups that need it, then 'respaldo "
        "repair {repository}'"
    ),
    N_(
        "garbage collection found {count} damaged chunk copies that kept backups reference "
        "(quarantined; no backup deduplicates against them now): run 'respaldo verify --all "
        "--repository {repository}', which marks the backups that need them, then 'respaldo "
        "repair {repository}'"
    ),
    N_(
        "{count} chunk that kept backups reference has only damaged copies (quarantined): "
        "those backups cannot be restored from {repository} until 'respaldo repair "
        "{repository}' copies it from another repository"
    ),
    N_(
        "{count} chunks that kept backups reference have only damaged copies (quarantined): "
        "those backups cannot be restored from {repository} until 'respaldo repair "
        "{repository}' copies them from another repository"
    ),
    N_(
        "the bucket takes backups away behind respaldo's back: {rules}; every backup "
        "references chunks stored on earlier days, and those would become unrestorable"
    ),
    N_(
        "kept backups are damaged: run 'respaldo verify --all --repository {repository}', "
        "then 'respaldo repair {repository}'"
    ),
    N_(
        "run 'respaldo repair {repository}', then 'respaldo verify --all --repository {repository}'"
    ),
    N_("run 'respaldo prune' again; it finishes what is left"),
    # operations/prune.py: days_said, a number of days in the clock refusals below (rows
    # stored before it said "{days} days after" are matched by them too).
    N_("{count} day"),
    N_("{count} days"),
    # operations/prune.py: CLOCK_AHEAD, the refusal of a prune whose clock is far past the
    # newest backup.
    N_(
        "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
        "newest backup completed ({last} UTC, more than [retention] clock_check_days = "
        "{limit}), and by it {count} backup would expire by age that had not expired then "
        "(e.g. {backup}): the clock is ahead, or no backup has completed since"
    ),
    N_(
        "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
        "newest backup completed ({last} UTC, more than [retention] clock_check_days = "
        "{limit}), and by it {count} backups would expire by age that had not expired then "
        "(e.g. {backup}): the clock is ahead, or no backup has completed since"
    ),
    # operations/prune.py: CLOCK_AHEAD_RPO, the same when [rpo] allows an older backup.
    N_(
        "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
        "newest backup completed ({last} UTC, more than {limit} days, the longest backup age "
        "[rpo] allows: {setting}), and by it {count} backup would expire by age that had not "
        "expired then (e.g. {backup}): the clock is ahead, or no backup has completed since"
    ),
    N_(
        "prune refused, nothing was deleted: the clock says {clock} UTC, {days} after the "
        "newest backup completed ({last} UTC, more than {limit} days, the longest backup age "
        "[rpo] allows: {setting}), and by it {count} backups would expire by age that had not "
        "expired then (e.g. {backup}): the clock is ahead, or no backup has completed since"
    ),
    # operations/prune.py: CLOCK_JUMPED, the same when the newest backup completed after a
    # silence (the evidence is then the backup before it).
    N_(
        "prune refused, nothing was deleted: respaldo recorded nothing for {gap} before "
        "{resumed} UTC (more than {limit}, {setting}): the clock jumped ahead, or "
        "respaldo was stopped that long; by the clock ({clock} UTC, {days} after the "
        "newest backup before that silence, {last} UTC) {count} backup would expire by age "
        "that had not expired then (e.g. {backup})"
    ),
    N_(
        "prune refused, nothing was deleted: respaldo recorded nothing for {gap} before "
        "{resumed} UTC (more than {limit}, {setting}): the clock jumped ahead, or "
        "respaldo was stopped that long; by the clock ({clock} UTC, {days} after the "
        "newest backup before that silence, {last} UTC) {count} backups would expire by age "
        "that had not expired then (e.g. {backup})"
    ),
    N_(
        "the next prune tries again; if it keeps failing, check the bucket's permissions "
        "(s3:PutObjectRetention) and Object Lock settings"
    ),
    # storage/lifecycle.py: HAZARD_HINT, its list of names as it joins them.
    N_(
        "respaldo deletes expired backups itself (prune): remove the rule, or limit it to "
        "prefixes the repository does not write (below its own prefix it writes only "
        "config, keys/, packs/, index/, manifests/, locks/, quarantine/, wal/, clusters/) or "
        "to old versions (NoncurrentVersionExpiration, see docs/configuration.md), or use "
        "another bucket or prefix"
    ),
    # Without the hint first: with it, the hint's own parenthesis ("(at once on the same
    # host)") keeps the holders from taking it in.
    N_("the repository is in use: {holders}"),
    N_("the repository is in use: {holders} ({hint})"),
    N_("shared lock for {purpose} (pid {pid} on {host}, refreshed {seconds} s ago)"),
    N_("exclusive lock for {purpose} (pid {pid} on {host}, refreshed {seconds} s ago)"),
    N_(
        "garbage collection waits for running backups; run prune again when they end; a "
        "lock whose holder died is ignored after {stale} (at once on the same host)"
    ),
    # operations/wal_coverage.py: a --target-time refused before anything is written
    # (a failed restore job's error and hint, in its alert and on the page).
    N_(
        "the recovery target {target} is in the future: this machine's clock "
        "says {clock} (the server's was {ahead} ahead of respaldo's at the "
        "backup), and no transaction has committed that late; recovery would "
        "replay all the archived WAL and stop with an error"
    ),
    N_(
        "the recovery target {target} is in the future: this machine's clock "
        "says {clock}, and no transaction has committed that late; recovery "
        "would replay all the archived WAL and stop with an error"
    ),
    N_(
        "check the target's date and UTC offset; to recover all the archived "
        "WAL, give no target; if this machine's clock is behind the server's, "
        "set it right"
    ),
    N_(
        "the recovery target {target} is at the last transaction the archived WAL "
        "holds: its newest commit after backup {backup} is at {commit} (archived up to "
        "{lsn}); recovery stops only at a commit later than the target, so it would "
        "replay all of it and stop with an error (recovery ended before configured "
        "recovery target was reached)"
    ),
    N_(
        "the recovery target {target} is after the last transaction the archived WAL "
        "holds: its newest commit after backup {backup} is at {commit} (archived up to "
        "{lsn}); recovery stops only at a commit later than the target, so it would "
        "replay all of it and stop with an error (recovery ended before configured "
        "recovery target was reached)"
    ),
    N_(
        "the recovery target {target} cannot be reached: the archived WAL after backup {backup} "
        "(up to {lsn}) holds no commit after the backup's end, and recovery to a target time stops"
        " only before a commit later than the target, so it would stop with an error (recovery "
        "ended before configured recovery target was reached)"
    ),
    N_(
        "recover to the backup's end ({immediate}) or give no target: with no commit archived "
        "after the backup both restore the same data; if later commits are still in the server's "
        "pg_wal, SELECT pg_switch_wal() on the server, wait until its segment is archived "
        "('respaldo check' tells) and restore again"
    ),
    N_(
        "the recovery target {target} is before backup {backup} started ({began}): "
        "recovery cannot stop before a backup's end"
    ),
    N_(
        "choose a backup that ended before the target time ('respaldo list'), or "
        "recover to this backup's end ({immediate})"
    ),
    # operations/wal_coverage.py: a --target-time's warnings (the restore goes on).
    N_(
        "{problem}: whether recovery reaches the recovery target {target} is not "
        "known before the server replays it"
    ),
    N_("archived WAL segment {segment} could not be read: it is missing"),
    N_("archived WAL segment {segment} could not be read ({error})"),
    N_(
        "the recovery target {target} is while backup {backup} ran ({began} to "
        "{ended} at the latest): if a transaction committed after it and before the "
        "backup's end, PostgreSQL refuses it (requested recovery stop point is "
        "before consistent recovery point) and an earlier backup is needed"
    ),
    N_(
        "the recovery target {target} is while backup {backup} ran (respaldo started "
        "it at {began}; the server's start time is not known: {note}): commits "
        "between the target and the backup's checkpoint are in its files and are not "
        "replayed, so the restored data may include commits made after the target "
        "without an error; for a target this early restore an earlier backup, or "
        "recover to the backup's end (immediate)"
    ),
    N_("not recorded in its manifest"),
    N_("its backup_label's START TIME {label} names no single time zone"),
    N_(
        "give a target before {commit}, or no target to recover all the archived WAL "
        "(that commit included); if later commits are still in the server's pg_wal, "
        "SELECT pg_switch_wal() on the server and wait until its segment is archived "
        "('respaldo check' tells)"
    ),
)

_WHERE = (
    (
        N_("{error} [backup {backup}] [object {object}]"),
        r" \[backup (?P<backup>[^\]\s]+)\] \[object (?P<object>[^\]\s]+)\]",
    ),
    (
        N_("{error} [backup {backup} object {object}]"),
        r" \[backup (?P<backup>[^\]\s]+) object (?P<object>[^\]\s]+)\]",
    ),
    (N_("{error} [backup {backup}]"), r" \[backup (?P<backup>[^\]\s]+)\]"),
    (N_("{error} [object {object}]"), r" \[object (?P<object>[^\]\s]+)\]"),
    (
        N_("{error} (and {more} more: 'respaldo verify' lists them)"),
        r" \(and (?P<more>\d+) more: 'respaldo verify' lists them\)",
    ),
    # The paths that failed a files backup, the first few (operations/files_backup.py).
    (N_("{error} (and {more} more)"), r" \(and (?P<more>\d+) more\)"),
)
"""What follows an error, at its end: where the damage is (errors.py's IntegrityError,
repository/verify.py's Problem), how many more a verify found (operations/verify.py), or
a files backup could not read.
Looked for in the last :data:`_TAIL` characters only: a pattern that began with the
error would be tried at every ": " of a long one."""

_TAIL = 400

# What a value may be, where it is not any text: a program's name, a number. Without
# it "{program} not found" would claim an engine's 'role "x" not found'.
_VALUES = {
    "program": r"[\w.-]+",
    "code": r"-?\d+",
    "signal": r"\d+",
    "job": r"\d+",
    "pid": r"\d+",
    "count": r"\d+",
    # The lapsed lease's numbers and time (catalog/jobs.py: _silence). Its phrase begins
    # with a value, so it is tried at every ": " of a long recorded error: with three
    # values any text, each try backtracked over the rest once per " (" (a 9 KB error
    # of 200 parts: 2.6 s to render; hours for 20 KB).
    "silent": r"-?\d+",
    "now": r"[0-9TZ:+.-]+",
    "lease": r"[0-9.e+-]+",
    # A repository's damage: a chunk id's first 16 hex digits, a stream's name as repr()
    # quotes it, the quarantine's minute.
    "chunk": r"[0-9a-f]+",
    "stream": r"'[^']*'",
    "restored": r"\d+",
    "seconds": r"[0-9.]+",
    "read": r"\d+",
    "length": r"\d+",
    "when": r"[0-9: -]+",
    # A restore test's other checks: numbers, a WAL position, a segment's name.
    "recorded": r"\d+",
    "bytes": r"\d+",
    "files": r"\d+ files?",
    "directories": r"\d+ director(?:y|ies)",
    "links": r"\d+ links?",
    "digest": r"[0-9a-f]+",
    "lsn": r"[0-9A-F]+/[0-9A-F]+",
    "segment": r"[0-9A-F]{24}",
    "newest": r"\d+",
    "timeline": r"\d+",
    # The audit log's: a permission ("admin:approve"), a backup's id, counts, a name as
    # repr() quotes it.
    "permission": r"[\w:]+",
    "backup": r"[^\s();]+",
    "failed": r"\d+",
    "user": r"'[^']*'",
    "token": r"'[^']*'",
    "claim": r"'[^']*'",
    "variable": r"\w+",
    # A lock's holders ("; "-joined, each with its "(pid ...)"), before the hint in
    # parentheses: as far as it goes, up to the parenthesis that opens the hint.
    "holders": r"(?:[^()]|\([^()]*\))+",
    "stale": r"[0-9:]+(?: days?, [0-9:]+)?",
}

_WORDS = {
    # A job's kind and status (domain.py: JobKind, JobStatus), as a cancelled job's audit
    # entry names them ("backup of erp: cancelled") and a busy target's error.
    "kind": {
        "backup": N_("backup"),
        "restore": N_("restore"),
        "drill": N_("restore test"),
        "prune": N_("prune"),
        "verify": N_("verify"),
        "report": N_("report"),
        "wal_copy": N_("wal_copy"),
    },
    "status": {
        "queued": N_("queued"),
        "running": N_("running"),
        "completed": N_("completed"),
        "failed": N_("failed"),
        "cancelled": N_("cancelled"),
        "skipped": N_("skipped"),
    },
    # A user's or token's role (domain.py: Role), how a person signed in (AuthMethod).
    "role": {"viewer": N_("viewer"), "operator": N_("operator"), "admin": N_("admin")},
    "method": {
        "password": N_("a password"),
        "api_token": N_("an API token"),
        "erp_jwt": N_("the ERP's token"),
    },
}
"""Values that are respaldo's own words, said in the page's language; only these are
matched where a phrase has such a value (any other text is not that phrase)."""

_OPENING = {
    # An unreadable archived segment, where it opens a --target-time's warning: its own
    # words, so that the phrase is not tried at every ": " of every text.
    "problem": r"archived WAL segment [0-9A-F]{24} could not be read(?:: it is missing| \(.*?\))",
    # The lapsed lease's last renewal, where it opens its phrase ("{since} ({silent} s
    # before ..."): an ISO time. As any text it was tried against every text before a
    # ": " of a long error, scanning the whole of it each time: 2.8 s to render a 64 KB
    # error of pg_restore's with a JSON body, 9 s for one of 16,000 short parts. Where
    # it ends a phrase ("... no sign of life since {since}") it is that whole phrase.
    "since": r"[0-9TZ:+.-]+",
    # A table's name as the row counts key it ("public.facturas"), before its ": ": up
    # to the first colon only, else each try would scan the rest of a long error.
    "table": r"[^:;]+",
    # A file set's path (absolute: config refuses others), before its ": " or its words:
    # up to the first colon only, as a table's.
    "path": r"/[^:;]*",
}
"""What a value may be where it opens a phrase, if not as in :data:`_VALUES`."""


@cache
def _suffixes() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(regex + r"\Z"), message) for message, regex in _WHERE]


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    found = []
    for message in _PHRASES:
        pieces = re.split(r"\{(\w+)\}", message)
        named: set[str] = set()
        regex = ""
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                regex += re.escape(piece)
            elif piece in named:
                # Said twice ("repair {repository}, then verify ... {repository}"): the
                # same text both times.
                regex += f"(?P={piece})"
            else:
                named.add(piece)
                opens = i == 1 and not pieces[0]
                regex += f"(?P<{piece}>{_value_pattern(piece, opens=opens)})"
        found.append((re.compile(regex, re.S), message))
    return found


@cache
def _starting(first: str) -> list[tuple[re.Pattern[str], str]]:
    """The patterns that may match a text beginning with ``first`` (a character): those
    whose message begins with it, and those that open with a value; in table order.
    A long error is tried at each of its ": " (its frames): with every pattern each
    time, 128 phrases cost 2.3 times what 53 did on a 42 KB error of pg_restore."""
    return [
        (pattern, message)
        for pattern, message in _patterns()
        if message.startswith("{") or message.startswith(first)
    ]


def _value_pattern(name: str, *, opens: bool) -> str:
    if opens and name in _OPENING:
        return _OPENING[name]
    if name in _WORDS:
        return "|".join(re.escape(word) for word in _WORDS[name])
    return _VALUES.get(name, ".+?")


def reason(text: str | None, gettext: Gettext, show: Show = str) -> str:
    """``text`` (a stored reason) in the language of ``gettext``; the quantities of a
    phrase written by ``show``."""
    if not text:
        return ""
    if isinstance(text, Phrase):
        return _said(text, gettext, show)
    if text in _CHECKS:
        return gettext(_CHECKS[text])
    return _recognised(text, gettext)


def _said(phrase: Phrase, gettext: Gettext, show: Show) -> str:
    values = {name: _value(value, gettext, show) for name, value in phrase.values.items()}
    try:
        return gettext(phrase.message).format(**values)
    except (KeyError, IndexError, ValueError):
        # A translation that names a value its message does not have (the catalog's
        # test refuses one; this keeps the page up): the message as written.
        return phrase.message.format(**values)


def _value(value: str, gettext: Gettext, show: Show) -> str:
    if isinstance(value, Phrase):
        return _said(value, gettext, show)
    if isinstance(value, Quantity):
        return show(value)
    return _recorded(value, gettext)


def _recorded(value: str, gettext: Gettext) -> str:
    # Text put into a phrase: a recorded reason (a failed job's error; a restore test's,
    # which names its failed check) said in the page's language when respaldo worded it,
    # else (a name, an engine's error) as written. Not the bare check names: a database
    # may well be called "restore".
    checked = _failed_check(value, gettext)
    return checked if checked is not None else _recognised(value, gettext)


def _recognised(text: str, gettext: Gettext) -> str:
    """``text`` translated when one phrase matches it whole, or when one matches what
    comes before a ": " (an error's frame: "pg_dump exited with status 1: <its words>",
    the rest then recognised in turn), or when it ends with where a damage is (what
    comes before it recognised in turn); else as written."""
    # The frames are said one after the other in a loop, not by recursion: an error of
    # thousands of frames ("cancelled: cancelled: …") would pass Python's recursion limit
    # and take the whole page down with it.
    frames: list[str] = []
    while True:
        said = _located(text, gettext)
        if said is None:
            # A list before a phrase: a phrase's last value, any text, would take in the
            # parts after its own ("2 large objects, {expected} expected" the rest).
            said = _listed(text, gettext)
        if said is None:
            said = _whole(text, gettext)
        if said is not None:
            return "".join(frames) + said
        at = text.find(": ")
        while at > 0:
            framed = _whole(text, gettext, at)
            if framed is not None:
                frames.append(f"{framed}: ")
                text = text[at + 2 :]
                break
            at = text.find(": ", at + 2)
        else:
            return "".join(frames) + text


def _located(text: str, gettext: Gettext) -> str | None:
    if not text.endswith(("]", ")")):
        return None
    start = max(0, len(text) - _TAIL)
    for pattern, message in _suffixes():
        matched = pattern.search(text, start)
        if matched is not None and matched.start() > 0:
            error = _recognised(text[: matched.start()], gettext)
            return gettext(message).format(error=error, **matched.groupdict())
    return None


_SAID_NOW = {
    "full backup of {database}, job {job}": "logical backup of {database}, job {job}",
    "incremental backup of {database}, job {job}": "physical backup of {database}, job {job}",
}
"""Phrases of stored rows that respaldo words differently now, and the message they are
said by (in English too: the page's audit log says "logical backup of erp, job 12" for a
row stored as "full backup of erp, job 12")."""


def _whole(text: str, gettext: Gettext, end: int | None = None, start: int = 0) -> str | None:
    """``text`` (from ``start`` up to ``end``: no copy of each frame of a long error) said
    by the phrase that matches it whole; None if none does."""
    for pattern, message in _starting(text[start : start + 1]):
        matched = pattern.fullmatch(text, start, len(text) if end is None else end)
        if matched is not None:
            parts = {
                name: _word(name, part, gettext) if name in _WORDS else _part(part, gettext)
                for name, part in matched.groupdict().items()
            }
            return gettext(_SAID_NOW.get(message, message)).format(**parts)
    return None


def _word(name: str, word: str, gettext: Gettext) -> str:
    # Untranslated (English), the word as stored: "drill", not the message it is said by.
    message = _WORDS[name][word]
    said = gettext(message)
    return word if said == message else said


_LISTED = "; "


def _listed(text: str, gettext: Gettext) -> str | None:
    """``text`` as a list that respaldo joined with "; " (a restore test's row counts,
    one per table; "...; job 12" after what a change started; a failed restore test's
    checks), said part by part when a phrase matches each part whole, or it is a failed
    check; None when any part is not one of respaldo's (an engine's error may have "; "
    in it too: it stays as written)."""
    end = text.find(_LISTED)
    if end < 0:
        return None
    said: list[str] = []
    start = 0
    # Part by part, each matched in place: a long error whose first part is not a
    # phrase costs one try, not a copy of every part (this runs at each of its frames).
    while True:
        # A failed check, "NAME: DETAIL" (a restore test's alert lists each), before a
        # phrase: "validation: {name}" would take the detail for the name. Its detail has
        # no "; " (it ends the part), so this goes no deeper than once.
        one = _failed_check(text[start:end], gettext)
        if one is None:
            one = _whole(text, gettext, end, start)
        if one is None:
            return None
        said.append(one)
        if end == len(text):
            return _LISTED.join(said)
        start = end + len(_LISTED)
        end = text.find(_LISTED, start)
        if end < 0:
            end = len(text)


def failed_check(text: str | None, gettext: Gettext) -> str:
    """A restore test's error as its row records it (its first failed check, "NAME:
    DETAIL": drill.py's _first_failure) in the language of ``gettext``: the check's name,
    then its detail as :func:`reason` says it."""
    if not text:
        return ""
    checked = _failed_check(text, gettext)
    return checked if checked is not None else reason(text, gettext)


def _part(value: str, gettext: Gettext) -> str:
    checked = _failed_check(value, gettext)
    return checked if checked is not None else reason(value, gettext)


def _failed_check(value: str, gettext: Gettext) -> str | None:
    # A failed check reads "NAME: DETAIL" (drill.py's _first_failure): the name of a
    # check is respaldo's, the detail may be anyone's.
    for name in sorted(_CHECKS, key=len, reverse=True):
        if value.startswith(f"{name}: "):
            return f"{gettext(_CHECKS[name])}: {reason(value[len(name) + 2 :], gettext)}"
    if value.startswith("validation: ") and ": " in value[len("validation: ") :]:
        name, detail = value[len("validation: ") :].split(": ", 1)
        check = gettext(N_("validation: {name}")).format(name=name)
        return f"{check}: {reason(detail, gettext)}"
    return None
