"""Loading the config: what is refused at load, before anything is created or backed up."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.config import load_settings
from respaldo.errors import ConfigError

pytestmark = pytest.mark.unit

BASE = """
[catalog]
url = "sqlite:////tmp/never-created/catalog.db"

[[repositories]]
name = "local"
url = "file:///srv/respaldo/repo"
"""


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "respaldo.toml"
    path.write_text(text)
    return path


def _refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, text))
    return str(caught.value)


def test_the_base_config_loads(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, BASE))
    assert [r.name for r in settings.repositories] == ["local"]


# --- item 5: one name, one thing -----------------------------------------------------------


def test_two_repositories_with_one_name_are_refused(tmp_path: Path) -> None:
    message = _refused(
        tmp_path,
        BASE
        + """
[[repositories]]
name = "local"
url = "file:///mnt/offsite/repo"
""",
    )
    assert "repositories" in message
    assert "'local'" in message and "more than once" in message


def test_two_repositories_at_one_location_are_refused(tmp_path: Path) -> None:
    # A "mirror" at the primary's own location would hold no second copy at all.
    message = _refused(
        tmp_path,
        BASE
        + """
[[repositories]]
name = "offsite"
url = "file:///srv/respaldo/repo/"
""",
    )
    assert "file:///srv/respaldo/repo" in message
    assert "local" in message and "offsite" in message


@pytest.mark.parametrize(
    "same",
    [
        "file:///srv/respaldo/./repo",
        "file:///srv/respaldo//repo",
        "file:///srv/respaldo/x/../repo",
        "file:///srv/respaldo/r%65po",
        "file://localhost/srv/respaldo/repo",
        "/srv/respaldo/repo",
        "/srv/respaldo/./repo/",
    ],
)
def test_one_location_spelled_differently_is_refused(tmp_path: Path, same: str) -> None:
    """Local paths are compared once normalised (and unquoted), not as strings."""
    message = _refused(tmp_path, BASE + f'[[repositories]]\nname = "offsite"\nurl = "{same}"\n')
    assert "are both at file:///srv/respaldo/repo" in message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("s3://bucket/a/b", "s3://bucket/a/b/"),
        ("s3://bucket/a/b", "s3://bucket//a/b"),
        ("s3://bucket", "s3://bucket/"),
    ],
)
def test_one_s3_location_spelled_differently_is_refused(
    tmp_path: Path, first: str, second: str
) -> None:
    """The S3 backend strips the prefix's slashes: these name the same bucket and keys."""
    text = BASE.replace("file:///srv/respaldo/repo", first)
    message = _refused(tmp_path, text + f'[[repositories]]\nname = "offsite"\nurl = "{second}"\n')
    assert "local" in message and "offsite" in message and "both at s3://bucket" in message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("file:///srv/respaldo/repo", "/srv/respaldo/repo2"),
        ("file:///srv/respaldo/repo", "file:///srv/respaldo/repo/sub"),
        ("s3://bucket/a", "s3://bucket/b"),
        ("s3://bucket/a", "s3://other/a"),
    ],
)
def test_distinct_locations_load(tmp_path: Path, first: str, second: str) -> None:
    text = BASE.replace("file:///srv/respaldo/repo", first)
    settings = load_settings(
        _config(tmp_path, text + f'[[repositories]]\nname = "offsite"\nurl = "{second}"\n')
    )
    assert [r.name for r in settings.repositories] == ["local", "offsite"]


def test_one_bucket_name_on_two_s3_services_loads(tmp_path: Path) -> None:
    """A bucket name is unique per S3 service only: an offsite copy on another service
    may use the same bucket and prefix."""
    text = BASE.replace("file:///srv/respaldo/repo", "s3://bucket/a") + (
        '[[repositories]]\nname = "offsite"\nurl = "s3://bucket/a"\n'
        'endpoint_url = "https://s3.example.net"\n'
    )
    settings = load_settings(_config(tmp_path, text))
    assert [r.name for r in settings.repositories] == ["local", "offsite"]


def test_two_databases_with_one_name_are_refused(tmp_path: Path) -> None:
    message = _refused(
        tmp_path,
        BASE
        + """
[[databases]]
name = "erp"
dsn = "postgresql://backup@db1/erp"

[[databases]]
name = "erp"
dsn = "postgresql://backup@db2/erp"
""",
    )
    assert "databases" in message
    assert "'erp'" in message and "more than once" in message


def test_two_file_sets_with_one_name_are_refused(tmp_path: Path) -> None:
    message = _refused(
        tmp_path,
        BASE
        + """
[[file_sets]]
name = "uploads"
paths = ["/srv/a"]

[[file_sets]]
name = "uploads"
paths = ["/srv/b"]
""",
    )
    assert "file_sets" in message
    assert "'uploads'" in message


def test_a_file_set_named_as_a_database_is_refused(tmp_path: Path) -> None:
    # Its backups, restore tests, jobs and status are kept under its name, as the
    # database's are: sharing one mixed them (one status answer, one backup at a time, a
    # restore test of the database only).
    message = _refused(
        tmp_path,
        BASE
        + """
[[databases]]
name = "erp"
dsn = "postgresql://backup@db1/erp"

[[file_sets]]
name = "erp"
paths = ["/srv/erp"]
""",
    )
    assert "'erp'" in message and "a name of its own" in message


def test_duplicates_from_the_environment_are_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "RESPALDO_DATABASES",
        '[{"name": "erp", "dsn": "host=a dbname=erp"},'
        ' {"name": "erp", "dsn": "host=b dbname=erp"}]',
    )
    with pytest.raises(ConfigError, match="more than once"):
        load_settings(_config(tmp_path, BASE))


# --- item 7: chunker sizes the chunker accepts ----------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "words"),
    [
        ((64, 128, 256), "avg_size"),  # passed the old 64 <= min <= avg <= max check
        ((512, 2048, 512), "max_size"),
        ((4096, 2048, 65536), "min_size"),
        ((2 * 1024 * 1024, 3 * 1024 * 1024, 8 * 1024 * 1024), "min_size"),
        ((4096, 8 * 1024 * 1024, 16 * 1024 * 1024), "avg_size"),
        ((4096, 16384, 32 * 1024 * 1024), "max_size"),
        ((32, 16384, 65536), "min_size"),
    ],
)
def test_chunker_sizes_out_of_range_are_refused_at_load(
    tmp_path: Path, sizes: tuple[int, int, int], words: str
) -> None:
    low, avg, high = sizes
    message = _refused(
        tmp_path,
        BASE + f"\n[chunker]\nmin_size = {low}\navg_size = {avg}\nmax_size = {high}\n",
    )
    assert message.startswith(f"invalid config file {tmp_path / 'respaldo.toml'}: chunker")
    assert words in message


def test_chunker_sizes_at_the_bounds_load(tmp_path: Path) -> None:
    for low, avg, high in ((64, 256, 1024), (1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024)):
        text = BASE + f"\n[chunker]\nmin_size = {low}\navg_size = {avg}\nmax_size = {high}\n"
        chunker = load_settings(_config(tmp_path, text)).chunker
        assert (chunker.min_size, chunker.avg_size, chunker.max_size) == (low, avg, high)


def test_compressible_level_is_off_unless_set(tmp_path: Path) -> None:
    assert load_settings(_config(tmp_path, BASE)).compressible_level == 0
    text = "compressible_level = 6\n" + BASE
    assert load_settings(_config(tmp_path, text)).compressible_level == 6


def test_compressible_level_out_of_range_is_refused_at_load(tmp_path: Path) -> None:
    message = _refused(tmp_path, "compressible_level = 23\n" + BASE)
    assert "compressible_level" in message


# --- item 6: no config is an error ---------------------------------------------------------


def test_no_config_file_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == "no config file given"
    assert "--config" in caught.value.hint and "RESPALDO_CONFIG" in caught.value.hint


def test_the_config_file_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESPALDO_CONFIG", str(_config(tmp_path, BASE)))
    assert load_settings().repository().name == "local"


# --- secrets never in the file ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://respaldo:Zq8-catalog-pw@catalog.internal/respaldo",
        "postgresql+psycopg://respaldo:Zq8-catalog-pw@catalog.internal:5432/respaldo",
        "postgresql://respaldo@catalog.internal/respaldo?password=Zq8-catalog-pw",
    ],
)
def test_a_password_in_the_files_catalog_url_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # The file may be committed or shared; the catalog's password belongs in
    # RESPALDO_CATALOG__URL or ~/.pgpass (docs/scaling.md).
    text = BASE.replace('"sqlite:////tmp/never-created/catalog.db"', f'"{url}"')
    refused = _refused(tmp_path, text)
    assert "catalog.url" in refused
    assert "Zq8-catalog-pw" not in refused
    # From the environment it is the configured way, and loads; printing the settings
    # never shows it (as SecretStr keeps the other passwords).
    monkeypatch.setenv("RESPALDO_CATALOG__URL", url)
    loaded = load_settings(_config(tmp_path, BASE))
    assert loaded.catalog.url == url
    for printed in (repr(loaded), str(loaded), repr(loaded.catalog), str(loaded.catalog)):
        assert "Zq8-catalog-pw" not in printed
        assert "catalog.internal" in printed
    # Without a password, in the file, it loads too.
    plain = BASE.replace(
        '"sqlite:////tmp/never-created/catalog.db"', '"postgresql://respaldo@catalog.internal/r"'
    )
    monkeypatch.delenv("RESPALDO_CATALOG__URL")
    assert load_settings(_config(tmp_path, plain)).catalog.url.endswith("/r")
