"""Records the stores keep: agents, delegations, allocations, reservations, runs, handoffs,
audit, events.

Times are UNIX seconds (floats) so every backend can compare and index them.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from devcrew_core.models._base import DevcrewModel, Id, LenientEnum
from devcrew_core.models.agents import AgentSpec
from devcrew_core.models.resources import Priority


class AgentRecord(AgentSpec):
    """A registered agent as stored in the registry: its declaration plus registry state.

    ``current_load`` and ``running_tasks`` are filled in by the store when it reads the
    agent (they come from the agent's load slots) and ignored when it writes one.
    ``expires_at`` is ``None`` for an agent without a TTL.
    """

    registered_at: float = Field(default_factory=time.time)
    last_heartbeat: float = Field(default_factory=time.time)
    expires_at: float | None = None
    current_load: int = Field(default=0, ge=0)
    running_tasks: list[str] = Field(default_factory=list)

    def is_expired(self, now: float) -> bool:
        """True when the agent has a TTL and missed its last heartbeat deadline."""
        return self.expires_at is not None and self.expires_at <= now


class SlotResult(DevcrewModel):
    """Outcome of taking a load slot: ``acquired`` and the agent's load afterwards."""

    acquired: bool
    already_held: bool = False
    current_load: int = Field(ge=0)
    max_concurrent_tasks: int = Field(ge=0)


class DelegationStatus(LenientEnum):
    """Lifecycle of a delegation made through ``DelegationManager.delegate_task``."""

    ACTIVE = "active"
    COMPLETED = "completed"


class DelegationRecord(DevcrewModel):
    """A task delegated to an agent: what was asked, who got it, how it was chosen.

    While ``active`` the task holds one load slot on the agent (taken in the same atomic
    step that stored the record); completing it frees the slot, exactly once.
    """

    task_id: Id
    agent_id: Id
    agent_type: Id
    task_type: str = Field(min_length=1)
    required_capabilities: list[str] = Field(default_factory=list)
    priority: str = "medium"
    status: DelegationStatus = DelegationStatus.ACTIVE
    score: float | None = None
    effective_score: float | None = None
    estimated_duration: float | None = None
    timeout: float | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    delegated_at: float = Field(default_factory=time.time)
    completed_at: float | None = None


class ResourceAmounts(DevcrewModel):
    """An amount of each resource (a request, or a sum of allocations)."""

    cpu_cores: float = Field(default=0.0, ge=0)
    memory_mb: float = Field(default=0.0, ge=0)
    disk_mb: float = Field(default=0.0, ge=0)
    network_mbps: float = Field(default=0.0, ge=0)


class Allocation(ResourceAmounts):
    """Resources held by one task on one agent."""

    agent_id: Id
    task_id: Id
    priority: Priority = Priority.MEDIUM
    preemptable: bool = True
    reservation_id: Id | None = None
    created_at: float = Field(default_factory=time.time)
    #: Set by the store: the allocation took the task's load slot itself (and frees it
    #: on release); False when the task held its slot already (a delegation, the engine).
    holds_slot: bool = False


class Reservation(ResourceAmounts):
    """Capacity held for a future task until it is redeemed or ``expires_at`` passes."""

    reservation_id: Id
    agent_id: Id
    task_id: Id | None = None
    priority: Priority = Priority.MEDIUM
    expires_at: float
    created_at: float = Field(default_factory=time.time)


class WaitRecord(ResourceAmounts):
    """A task waiting for capacity on an agent (the wait-for graph of deadlock detection
    is built from these and the allocations)."""

    agent_id: Id
    task_id: Id
    priority: Priority = Priority.MEDIUM
    since: float = Field(default_factory=time.time)


class RunStatus(LenientEnum):
    """Lifecycle of a workflow run."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(LenientEnum):
    """Lifecycle of one task inside a run."""

    PENDING = "pending"
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class WorkflowDefinition(DevcrewModel):
    """A stored workflow definition (the validated ``Workflow`` as a dict)."""

    workflow_id: Id
    definition: dict[str, Any]
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class RunRecord(DevcrewModel):
    """One execution of a workflow."""

    run_id: Id
    workflow_id: Id
    status: RunStatus = RunStatus.PENDING
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    cancel_requested: bool = False
    data: dict[str, Any] = Field(default_factory=dict)


class TaskState(DevcrewModel):
    """The latest state of one task in one run."""

    run_id: Id
    task_id: Id
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = Field(default=0, ge=0)
    agent_id: Id | None = None
    #: The effective score the agent was chosen with (delegation).
    score: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    updated_at: float = Field(default_factory=time.time)


class HandoffRecord(DevcrewModel):
    """A handoff between two agents; ``status`` is ``completed``, ``failed`` or ``rolled_back``."""

    handoff_id: Id
    workflow_id: Id
    source_agent_id: Id
    source_agent_type: Id
    target_agent_type: Id
    target_agent_id: Id | None = None
    status: str = "completed"
    result: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class AuditRecord(DevcrewModel):
    """An append-only audit entry. ``seq`` is assigned by the store on append."""

    seq: int | None = None
    kind: str = Field(min_length=1)
    workflow_id: Id | None = None
    subject_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)


class Event(DevcrewModel):
    """A system event (agent lifecycle, resource alert, task transition, ...).

    ``seq`` is assigned by the store and increases, so readers can poll ``after=seq``.
    """

    seq: int | None = None
    kind: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)
