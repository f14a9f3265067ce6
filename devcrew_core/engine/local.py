"""The ``local`` executor: task attempts run in this process.

Coroutine runners run on the engine's event loop, synchronous Python callables in
worker threads, commands as subprocesses (each runner kind decides how). Runners are
built once per agent declaration and reused.
"""

from __future__ import annotations

import copy
from typing import Any

from devcrew_core.config import Settings
from devcrew_core.errors import DefinitionError, PluginError, TaskFailedError
from devcrew_core.plugins import PluginManager, get_plugin_manager
from devcrew_core.runners import Runner, TaskCall
from devcrew_core.stores.records import AgentRecord


class LocalExecutor:
    """Runs each attempt with the agent's runner, in this process."""

    name = "local"

    def __init__(self, settings: Settings | None = None,
                 plugins: PluginManager | None = None) -> None:
        self.settings = settings
        self.plugins = plugins or get_plugin_manager()
        self._runners: dict[str, tuple[dict[str, Any], Runner]] = {}

    def runner_for(self, agent: AgentRecord) -> Runner:
        """Build (once) the runner that agent's declaration describes."""
        if agent.runner is None:
            raise TaskFailedError(
                f"agent {agent.agent_id!r} declares no runner, so devcrew cannot run tasks "
                "on it; give it a runner (python, command or http)",
                retryable=False,
            )
        # Keyed by agent, rebuilt when its declaration changed (a re-registration); a
        # dict comparison per attempt is far cheaper than serialising a key.
        cached = self._runners.get(agent.agent_id)
        if cached is not None and cached[0] == agent.runner:
            return cached[1]
        try:
            runner: Runner = self.plugins.build_runner(agent.runner)
        except (DefinitionError, PluginError) as exc:
            raise TaskFailedError(f"agent {agent.agent_id!r}: {exc}", retryable=False) from exc
        self._runners[agent.agent_id] = (copy.deepcopy(agent.runner), runner)
        return runner

    async def execute(self, agent: AgentRecord, call: TaskCall) -> dict[str, Any]:
        """Run one attempt and return the task's output."""
        return await self.runner_for(agent)(call)

    def close(self) -> None:
        """Forget the cached runners."""
        self._runners.clear()
