"""State and audit stores: the :class:`Store` contract and how a URL selects a backend.

Built-in backends: ``memory://`` and ``sqlite:///path``. Plugins add others through the
``devcrew_store_backends`` hook (``redis://``, ``postgresql://``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devcrew_core.plugins import PluginManager, get_plugin_manager, resolve_ref
from devcrew_core.stores.base import Store

if TYPE_CHECKING:
    from devcrew_core.config import Settings

__all__ = ["Store", "open_store"]


def open_store(
    url: str, settings: Settings | None = None, plugins: PluginManager | None = None
) -> Store:
    """Open the store for ``url`` with the backend that handles its scheme."""
    from devcrew_core.config import load_settings

    manager = plugins or get_plugin_manager()
    backend = manager.store_backend_for(url)
    factory = resolve_ref(backend.factory, owner=f"store backend {backend.name!r}")
    store: Store = factory(url, settings or load_settings())
    return store
