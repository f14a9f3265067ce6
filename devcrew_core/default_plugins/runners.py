"""Built-in agent runner kinds: ``python``, ``command`` and ``http``.

Factories are given as import paths, so a runner module is imported only when an agent
of that kind is built.
"""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import AgentRunner


@hookimpl
def devcrew_agent_runners() -> Iterator[AgentRunner]:
    """The three built-in runner kinds."""
    yield AgentRunner(
        name="python",
        factory="devcrew_core.runners.python:python_runner",
        description="call a Python function ('module:function', or registered in-process)",
    )
    yield AgentRunner(
        name="command",
        factory="devcrew_core.runners.command:command_runner",
        description="run a program from an argv list (never a shell), placeholders per argument",
    )
    yield AgentRunner(
        name="http",
        factory="devcrew_core.runners.http:http_runner",
        description="POST the call as JSON to an http(s) endpoint, answer a JSON object",
    )
