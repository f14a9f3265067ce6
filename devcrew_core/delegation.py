"""``DelegationManager``: the agent registry and capability-based delegation.

This module holds the registry half (register, deregister, status, listing) that the
workflow engine needs; matching, delegation, heartbeats and statistics build on the
same store and the same :class:`~devcrew_core.engine.matching.AgentMatcher`.
"""

from __future__ import annotations

import os
from typing import Any

from devcrew_core.config import Settings, load_settings
from devcrew_core.engine.engine import Engine
from devcrew_core.ids import validate_id
from devcrew_core.orchestrator import _EngineFace
from devcrew_core.stores.records import AgentRecord


def agent_status(agent: AgentRecord) -> dict[str, Any]:
    """The spec's agent status dict."""
    load_pct = 100.0 * agent.current_load / agent.max_concurrent_tasks
    return {
        "agent_id": agent.agent_id,
        "agent_type": agent.agent_type,
        "capabilities": list(agent.capabilities),
        "available": agent.available,
        "current_load": agent.current_load,
        "max_concurrent_tasks": agent.max_concurrent_tasks,
        "has_capacity": agent.current_load < agent.max_concurrent_tasks,
        "load_percentage": load_pct,
        "priority_weight": agent.priority_weight,
        "last_heartbeat": agent.last_heartbeat,
        "running_tasks": list(agent.running_tasks),
        "runner": None if agent.runner is None else agent.runner.get("kind"),
        "metadata": dict(agent.metadata),
    }


class DelegationManager(_EngineFace):
    """Register agents and inspect them (the spec's constructor arguments accepted)."""

    def __init__(
        self,
        redis_url: str | None = None,
        redis_db: int | None = None,
        redis_password: str | None = None,
        connection_pool_size: int | None = None,
        *,
        state_url: str | None = None,
        home: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        engine: Engine | None = None,
    ) -> None:
        if engine is None and settings is None:
            settings = load_settings(
                config_file=config_file, redis_url=redis_url, redis_db=redis_db,
                redis_password=redis_password, connection_pool_size=connection_pool_size,
                state_url=state_url, home=home,
            )
        super().__init__(settings=settings, engine=engine)

    def deregister_agent(self, agent_id: str) -> bool:
        """Remove an agent; False if it was not registered."""
        validate_id(agent_id, "agent_id")
        return self.engine.state_store.delete_agent(agent_id) is not None

    def get_agent_status(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's status dict, or None if it is not registered."""
        validate_id(agent_id, "agent_id")
        agent = self.engine.state_store.get_agent(agent_id)
        return None if agent is None else agent_status(agent)

    def list_agents(
        self,
        filter_type: str | None = None,
        available_only: bool = False,
        has_capacity: bool = False,
    ) -> list[dict[str, Any]]:
        """Status dicts of the registered agents, optionally filtered."""
        if filter_type is not None:
            validate_id(filter_type, "filter_type")
        rows = [agent_status(a) for a in self.engine.state_store.list_agents(filter_type)]
        return [
            row for row in rows
            if (row["available"] or not available_only)
            and (row["has_capacity"] or not has_capacity)
        ]
