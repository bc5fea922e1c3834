"""A PostgreSQL catalog: created only when asked, and a wrong database name creates nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from psycopg import sql
from sample.cluster import TempCluster

from respaldo.catalog import open_catalog
from respaldo.errors import CatalogNotFound, CatalogUnavailable

pytestmark = pytest.mark.integration


def _url(pg: TempCluster, dbname: str) -> str:
    secret = pg.password.get_secret_value()
    return f"postgresql://{pg.superuser}:{secret}@{pg.host}:{pg.port}/{dbname}"


def _tables(pg: TempCluster, dbname: str) -> list[str]:
    rows = pg.query(
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
        dbname=dbname,
    )
    return sorted(str(row[0]) for row in rows)


def test_an_empty_database_is_not_made_a_catalog_unless_asked(
    pg: TempCluster, new_dbname: str
) -> None:
    pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(new_dbname)))
    with pytest.raises(CatalogNotFound) as caught:
        open_catalog(_url(pg, new_dbname))
    assert "holds no respaldo catalog" in str(caught.value)
    assert pg.password.get_secret_value() not in str(caught.value)
    assert "respaldo init" in caught.value.hint
    assert _tables(pg, new_dbname) == []

    with open_catalog(_url(pg, new_dbname), create=True) as catalog:
        assert sa.inspect(catalog.engine).has_table("backup_records")
    with open_catalog(_url(pg, new_dbname)) as catalog:  # now it is one
        assert catalog.url.endswith(f"/{new_dbname}")
    assert "backup_records" in _tables(pg, new_dbname)


def test_a_database_that_does_not_exist_is_an_error(pg: TempCluster, new_dbname: str) -> None:
    for create in (False, True):
        with pytest.raises(CatalogUnavailable) as caught:
            open_catalog(_url(pg, new_dbname), create=create)
        assert "cannot open the catalog" in str(caught.value)
        assert pg.password.get_secret_value() not in str(caught.value)
    query = "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = %s"
    assert pg.scalar(query, [new_dbname]) == 0
