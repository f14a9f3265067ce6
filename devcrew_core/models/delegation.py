"""Delegation models (the spec's ``TaskRequest`` and ``AgentMatch``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from devcrew_core.models._base import Capabilities, DevcrewModel, Id
from devcrew_core.models.workflow import RetryPolicy, TaskPriority


class TaskRequest(DevcrewModel):
    """A request to route one task to the best available agent."""

    task_id: Id
    task_type: str = Field(min_length=1)
    required_capabilities: Capabilities = Field(default_factory=list)
    priority: TaskPriority = TaskPriority.MEDIUM
    estimated_duration: float | None = Field(default=None, ge=0)
    context: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    retry_policy: RetryPolicy | None = None
    required_agent_type: Id | None = None
    exclude_agents: list[Id] = Field(default_factory=list)


class AgentMatch(DevcrewModel):
    """An eligible agent for a :class:`TaskRequest` and how well it fits.

    ``score`` is the scorer's fit in [0, 1]; ``effective_score`` also weighs load and
    priority weight and is what agents are ranked by.
    """

    agent_id: Id
    agent_type: Id
    score: float
    effective_score: float
    matched_capabilities: list[str] = Field(default_factory=list)
    current_load: int = Field(default=0, ge=0)
    max_load: int = Field(default=1, ge=1)
    priority_weight: int = Field(default=10, ge=1, le=100)
