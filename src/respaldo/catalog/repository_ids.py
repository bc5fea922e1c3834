"""Queries on ``repository_identities``: which repository (its id) a configured name is.

The first process that opens a repository on this catalog records its id; every later
one compares. Machines sharing a catalog must reach the same repository under one name
(docs/scaling.md); one whose ``file://`` path is its own disk has a repository of its
own, and the backups it would record could not be read, verified or restored anywhere
else, while the others' prune would count them as kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from respaldo.catalog.clock import catalog_now
from respaldo.catalog.models import RepositoryIdentity


def recorded_identity(session: Session, name: str) -> RepositoryIdentity | None:
    """What the catalog records for ``name``, if anything."""
    return session.get(RepositoryIdentity, name)


def known_identity(
    session: Session, name: str, repository_id: str, location: str, *, adopt: bool = False
) -> RepositoryIdentity:
    """The identity the catalog records for ``name``: recorded now as (``repository_id``,
    ``location``) if it had none. Two processes doing this at once record one of theirs
    (the insert does nothing on a conflict) and both get the one recorded. With
    ``adopt`` this one replaces what was recorded (a catalog rebuilt from it). Never
    commits.
    """
    if adopt:
        session.execute(sa.delete(RepositoryIdentity).where(RepositoryIdentity.name == name))
    values = {
        "name": name,
        "repository_id": repository_id,
        "location": location,
        "recorded_at": catalog_now(session),
    }
    # Each dialect's module imported only where used: the PostgreSQL one is 2 MiB that a
    # SQLite catalog's every backup would otherwise carry.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg_insert = postgresql.insert(RepositoryIdentity).values(values)
        session.execute(pg_insert.on_conflict_do_nothing(index_elements=["name"]))
    else:
        from sqlalchemy.dialects import sqlite

        lite_insert = sqlite.insert(RepositoryIdentity).values(values)
        session.execute(lite_insert.on_conflict_do_nothing(index_elements=["name"]))
    found = session.get(RepositoryIdentity, name, populate_existing=True)
    assert found is not None  # inserted above, or already there
    return found
