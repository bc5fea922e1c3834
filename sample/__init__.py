"""A deterministic ERP-like sample database of a construction company, for tests and benchmarks.

* ``erp_roles.sql`` — the cluster-wide roles (idempotent);
* ``erp_schema.sql`` — schemas, types, tables, views, functions, triggers, grants;
* :func:`load` — fills it with ``scale`` (1.0 ≈ 1 GB) of deterministic rows;
* :func:`day_of_work` — one simulated day of changes, for incremental benchmarks;
* :class:`TempCluster` — a throwaway PostgreSQL cluster to put it in.

Also usable from shell scripts: ``python -m sample --help``.
"""

from __future__ import annotations

from sample.cluster import ClusterError, TempCluster
from sample.day_of_work import Change, day_of_work
from sample.generate import TODAY, create_roles, create_schema, load, row_counts

__all__ = [
    "TODAY",
    "Change",
    "ClusterError",
    "TempCluster",
    "create_roles",
    "create_schema",
    "day_of_work",
    "load",
    "row_counts",
]
