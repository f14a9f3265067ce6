"""Built-in store backends: ``memory://`` and ``sqlite:///path``."""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import StoreBackend


@hookimpl
def devcrew_store_backends() -> Iterator[StoreBackend]:
    """The embedded backends."""
    yield StoreBackend(
        name="memory",
        schemes=("memory",),
        factory="devcrew_core.stores.memory:open_memory_store",
        description="process-local dictionaries; nothing survives the process",
    )
    yield StoreBackend(
        name="sqlite",
        schemes=("sqlite",),
        factory="devcrew_core.stores.sqlite:open_sqlite_store",
        description="one SQLite file in WAL mode (the embedded default)",
    )
