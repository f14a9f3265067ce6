"""The Store contract: every operation the devcrew services need from state and audit.

A backend subclasses :class:`Store` and implements each abstract method. Mutations that
guard an invariant (load slots, allocations, reservations, run updates) must be atomic
*in the backend* (one SQL transaction, one Lua script), because several threads and
processes share one store. ``tests/test_store_contract.py`` is the executable contract:
a backend is done when it passes that suite.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel

from devcrew_core.errors import DefinitionError, UsageError
from devcrew_core.models.resources import ResourceLimits
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    DelegationRecord,
    Event,
    HandoffRecord,
    Reservation,
    ResourceAmounts,
    RunRecord,
    SlotResult,
    TaskState,
    WaitRecord,
    WorkflowDefinition,
)

M = TypeVar("M", bound=BaseModel)

AGENT_MUTABLE_FIELDS = frozenset(
    {"available", "last_heartbeat", "expires_at", "metadata", "priority_weight", "runner"}
)
RUN_MUTABLE_FIELDS = frozenset(
    {"status", "started_at", "completed_at", "error", "cancel_requested", "data"}
)
HANDOFF_MUTABLE_FIELDS = frozenset({"status", "result", "target_agent_id", "updated_at"})


def apply_changes(record: M, changes: Mapping[str, Any], allowed: frozenset[str]) -> M:
    """Return a validated copy of ``record`` with ``changes`` applied.

    Only fields in ``allowed`` may change, so an update can never rewrite an identity
    or the derived load fields.
    """
    unknown = sorted(set(changes) - allowed)
    if unknown:
        kind = type(record).__name__
        raise DefinitionError(
            f"{kind}: cannot update field(s) {', '.join(unknown)}; "
            f"updatable: {', '.join(sorted(allowed))}"
        )
    # A shallow dict of the fields: large JSON values (a run's workflow snapshot) are
    # neither copied nor re-validated; the changed fields are.
    return type(record).model_validate({**dict(record), **changes})


def already_delegated(task_id: str, agent_id: str) -> UsageError:
    """The error every backend raises when a task with an active delegation to
    ``agent_id`` is delegated to another agent."""
    return UsageError(f"task {task_id!r} is already delegated to agent {agent_id!r} and "
                      "still active; complete it there first")


def fits(limits: ResourceAmounts, used: ResourceAmounts, request: ResourceAmounts) -> bool:
    """True when ``used + request`` stays within ``limits`` on every dimension.

    A limit of ``float('inf')`` means unlimited. A tiny tolerance absorbs float rounding
    (0.1 + 0.2 cores must fit a 0.3 limit).
    """
    eps = 1e-9
    return all(
        getattr(used, dim) + getattr(request, dim) <= getattr(limits, dim) + eps
        for dim in ("cpu_cores", "memory_mb", "disk_mb", "network_mbps")
    )


def limits_of(agent: AgentRecord) -> ResourceAmounts:
    """The resource ceiling of ``agent``; an agent without limits is unlimited."""
    return ceiling(agent.resource_limits)


def ceiling(lim: ResourceLimits | None) -> ResourceAmounts:
    """The resource ceiling ``lim`` sets; no limits means unlimited."""
    inf = float("inf")
    if lim is None:
        return ResourceAmounts(cpu_cores=inf, memory_mb=inf, disk_mb=inf, network_mbps=inf)
    return ResourceAmounts(
        cpu_cores=lim.cpu_cores,
        memory_mb=lim.memory_mb,
        disk_mb=inf if lim.disk_mb is None else lim.disk_mb,
        network_mbps=inf if lim.network_mbps is None else lim.network_mbps,
    )


def total(amounts: Sequence[ResourceAmounts]) -> ResourceAmounts:
    """Sum resource amounts dimension by dimension."""
    return ResourceAmounts(
        cpu_cores=sum(a.cpu_cores for a in amounts),
        memory_mb=sum(a.memory_mb for a in amounts),
        disk_mb=sum(a.disk_mb for a in amounts),
        network_mbps=sum(a.network_mbps for a in amounts),
    )


class Store(abc.ABC):
    """Abstract state and audit store. Use as a context manager or call :meth:`close`."""

    #: The URL the store was opened with, passwords masked.
    url: str
    #: Whether async callers should run calls in a worker thread (slow or remote I/O).
    blocking: bool = True

    # -- lifecycle -------------------------------------------------------------------
    @abc.abstractmethod
    def ping(self) -> bool:
        """Return True when the backend answers; raise :class:`StoreError` otherwise."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """A context in which the calls made go to the backend as one atomic unit where it
        can (one SQL transaction); the default gives no extra guarantee. Each call keeps
        its own atomicity either way."""
        return contextlib.nullcontext()

    # -- agents and load slots -------------------------------------------------------
    @abc.abstractmethod
    def put_agent(self, agent: AgentRecord) -> None:
        """Insert or replace an agent. Never changes its load slots (running tasks)."""

    @abc.abstractmethod
    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """Return the agent with its ``current_load`` and ``running_tasks``, or None."""

    @abc.abstractmethod
    def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> AgentRecord | None:
        """Atomically apply ``changes`` (fields in ``AGENT_MUTABLE_FIELDS``); None if unknown."""

    @abc.abstractmethod
    def delete_agent(self, agent_id: str,
                     expired_by: float | None = None) -> AgentRecord | None:
        """Remove an agent and its slots; return what was removed, or None.

        With ``expired_by`` (a time), only an agent that has a TTL and had expired by
        then is removed, decided atomically with the removal: a heartbeat that arrived
        after the caller saw the agent expired keeps it."""

    @abc.abstractmethod
    def list_agents(self, agent_type: str | None = None) -> list[AgentRecord]:
        """All agents (of ``agent_type`` if given), ordered by agent_id, with their
        ``current_load`` (``running_tasks`` is left empty: use :meth:`get_agent`)."""

    @abc.abstractmethod
    def find_agents(
        self, capabilities: Sequence[str], agent_type: str | None = None
    ) -> list[AgentRecord]:
        """Agents that have *every* capability (and the type, if given), by agent_id,
        with their ``current_load`` (``running_tasks`` is left empty).

        Backends answer from a capability/type index, never by loading every agent.
        """

    @abc.abstractmethod
    def acquire_slot(self, agent_id: str, task_id: str) -> SlotResult:
        """Atomically take a load slot for ``task_id`` if the agent has one free.

        Taking a slot the task already holds succeeds again without adding load.
        Raises :class:`NotFoundError` for an unknown agent.
        """

    @abc.abstractmethod
    def release_slot(self, agent_id: str, task_id: str) -> bool:
        """Free the slot of ``task_id``; True if it was held. Idempotent."""

    def acquire_slots(self, agent_id: str, task_ids: Sequence[str]) -> list[SlotResult]:
        """Take slots for several tasks on one agent, in order, as capacity allows.

        Each result is what :meth:`acquire_slot` would have answered at that point.
        Backends override this to do it in one atomic step (one transaction, one
        script); this default takes the slots one by one, each atomically.
        """
        return [self.acquire_slot(agent_id, task_id) for task_id in task_ids]

    def release_slots(self, slots: Sequence[tuple[str, str]]) -> list[bool]:
        """Free many ``(agent_id, task_id)`` slots; one bool per slot, as
        :meth:`release_slot` answers. Backends override this to do it in one step."""
        return [self.release_slot(agent_id, task_id) for agent_id, task_id in slots]

    @abc.abstractmethod
    def transfer_slots(self, moves: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Hand held slots on to other tasks: for each ``(agent_id, from_task, to_task)``
        the slot of ``from_task`` becomes the slot of ``to_task`` without the agent's load
        changing, so no other claimant can take it in between (if ``to_task`` already
        holds a slot there, ``from_task``'s is freed instead). One bool per move: False
        when ``from_task`` held no slot on that agent (nothing changes then). Moves apply
        in order, each atomically; backends do them all in one step.

        The engine hands a finished task's slot to the next task of the same run this way.
        """

    # -- delegations (a load slot plus the record of who got the task) ---------------
    @abc.abstractmethod
    def delegate(self, record: DelegationRecord,
                 audit: AuditRecord | None = None) -> SlotResult:
        """Atomically take a load slot on ``record.agent_id`` for ``record.task_id`` and,
        when it was taken, store ``record`` as the task's active delegation (replacing an
        earlier one of the same task) and append ``audit`` (if given) in the same step.
        When the agent is full nothing is stored. Raises :class:`NotFoundError` for an
        unknown agent, and :class:`UsageError` (see :func:`already_delegated`) when the
        task has an active delegation to another agent (its slot there would leak)."""

    @abc.abstractmethod
    def complete_delegation(
        self, agent_id: str, task_id: str, completed_at: float,
        audit: AuditRecord | None = None,
    ) -> tuple[DelegationRecord | None, bool]:
        """Atomically free the slot of ``task_id`` on ``agent_id``, mark its delegation
        completed and append ``audit`` (if given; only when this call completes it).
        Returns the delegation as it is now and whether this call completed
        it: ``(None, False)`` when ``task_id`` has no delegation to ``agent_id``;
        ``(record, False)`` when it was completed before (nothing changes: completing is
        idempotent and frees the slot exactly once)."""

    @abc.abstractmethod
    def get_delegation(self, task_id: str) -> DelegationRecord | None:
        """The latest delegation of ``task_id``, or None."""

    @abc.abstractmethod
    def list_delegations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> list[DelegationRecord]:
        """Delegations (of one agent, in one status, if given), oldest first."""

    # -- resources -------------------------------------------------------------------
    @abc.abstractmethod
    def allocate(self, allocation: Allocation, now: float) -> Allocation | None:
        """Atomically record ``allocation`` if it fits the agent's limits and the task
        can hold a load slot there.

        Capacity is limits minus existing allocations minus unexpired reservations. If
        ``allocation.reservation_id`` names a live reservation on the same agent, that
        reservation is redeemed in the same step (its capacity becomes the allocation's).
        The task's load slot is taken in the same step unless the task holds it already
        (the stored allocation's ``holds_slot`` says which); an agent without a free slot
        refuses. An existing allocation for the same (agent, task) is returned unchanged.
        Returns None when it does not fit; raises :class:`NotFoundError` for an unknown
        agent.
        """

    @abc.abstractmethod
    def preempt_and_allocate(self, allocation: Allocation, victims: Sequence[str],
                             now: float) -> Allocation | None:
        """Atomically remove the allocations of the ``victims`` (task IDs on
        ``allocation.agent_id``, freeing the slots they hold) and record ``allocation``
        as :meth:`allocate` would, **only if** every victim still holds an allocation
        there and, without them, ``allocation`` fits. Otherwise nothing changes and the
        answer is None (the caller chose its victims from a view that is stale now)."""

    @abc.abstractmethod
    def release_allocation(self, agent_id: str, task_id: str) -> Allocation | None:
        """Remove and return the allocation of ``task_id`` (freeing its load slot when
        it ``holds_slot``); None if there was none."""

    @abc.abstractmethod
    def put_wait(self, wait: WaitRecord) -> None:
        """Record (or refresh) that ``wait.task_id`` waits for capacity on
        ``wait.agent_id``; one record per (agent, task)."""

    @abc.abstractmethod
    def delete_wait(self, agent_id: str, task_id: str) -> bool:
        """Forget a wait; True if it was recorded."""

    @abc.abstractmethod
    def list_waits(self, agent_id: str | None = None) -> list[WaitRecord]:
        """Waiting requests (on one agent if given), oldest first."""

    @abc.abstractmethod
    def list_allocations(self, agent_id: str | None = None) -> list[Allocation]:
        """Allocations (of one agent if given), ordered by creation."""

    @abc.abstractmethod
    def reserve(self, reservation: Reservation, now: float) -> bool:
        """Atomically hold capacity for a future task; False when it does not fit."""

    @abc.abstractmethod
    def get_reservation(self, reservation_id: str) -> Reservation | None:
        """Return a reservation (expired or not), or None."""

    @abc.abstractmethod
    def cancel_reservation(self, reservation_id: str) -> bool:
        """Remove a reservation; True if it existed."""

    @abc.abstractmethod
    def list_reservations(self, agent_id: str | None = None) -> list[Reservation]:
        """Reservations (of one agent if given), ordered by creation."""

    @abc.abstractmethod
    def expire_reservations(self, now: float) -> list[Reservation]:
        """Remove and return every reservation whose ``expires_at`` is not after ``now``."""

    # -- workflows, runs and task states --------------------------------------------
    @abc.abstractmethod
    def put_workflow(self, workflow: WorkflowDefinition) -> None:
        """Insert or replace a workflow definition."""

    @abc.abstractmethod
    def get_workflow(self, workflow_id: str) -> WorkflowDefinition | None:
        """Return a workflow definition, or None."""

    @abc.abstractmethod
    def list_workflows(self) -> list[WorkflowDefinition]:
        """All workflow definitions, ordered by workflow_id."""

    @abc.abstractmethod
    def delete_workflow(self, workflow_id: str) -> bool:
        """Remove a workflow definition; True if it existed (runs are kept)."""

    @abc.abstractmethod
    def put_snapshot(self, snapshot_id: str, document: str) -> None:
        """Keep an immutable JSON document (a run's workflow definition) under an ID
        derived from its content. Storing an ID that exists already changes nothing."""

    @abc.abstractmethod
    def get_snapshot(self, snapshot_id: str) -> str | None:
        """The JSON document stored under ``snapshot_id``, or None."""

    @abc.abstractmethod
    def create_run(self, run: RunRecord) -> None:
        """Insert a new run; :class:`StoreError` if ``run_id`` exists already."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a run, or None."""

    @abc.abstractmethod
    def cancel_requested(self, run_id: str) -> bool | None:
        """Whether a cancel was requested for a run (None if unknown), without loading
        the run's data: executing processes poll this several times a second."""

    @abc.abstractmethod
    def update_run(self, run_id: str, changes: Mapping[str, Any]) -> RunRecord | None:
        """Atomically apply ``changes`` (fields in ``RUN_MUTABLE_FIELDS``); None if unknown."""

    @abc.abstractmethod
    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """Runs filtered by workflow and status, oldest first."""

    @abc.abstractmethod
    def put_task_states(self, states: Sequence[TaskState]) -> None:
        """Upsert many task states in one atomic batch (group commit)."""

    def write_batch(self, states: Sequence[TaskState], audit: Sequence[AuditRecord],
                    events: Sequence[Event]) -> None:
        """Write task states, audit records and events together (the engine's group
        commit when state and audit share a store). Backends may do it in one
        transaction; this default makes one call per kind."""
        if states:
            self.put_task_states(states)
        if audit:
            self.append_audit(audit)
        if events:
            self.publish_events(events)

    @abc.abstractmethod
    def get_task_states(self, run_id: str) -> list[TaskState]:
        """The latest state of every task of a run, ordered by task_id."""

    # -- handoffs and their contexts -------------------------------------------------
    @abc.abstractmethod
    def put_handoff(self, handoff: HandoffRecord, context: Mapping[str, Any] | None) -> None:
        """Insert or replace a handoff and the context it transfers."""

    @abc.abstractmethod
    def get_handoff(self, handoff_id: str) -> HandoffRecord | None:
        """Return a handoff, or None."""

    @abc.abstractmethod
    def update_handoff(self, handoff_id: str, changes: Mapping[str, Any]) -> HandoffRecord | None:
        """Atomically apply ``changes`` (``HANDOFF_MUTABLE_FIELDS``); None if unknown."""

    @abc.abstractmethod
    def get_handoff_context(self, handoff_id: str) -> dict[str, Any] | None:
        """The context stored with a handoff, or None."""

    @abc.abstractmethod
    def list_handoffs(self, workflow_id: str | None = None) -> list[HandoffRecord]:
        """Handoffs (of one workflow if given), oldest first."""

    # -- audit trail and events ------------------------------------------------------
    @abc.abstractmethod
    def append_audit(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append records atomically; return their new, increasing ``seq`` numbers.

        There is no update or delete: the audit trail is append-only.
        """

    @abc.abstractmethod
    def list_audit(
        self,
        workflow_id: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit records with ``seq > after``, filtered, in ``seq`` order."""

    @abc.abstractmethod
    def publish_events(self, events: Sequence[Event]) -> list[int]:
        """Append events; return their new, increasing ``seq`` numbers."""

    @abc.abstractmethod
    def list_events(
        self, after: int = 0, kind: str | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events with ``seq > after`` (of ``kind`` if given), in ``seq`` order."""
