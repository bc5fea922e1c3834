"""``respaldo init``: the configured repositories, then the catalog.

The one place (with ``catalog rebuild``) where a catalog is created: every other command
refuses a catalog URL that leads nowhere instead of starting an empty catalog there.
"""

from __future__ import annotations

from dataclasses import dataclass

from respaldo.catalog import open_catalog
from respaldo.config import Settings
from respaldo.operations.repositories import InitResult, check_identity, init_repositories
from respaldo.repository import KdfParams


@dataclass(frozen=True)
class Initialized:
    catalog: str
    """The catalog's URL, any password masked."""
    repositories: list[InitResult]


def initialize(settings: Settings, kdf: KdfParams | None = None) -> Initialized:
    """Create what does not exist yet: each repository, then the catalog (and its directory).

    Idempotent. Repositories come first so that one that cannot be created (a wrong
    passphrase, a bucket that cannot lock) leaves no new catalog behind either. Raises
    what :func:`init_repositories` and :func:`open_catalog` raise, and RepositoryMismatch
    where the catalog already knows another repository by a configured name (another
    machine's init: its repositories must be the same ones).
    """
    repositories = init_repositories(settings, kdf=kdf)
    with open_catalog(settings.catalog.url, create=True) as catalog:
        url = catalog.url
        # A second machine's init on a catalog the first made: its repositories must be
        # the ones the catalog knows (a file:// path on its own disk was made just now).
        for made in repositories:
            check_identity(
                catalog, made.name, made.repository_id, made.location, created=made.created
            )
    return Initialized(url, repositories)
