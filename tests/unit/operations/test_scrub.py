"""The scrubber removes the secrets the process has loaded, not only those written in
the settings: the contents of every secret file and secret environment variable, as
written and URL-quoted, and the log of the service carries none of them."""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from respaldo.config import Settings
from respaldo.operations import scrub as scrub_module
from respaldo.operations.scrub import REDACTED, Scrubber, scrub_logs

pytestmark = pytest.mark.unit

# What each file or variable holds; varied, with characters that URL-quoting changes.
FILES = {
    "passphrase": "pass/phrase from a file+1",
    "db.password": "db p@ss from password_file",
    "s3.key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "jwt.key": "k3-Vd9sQx7LmR2pW8zT5nB1yH6cJ4gF0aE-jwt",
    "hook.secret": "hook-token-from-secret_file",
    "hook.url": "json://ops:url-file-pw@hooks.internal/alerts",
}
ENVIRONMENT = {
    "RESPALDO_TEST_HOOK_SECRET": "token from secret_env",
    "RESPALDO_TEST_HOOK_URL": "json://ops:url-env-pw@hooks.internal/env",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-from-the-environment",
}


def secret_file(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text(FILES[name] + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)

    def f(name: str) -> Path:
        return secret_file(tmp_path, name)

    return Settings(
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        cache_dir=tmp_path / "cache",
        passphrase_file=f("passphrase"),
        databases=[
            {"name": "erp", "dsn": "postgresql://erp@db/erp", "password_file": f("db.password")}
        ],
        repositories=[
            {
                "name": "s3",
                "url": "s3://bucket/prefix",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key_file": f("s3.key"),
            }
        ],
        server={"jwt_secret_file": f("jwt.key")},
        notifications={
            "targets": [
                {
                    "name": "a",
                    "url": "json://hooks.internal/{secret}",
                    "secret_file": f("hook.secret"),
                },
                {
                    "name": "b",
                    "url": "json://hooks.internal/x/{secret}",
                    "secret_env": "RESPALDO_TEST_HOOK_SECRET",
                },
                {"name": "c", "url_file": f("hook.url")},
                {"name": "d", "url_env": "RESPALDO_TEST_HOOK_URL"},
            ]
        },
    )


def test_the_contents_of_secret_files_and_variables_are_scrubbed(settings: Settings) -> None:
    scrub = Scrubber(settings)
    for value in [*FILES.values(), *ENVIRONMENT.values()]:
        for form in (value, quote(value, safe="")):
            text = scrub(f"the server said: {form!r} is wrong")
            assert value not in text and form not in text, text
            assert REDACTED in text
    # The password of a notification URL, alone (an HTTP library's error names the host
    # and user, and may echo the password by itself).
    assert scrub("login refused for ops:url-file-pw") == f"login refused for ops:{REDACTED}"
    assert "url-env-pw" not in scrub("password url-env-pw refused")


def test_pgpassword_is_scrubbed_only_where_a_database_would_use_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq takes it only for a database given no password of its own; otherwise respaldo
    # takes it out of its programs' environment, and a short stray value ("postgres")
    # must not blot out every "postgresql://" of a message.
    monkeypatch.setenv("PGPASSWORD", "postgres")
    assert Scrubber(settings)("postgresql://erp@db/erp") == "postgresql://erp@db/erp"
    bare = Settings(
        catalog=settings.catalog,
        cache_dir=settings.cache_dir,
        databases=[{"name": "erp", "dsn": "host=db dbname=erp"}],
    )
    assert Scrubber(bare)("password postgres refused") == f"password {REDACTED} refused"


def test_a_secret_file_that_cannot_be_read_is_skipped(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "jwt.key").unlink()
    scrub = Scrubber(settings)
    assert scrub(f"refused {FILES['db.password']}") == f"refused {REDACTED}"


def test_a_secret_file_that_is_a_pipe_nobody_writes_is_skipped_not_waited_on(
    settings: Settings, tmp_path: Path
) -> None:
    # A url_file that is a named pipe nobody writes blocked the scrubber's first read for
    # ever, and /health, every API error answer and every log line with it (they all
    # scrub). Read, it would also take the pipe's value from the sender it is meant for.
    pipe = tmp_path / "hook.url"
    pipe.unlink()
    os.mkfifo(pipe, 0o600)
    released = threading.Event()

    def release() -> None:  # only if the scrubber waits on it: the test then fails
        released.set()
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)  # the waiting reader's pipe
        except OSError:
            fd = None  # nobody reads it (ENXIO)
        # A regular file in its place: the scrubber, seeing it changed, reads it again.
        (tmp_path / "plain").write_text(FILES["hook.url"])
        (tmp_path / "plain").replace(pipe)
        if fd is not None:
            os.write(fd, FILES["hook.url"].encode())
            os.close(fd)

    backstop = threading.Timer(60, release)
    backstop.daemon = True
    backstop.start()
    try:
        scrub = Scrubber(settings)
        said = scrub(f"refused {FILES['db.password']}")
    finally:
        backstop.cancel()
    assert not released.is_set(), "the scrubber waited on the pipe"
    assert said == f"refused {REDACTED}"


def test_the_services_log_carries_no_loaded_secret(settings: Settings) -> None:
    logger = logging.getLogger("respaldo.test.scrub")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        scrub_logs(settings, logger)
        scrub_logs(settings, logger)  # again: one scrubber, not two
        password = FILES["db.password"]
        logger.warning("connection refused: password %s", password)
        try:
            raise RuntimeError(f"S3 said: bad key {FILES['s3.key']}")
        except RuntimeError:
            logger.exception("job failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "connection refused: password <secret>" in written
    assert "RuntimeError: S3 said: bad key <secret>" in written  # the traceback is kept
    assert password not in written and FILES["s3.key"] not in written
    assert len(handler.filters) == 1


def _rotate(path: Path, value: str) -> None:
    # As a secret manager rotates it: a new file renamed over the old one.
    new = path.with_name(path.name + ".new")
    new.write_text(value + "\n")
    new.chmod(0o600)
    new.replace(path)


def test_a_rotated_secret_file_is_read_again_and_its_old_value_stays_scrubbed(
    settings: Settings, tmp_path: Path
) -> None:
    # The service makes its scrubbers once (the API's error handler, the log's filter):
    # a password rotated while it runs must be scrubbed as soon as it can be loaded.
    scrub = Scrubber(settings)
    old = FILES["db.password"]
    _rotate(tmp_path / "db.password", "rotated db password, longer than the first")
    _rotate(tmp_path / "s3.key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNEWKEY123")  # same length
    text = scrub(f"refused {old}, then rotated db password, longer than the first")
    assert text == f"refused {REDACTED}, then {REDACTED}"
    assert scrub("bad key wJalrXUtnFEMI/K7MDENG/bPxRfiCYNEWKEY123") == f"bad key {REDACTED}"
    # Rewritten in place too (same file, another size).
    (tmp_path / "jwt.key").write_text("a jwt key written over the old one in place\n")
    assert scrub("a jwt key written over the old one in place") == REDACTED
    assert scrub(FILES["jwt.key"]) == REDACTED


def test_a_rotated_secret_file_not_readable_at_first_is_read_once_it_is(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Moved into place as root with mode 0600, chowned to respaldo a moment later: a
    # scrubber that looked in between could not read it, and must try again.
    scrub = Scrubber(settings)
    new = "rotated db password, not readable at first"
    _rotate(tmp_path / "db.password", new)
    real = scrub_module._read
    clock = [1000.0]
    monkeypatch.setattr(scrub_module, "_clock", lambda: clock[0])
    monkeypatch.setattr(scrub_module, "_read", lambda path: None)
    assert scrub(new) == new  # not known yet: it could not be read
    monkeypatch.setattr(scrub_module, "_read", real)
    clock[0] += 1.0
    assert scrub(f"refused {new}") == f"refused {REDACTED}"


def test_a_secret_file_that_cannot_be_read_is_tried_once_a_second_not_per_call(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # wal-push runs as postgres and loads settings naming the service's TLS key, which
    # it may never read: no open (and no rebuilt patterns) for every log line.
    reads: list[Path] = []
    clock = [1000.0]
    scrub = Scrubber(settings)
    _rotate(tmp_path / "db.password", "a password respaldo cannot read yet")

    def unreadable(path: Path) -> str | None:
        reads.append(path)
        return None

    monkeypatch.setattr(scrub_module, "_clock", lambda: clock[0])
    monkeypatch.setattr(scrub_module, "_read", unreadable)
    for _ in range(50):
        scrub("a log line")
    assert reads == [tmp_path / "db.password"]
    clock[0] += 1.0
    scrub("a log line")
    assert len(reads) == 2


def test_a_secret_file_appearing_later_is_scrubbed(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "hook.secret").unlink()
    scrub = Scrubber(settings)
    assert scrub("token hook-token-from-secret_file") == "token hook-token-from-secret_file"
    secret_file(tmp_path, "hook.secret")
    assert scrub("token hook-token-from-secret_file") == f"token {REDACTED}"


def test_the_secret_files_are_not_read_again_while_they_do_not_change(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reads: list[Path] = []
    real = scrub_module._read

    def counting(path: Path) -> str | None:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(scrub_module, "_read", counting)
    scrub = Scrubber(settings)
    first = len(reads)
    for _ in range(50):
        scrub("a log line")
    assert len(reads) == first
    _rotate(tmp_path / "db.password", "another db password")
    scrub("a log line")
    assert reads[first:] == [tmp_path / "db.password"]  # the changed one alone


def test_the_services_log_scrubs_a_rotated_secret(settings: Settings, tmp_path: Path) -> None:
    logger = logging.getLogger("respaldo.test.scrub.rotated")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        scrub_logs(settings, logger)
        _rotate(tmp_path / "passphrase", "the new repository passphrase")
        logger.warning("wrong passphrase: the new repository passphrase")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == f"wrong passphrase: {REDACTED}\n"


def _with_password(settings: Settings, password: str) -> Settings:
    database = {"name": "erp", "dsn": "postgresql://erp@db/erp", "password": password}
    return Settings(catalog=settings.catalog, cache_dir=settings.cache_dir, databases=[database])


def test_a_short_password_is_scrubbed_where_it_stands_alone_not_inside_ids_and_numbers(
    settings: Settings,
) -> None:
    scrub = Scrubber(_with_password(settings, "1234"))
    # Ids, sizes, times and ports that happen to contain it are not the password.
    for text in (
        "job 12345 failed",
        "backup 20261205T061234Z-1a2b1234 completed",
        "size 81234 bytes, port 51234",
    ):
        assert scrub(text) == text
    # Wherever a driver or a server could echo it, it is gone.
    assert scrub('invalid input syntax for type integer: "1234"') == (
        f'invalid input syntax for type integer: "{REDACTED}"'
    )
    assert scrub("password 1234 refused") == f"password {REDACTED} refused"
    assert scrub("postgresql://erp:1234@db/erp") == f"postgresql://erp:{REDACTED}@db/erp"
    assert scrub("password=1234") == f"password={REDACTED}"
    assert scrub("1234") == REDACTED


def test_a_short_password_starting_with_punctuation_is_scrubbed_after_a_word(
    settings: Settings,
) -> None:
    # Only an edge that is a letter or digit needs the boundary: "&x9" glued after a word
    # is still the password.
    scrub = Scrubber(_with_password(settings, "&x9"))
    assert scrub("secret&x9 refused") == f"secret{REDACTED} refused"
    assert scrub("&x90") == "&x90"


def test_a_long_secret_is_scrubbed_everywhere_even_inside_a_word(settings: Settings) -> None:
    password = "Tr0ub4dor-3-erp"
    scrub = Scrubber(_with_password(settings, password))
    assert scrub(f"x{password}y") == f"x{REDACTED}y"
