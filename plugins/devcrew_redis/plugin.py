"""Hook implementations of devcrew_redis: the ``redis`` store backend.

The backend is named by import path, so redis-py is imported only when a ``redis://``
or ``rediss://`` store is opened, never here: listing plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import StoreBackend


@hookimpl
def devcrew_store_backends() -> Iterator[StoreBackend]:
    """The Redis state store."""
    yield StoreBackend(
        name="redis",
        schemes=("redis", "rediss"),
        factory="devcrew_redis.store:open_redis_store",
        description="Redis (rediss:// for TLS); invariants guarded by Lua scripts",
    )
