"""Pydantic models shared by every devcrew service, with the spec's names and fields."""

from devcrew_core.models._base import DevcrewModel
from devcrew_core.models.agents import AgentSpec
from devcrew_core.models.delegation import AgentMatch, TaskRequest
from devcrew_core.models.handoff import AgentContext, HandoffPrecondition, HandoffResult
from devcrew_core.models.hub import DecompositionStrategy, Objective
from devcrew_core.models.resources import Priority, ResourceLimits, ResourceUsage
from devcrew_core.models.workflow import (
    ExecutionMode,
    RetryBackoff,
    RetryPolicy,
    Task,
    TaskPriority,
    TaskResources,
    Workflow,
)

__all__ = [
    "AgentContext",
    "AgentMatch",
    "AgentSpec",
    "DecompositionStrategy",
    "DevcrewModel",
    "ExecutionMode",
    "HandoffPrecondition",
    "HandoffResult",
    "Objective",
    "Priority",
    "ResourceLimits",
    "ResourceUsage",
    "RetryBackoff",
    "RetryPolicy",
    "Task",
    "TaskPriority",
    "TaskRequest",
    "TaskResources",
    "Workflow",
]
