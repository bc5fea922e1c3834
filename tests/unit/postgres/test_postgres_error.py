"""What a failed PostgreSQL program's error says: the end of its stderr, and the server's
reason when the lines after it (QUERY:, CONTEXT:, Command was:) pushed it out."""

from __future__ import annotations

from respaldo.errors import PostgresError

# pg_restore's stderr for an index whose SQL function names a table without its schema
# (pg_restore 15, the failing statement's report as libpq prints it).
_INDEX_ON_A_FUNCTION = """\
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 4203; 1259 16763 INDEX ped_tarifa postgres
pg_restore: error: could not execute query: ERROR:  relation "tarifas" does not exist
LINE 1:  SELECT v FROM tarifas WHERE k = $1
                       ^
QUERY:   SELECT v FROM tarifas WHERE k = $1
CONTEXT:  SQL function "tarifa" during inlining
Command was: CREATE INDEX ped_tarifa ON public.ped USING btree (public.tarifa(k));
"""

_WORKER_DIED = _INDEX_ON_A_FUNCTION + "pg_restore: error: a worker process died unexpectedly\n"


def test_the_servers_reason_comes_before_the_last_lines() -> None:
    error = PostgresError("pg_restore", 1, _INDEX_ON_A_FUNCTION)
    assert error.message == (
        "pg_restore exited with status 1: pg_restore: error: could not execute query: ERROR:  "
        'relation "tarifas" does not exist; QUERY:   SELECT v FROM tarifas WHERE k = $1; '
        'CONTEXT:  SQL function "tarifa" during inlining; '
        "Command was: CREATE INDEX ped_tarifa ON public.ped USING btree (public.tarifa(k));"
    )


def test_a_parallel_restores_reason_is_kept_behind_its_workers_death() -> None:
    error = PostgresError("pg_restore", 1, _WORKER_DIED)
    assert 'relation "tarifas" does not exist' in error.message
    assert error.message.endswith("a worker process died unexpectedly")


def test_a_name_missing_in_a_functions_body_is_explained() -> None:
    error = PostgresError("pg_restore", 1, _INDEX_ON_A_FUNCTION)
    assert "empty search_path" in error.hint
    assert "SET search_path" in error.hint


def test_a_reason_among_the_last_lines_is_not_repeated() -> None:
    stderr = "pg_dump: error: query failed: ERROR:  permission denied for table x\n"
    error = PostgresError("pg_dump", 1, stderr)
    assert error.message == (
        "pg_dump exited with status 1: pg_dump: error: query failed: "
        "ERROR:  permission denied for table x"
    )
    assert not error.hint


def test_a_missing_name_outside_a_function_gets_no_search_path_hint() -> None:
    stderr = (
        'pg_restore: error: could not execute query: ERROR:  relation "x" does not exist\n'
        "Command was: ALTER TABLE public.x OWNER TO a;\n"
    )
    assert not PostgresError("pg_restore", 1, stderr).hint


def test_a_server_out_of_disk_gets_a_hint_about_the_servers_disk() -> None:
    # pg_restore into a staging database that fills the server's disk.
    stderr = (
        'pg_restore: error: COPY failed for table "obras": ERROR:  could not extend file '
        '"base/16384/16999": No space left on device\n'
        "HINT:  Check free disk space.\n"
        "CONTEXT:  COPY obras, line 1200\n"
    )
    error = PostgresError("pg_restore", 1, stderr)
    assert error.hint is not None
    assert str(error.hint).startswith("the PostgreSQL server's disk is full")


def test_a_client_out_of_disk_gets_a_hint_about_dump_spool_dir() -> None:
    stderr = "pg_dump: error: could not write to output file: No space left on device\n"
    error = PostgresError("pg_dump", 1, stderr)
    assert error.hint is not None
    assert str(error.hint).startswith("the disk pg_dump writes its files to is full")
    assert "dump_spool_dir" in str(error.hint)
