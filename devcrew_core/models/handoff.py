"""Handoff models (the spec's ``AgentContext``, ``HandoffPrecondition``, ``HandoffResult``)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from devcrew_core.models._base import DevcrewModel, Id


class AgentContext(DevcrewModel):
    """Everything an agent hands to the next: conversation, files, state, metadata."""

    agent_id: Id
    agent_type: Id
    conversation_history: list[dict[str, Any]] = Field(default_factory=list)
    files_created: list[str] = Field(default_factory=list)
    files_modified: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)


class HandoffPrecondition(DevcrewModel):
    """A check on the source context's ``state[condition_type]`` before a handoff.

    ``operator`` names a precondition operator plugin (built-ins: ``==``, ``!=``, ``>``,
    ``>=``, ``<``, ``<=``, ``in``, ``not_in``, ``contains``, ``exists``).
    """

    condition_type: str = Field(min_length=1)
    expected_value: Any = None
    operator: str = Field(default="==", min_length=1)
    required: bool = True
    error_message: str | None = None


class HandoffResult(DevcrewModel):
    """The outcome of one handoff attempt."""

    handoff_id: Id
    workflow_id: Id
    success: bool
    source_agent_id: Id
    target_agent_id: Id | None = None
    target_agent_type: Id | None = None
    validation_passed: bool = False
    context_transferred: bool = False
    failed_preconditions: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    rollback_performed: bool = False
    created_at: float = Field(default_factory=time.time)
