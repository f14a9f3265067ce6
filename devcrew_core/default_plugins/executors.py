"""Built-in executor: ``local`` (asyncio in this process)."""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import Executor


@hookimpl
def devcrew_executors() -> Iterator[Executor]:
    """The local executor."""
    yield Executor(
        name="local",
        factory="devcrew_core.engine.local:LocalExecutor",
        description="asyncio in this process: threads for sync callables, subprocesses",
    )
