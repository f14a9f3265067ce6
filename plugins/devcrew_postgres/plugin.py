"""Hook implementations of devcrew_postgres: the ``postgresql://`` store backend.

The backend is named by import path, so psycopg2 is imported only when a PostgreSQL
URL is opened, never when plugins are listed.
"""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import StoreBackend


@hookimpl
def devcrew_store_backends() -> Iterator[StoreBackend]:
    """The PostgreSQL backend, for ``postgresql://`` and ``postgres://`` URLs."""
    yield StoreBackend(
        name="postgres",
        schemes=("postgresql", "postgres"),
        factory="devcrew_postgres.store:open_postgres_store",
        description="PostgreSQL (psycopg2): shared by many processes and machines",
    )
