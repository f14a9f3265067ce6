"""Built-in agent runner kinds: ``python``, ``command`` and ``http``."""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import AgentRunner


@hookimpl
def devcrew_agent_runners() -> Iterator[AgentRunner]:
    """The three built-in runner kinds (none is defined yet)."""
    yield from ()
