"""``memory://``: a process-local store kept in dictionaries behind one lock.

Fast and dependency-free, for tests, benchmarks and throwaway runs. Nothing survives
the process, and other processes cannot see it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from devcrew_core.errors import NotFoundError, StoreError
from devcrew_core.ids import validate_id, validate_optional_id
from devcrew_core.stores.base import (
    AGENT_MUTABLE_FIELDS,
    HANDOFF_MUTABLE_FIELDS,
    RUN_MUTABLE_FIELDS,
    Store,
    already_delegated,
    apply_changes,
    fits,
    limits_of,
    total,
)
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    DelegationRecord,
    DelegationStatus,
    Event,
    HandoffRecord,
    Reservation,
    RunRecord,
    SlotResult,
    TaskState,
    WaitRecord,
    WorkflowDefinition,
)

Numbered = TypeVar("Numbered", AuditRecord, Event)


def _run_copy(run: RunRecord) -> RunRecord:
    """Copy a run without deep-copying its data: ``data`` holds the workflow snapshot,
    which can be large, and runs are only ever replaced, never changed in place. The
    top level of ``data`` is copied, so a caller can add keys; nested values are shared
    and must be treated as read-only."""
    return run.model_copy(update={"data": dict(run.data)})


def _append_numbered(log: list[Numbered], items: Sequence[Numbered]) -> list[int]:
    """Append copies of ``items`` to ``log`` with consecutive ``seq`` numbers (from 1)."""
    start = len(log) + 1
    seqs = list(range(start, start + len(items)))
    log.extend(item.model_copy(update={"seq": seq}) for item, seq in zip(items, seqs, strict=True))
    return seqs


class MemoryStore(Store):
    """The Store contract in process memory; one re-entrant lock makes each call atomic."""

    blocking = False

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._agents: dict[str, AgentRecord] = {}
        self._slots: dict[str, dict[str, None]] = {}
        self._delegations: dict[str, DelegationRecord] = {}
        self._waits: dict[tuple[str, str], WaitRecord] = {}
        self._by_capability: dict[str, set[str]] = {}
        self._by_type: dict[str, set[str]] = {}
        self._allocations: dict[tuple[str, str], Allocation] = {}
        self._reservations: dict[str, Reservation] = {}
        self._workflows: dict[str, WorkflowDefinition] = {}
        self._snapshots: dict[str, str] = {}
        self._runs: dict[str, RunRecord] = {}
        self._task_states: dict[str, dict[str, TaskState]] = {}
        self._handoffs: dict[str, HandoffRecord] = {}
        self._contexts: dict[str, dict[str, Any]] = {}
        self._audit: list[AuditRecord] = []
        self._events: list[Event] = []

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the store's lock across the calls made inside."""
        with self._lock:
            yield

    def ping(self) -> bool:
        """Always True: memory is always there."""
        return True

    def close(self) -> None:
        """Nothing to release."""

    # -- agents ------------------------------------------------------------------------
    def _with_load(self, agent: AgentRecord, tasks: bool = True) -> AgentRecord:
        slots = self._slots.get(agent.agent_id, {})
        return agent.model_copy(deep=True, update={
            "current_load": len(slots), "running_tasks": list(slots) if tasks else []})

    def _unindex(self, agent: AgentRecord) -> None:
        for cap in agent.capabilities:
            self._by_capability.get(cap, set()).discard(agent.agent_id)
        self._by_type.get(agent.agent_type, set()).discard(agent.agent_id)

    def put_agent(self, agent: AgentRecord) -> None:
        """Insert or replace an agent, keeping its slots."""
        stored = agent.model_copy(deep=True, update={"current_load": 0, "running_tasks": []})
        with self._lock:
            old = self._agents.get(agent.agent_id)
            if old is not None:
                self._unindex(old)
            self._agents[agent.agent_id] = stored
            for cap in stored.capabilities:
                self._by_capability.setdefault(cap, set()).add(stored.agent_id)
            self._by_type.setdefault(stored.agent_type, set()).add(stored.agent_id)

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """Return an agent with its load."""
        validate_id(agent_id, "agent_id")
        with self._lock:
            agent = self._agents.get(agent_id)
            return None if agent is None else self._with_load(agent)

    def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> AgentRecord | None:
        """Apply allowed changes to an agent."""
        with self._lock:
            agent = self._agents.get(agent_id)
            if agent is None:
                return None
            self._agents[agent_id] = apply_changes(agent, changes, AGENT_MUTABLE_FIELDS)
            return self._with_load(self._agents[agent_id])

    def delete_agent(self, agent_id: str,
                     expired_by: float | None = None) -> AgentRecord | None:
        """Remove an agent and its slots (only if expired by ``expired_by``, if given)."""
        with self._lock:
            agent = self._agents.get(agent_id)
            if agent is None or (expired_by is not None and not agent.is_expired(expired_by)):
                return None
            removed = self._with_load(agent)
            self._unindex(agent)
            del self._agents[agent_id]
            self._slots.pop(agent_id, None)
            return removed

    def list_agents(self, agent_type: str | None = None) -> list[AgentRecord]:
        """All agents, optionally of one type."""
        with self._lock:
            ids = self._agents.keys() if agent_type is None else self._by_type.get(agent_type, ())
            return [self._with_load(self._agents[i], tasks=False) for i in sorted(ids)]

    def find_agents(
        self, capabilities: Sequence[str], agent_type: str | None = None
    ) -> list[AgentRecord]:
        """Agents having every capability, from the capability and type indexes."""
        with self._lock:
            sets = [self._by_capability.get(cap, set()) for cap in capabilities]
            if agent_type is not None:
                sets.append(self._by_type.get(agent_type, set()))
            ids = set.intersection(*sets) if sets else set(self._agents)
            return [self._with_load(self._agents[i], tasks=False) for i in sorted(ids)]

    def acquire_slot(self, agent_id: str, task_id: str) -> SlotResult:
        """Take a slot if one is free."""
        validate_id(task_id, "task_id")
        with self._lock:
            agent = self._agents.get(agent_id)
            if agent is None:
                raise NotFoundError(f"agent {agent_id!r} is not registered")
            slots = self._slots.setdefault(agent_id, {})
            held = task_id in slots
            acquired = held or len(slots) < agent.max_concurrent_tasks
            if acquired:
                slots[task_id] = None
            return SlotResult(
                acquired=acquired,
                already_held=held,
                current_load=len(slots),
                max_concurrent_tasks=agent.max_concurrent_tasks,
            )

    def acquire_slots(self, agent_id: str, task_ids: Sequence[str]) -> list[SlotResult]:
        """Take several slots under one lock acquisition."""
        with self._lock:
            return [self.acquire_slot(agent_id, task_id) for task_id in task_ids]

    def release_slots(self, slots: Sequence[tuple[str, str]]) -> list[bool]:
        """Free several slots under one lock acquisition."""
        with self._lock:
            return [self.release_slot(agent_id, task_id) for agent_id, task_id in slots]

    def transfer_slots(self, moves: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Hand slots on under one lock acquisition (the load never changes)."""
        for _, _, to_task in moves:
            validate_id(to_task, "task_id")
        results = []
        with self._lock:
            for agent_id, from_task, to_task in moves:
                slots = self._slots.get(agent_id, {})
                held = slots.pop(from_task, "absent") is None
                if held:
                    slots[to_task] = None
                results.append(held)
        return results

    def release_slot(self, agent_id: str, task_id: str) -> bool:
        """Free a slot; idempotent."""
        with self._lock:
            slots = self._slots.get(agent_id, {})
            return slots.pop(task_id, "absent") is None

    # -- delegations --------------------------------------------------------------------
    def delegate(self, record: DelegationRecord,
                 audit: AuditRecord | None = None) -> SlotResult:
        """Take the slot and keep the record, under one lock acquisition."""
        with self._lock:
            current = self._delegations.get(record.task_id)
            if current is not None and current.status is DelegationStatus.ACTIVE \
                    and current.agent_id != record.agent_id:
                raise already_delegated(record.task_id, current.agent_id)
            result = self.acquire_slot(record.agent_id, record.task_id)
            if result.acquired:
                self._delegations[record.task_id] = record.model_copy(deep=True)
                if audit is not None:
                    self.append_audit([audit])
            return result

    def complete_delegation(
        self, agent_id: str, task_id: str, completed_at: float,
        audit: AuditRecord | None = None,
    ) -> tuple[DelegationRecord | None, bool]:
        """Free the slot and mark the delegation completed, under one lock acquisition."""
        with self._lock:
            record = self._delegations.get(task_id)
            if record is None or record.agent_id != agent_id:
                return None, False
            if record.status is DelegationStatus.COMPLETED:
                return record.model_copy(deep=True), False
            self.release_slot(agent_id, task_id)
            done = record.model_copy(update={"status": DelegationStatus.COMPLETED,
                                             "completed_at": completed_at})
            self._delegations[task_id] = done
            if audit is not None:
                self.append_audit([audit])
            return done.model_copy(deep=True), True

    def get_delegation(self, task_id: str) -> DelegationRecord | None:
        """The latest delegation of a task."""
        validate_id(task_id, "task_id")
        with self._lock:
            found = self._delegations.get(task_id)
            return None if found is None else found.model_copy(deep=True)

    def list_delegations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> list[DelegationRecord]:
        """Delegations, oldest first."""
        validate_optional_id(agent_id, "agent_id")
        with self._lock:
            found = [
                d.model_copy(deep=True) for d in self._delegations.values()
                if (agent_id is None or d.agent_id == agent_id)
                and (status is None or d.status.value == status)
            ]
        return sorted(found, key=lambda d: (d.delegated_at, d.task_id))

    # -- resources -----------------------------------------------------------------------
    def _live_reservations(self, agent_id: str, now: float) -> list[Reservation]:
        return [
            r
            for r in self._reservations.values()
            if r.agent_id == agent_id and r.expires_at > now
        ]

    def allocate(self, allocation: Allocation, now: float) -> Allocation | None:
        """Record an allocation (and take its slot) if it fits."""
        validate_id(allocation.agent_id, "agent_id")
        validate_id(allocation.task_id, "task_id")
        with self._lock:
            return self._allocate(allocation, now, victims=())

    def preempt_and_allocate(self, allocation: Allocation, victims: Sequence[str],
                             now: float) -> Allocation | None:
        """Remove the victims and allocate, all or nothing, under one lock."""
        with self._lock:
            agent_id = allocation.agent_id
            if any((agent_id, v) not in self._allocations for v in victims):
                return None
            return self._allocate(allocation, now, victims=victims)

    def _allocate(self, allocation: Allocation, now: float,
                  victims: Sequence[str]) -> Allocation | None:
        agent = self._agents.get(allocation.agent_id)
        if agent is None:
            raise NotFoundError(f"agent {allocation.agent_id!r} is not registered")
        validate_id(allocation.task_id, "task_id")
        key = (allocation.agent_id, allocation.task_id)
        if key in self._allocations:
            return self._allocations[key].model_copy()
        reservations = self._live_reservations(allocation.agent_id, now)
        redeemed = next(
            (r for r in reservations if r.reservation_id == allocation.reservation_id), None
        )
        gone = set(victims)
        held = [a for (aid, tid), a in self._allocations.items()
                if aid == allocation.agent_id and tid not in gone]
        others = [r for r in reservations if r is not redeemed]
        if not fits(limits_of(agent), total([*held, *others]), allocation):
            return None
        slots = self._slots.setdefault(allocation.agent_id, {})
        # Only slots a victim really still holds come free (one may have been released).
        freed = sum(1 for v in gone
                    if self._allocations[(allocation.agent_id, v)].holds_slot and v in slots)
        has_slot = allocation.task_id in slots
        if not has_slot and len(slots) - freed >= agent.max_concurrent_tasks:
            return None
        for victim in gone:
            self.release_allocation(allocation.agent_id, victim)
        if redeemed is not None:
            del self._reservations[redeemed.reservation_id]
        if not has_slot:
            slots[allocation.task_id] = None
        stored = allocation.model_copy(update={"holds_slot": not has_slot})
        self._allocations[key] = stored
        return stored.model_copy()

    def release_allocation(self, agent_id: str, task_id: str) -> Allocation | None:
        """Remove an allocation (and free the slot it holds)."""
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        with self._lock:
            gone = self._allocations.pop((agent_id, task_id), None)
            if gone is not None and gone.holds_slot:
                self.release_slot(agent_id, task_id)
            return gone

    def put_wait(self, wait: WaitRecord) -> None:
        """Record a waiting request."""
        validate_id(wait.task_id, "task_id")
        with self._lock:
            self._waits[(wait.agent_id, wait.task_id)] = wait.model_copy()

    def delete_wait(self, agent_id: str, task_id: str) -> bool:
        """Forget a waiting request."""
        with self._lock:
            return self._waits.pop((agent_id, task_id), None) is not None

    def list_waits(self, agent_id: str | None = None) -> list[WaitRecord]:
        """Waiting requests, oldest first."""
        validate_optional_id(agent_id, "agent_id")
        with self._lock:
            found = [w.model_copy() for (aid, _), w in self._waits.items()
                     if agent_id is None or aid == agent_id]
        return sorted(found, key=lambda w: (w.since, w.agent_id, w.task_id))

    def list_allocations(self, agent_id: str | None = None) -> list[Allocation]:
        """Allocations by creation time."""
        validate_optional_id(agent_id, "agent_id")
        with self._lock:
            found = [
                a.model_copy()
                for (aid, _), a in self._allocations.items()
                if agent_id is None or aid == agent_id
            ]
        return sorted(found, key=lambda a: (a.created_at, a.agent_id, a.task_id))

    def reserve(self, reservation: Reservation, now: float) -> bool:
        """Hold capacity if it fits."""
        with self._lock:
            agent = self._agents.get(reservation.agent_id)
            if agent is None:
                raise NotFoundError(f"agent {reservation.agent_id!r} is not registered")
            if reservation.reservation_id in self._reservations:
                raise StoreError(f"reservation {reservation.reservation_id!r} exists already")
            held = [a for (aid, _), a in self._allocations.items() if aid == agent.agent_id]
            live = self._live_reservations(agent.agent_id, now)
            if not fits(limits_of(agent), total([*held, *live]), reservation):
                return False
            self._reservations[reservation.reservation_id] = reservation.model_copy()
            return True

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        """Return a reservation."""
        validate_id(reservation_id, "reservation_id")
        with self._lock:
            found = self._reservations.get(reservation_id)
            return None if found is None else found.model_copy()

    def cancel_reservation(self, reservation_id: str) -> bool:
        """Remove a reservation."""
        with self._lock:
            return self._reservations.pop(reservation_id, None) is not None

    def list_reservations(self, agent_id: str | None = None) -> list[Reservation]:
        """Reservations by creation time."""
        validate_optional_id(agent_id, "agent_id")
        with self._lock:
            found = [
                r.model_copy()
                for r in self._reservations.values()
                if agent_id is None or r.agent_id == agent_id
            ]
        return sorted(found, key=lambda r: (r.created_at, r.reservation_id))

    def expire_reservations(self, now: float) -> list[Reservation]:
        """Drop reservations that have expired."""
        with self._lock:
            gone = [r for r in self._reservations.values() if r.expires_at <= now]
            for r in gone:
                del self._reservations[r.reservation_id]
        return sorted(gone, key=lambda r: (r.created_at, r.reservation_id))

    # -- workflows and runs ------------------------------------------------------------------
    def put_workflow(self, workflow: WorkflowDefinition) -> None:
        """Insert or replace a workflow definition."""
        with self._lock:
            self._workflows[workflow.workflow_id] = workflow.model_copy(deep=True)

    def get_workflow(self, workflow_id: str) -> WorkflowDefinition | None:
        """Return a workflow definition."""
        validate_id(workflow_id, "workflow_id")
        with self._lock:
            found = self._workflows.get(workflow_id)
            return None if found is None else found.model_copy(deep=True)

    def list_workflows(self) -> list[WorkflowDefinition]:
        """All workflow definitions."""
        with self._lock:
            return [self._workflows[k].model_copy(deep=True) for k in sorted(self._workflows)]

    def delete_workflow(self, workflow_id: str) -> bool:
        """Remove a workflow definition."""
        with self._lock:
            return self._workflows.pop(workflow_id, None) is not None

    def put_snapshot(self, snapshot_id: str, document: str) -> None:
        """Keep a document (strings are immutable: nothing to copy)."""
        validate_id(snapshot_id, "snapshot_id")
        with self._lock:
            self._snapshots.setdefault(snapshot_id, document)

    def get_snapshot(self, snapshot_id: str) -> str | None:
        """A stored document."""
        validate_id(snapshot_id, "snapshot_id")
        with self._lock:
            return self._snapshots.get(snapshot_id)

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run."""
        with self._lock:
            if run.run_id in self._runs:
                raise StoreError(f"run {run.run_id!r} exists already")
            self._runs[run.run_id] = _run_copy(run)

    def cancel_requested(self, run_id: str) -> bool | None:
        """Whether a cancel was requested for a run; None if unknown."""
        validate_id(run_id, "run_id")
        with self._lock:
            found = self._runs.get(run_id)
            return None if found is None else found.cancel_requested

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a run."""
        validate_id(run_id, "run_id")
        with self._lock:
            found = self._runs.get(run_id)
            return None if found is None else _run_copy(found)

    def update_run(self, run_id: str, changes: Mapping[str, Any]) -> RunRecord | None:
        """Apply allowed changes to a run."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return None
            self._runs[run_id] = apply_changes(run, changes, RUN_MUTABLE_FIELDS)
            return _run_copy(self._runs[run_id])

    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first."""
        validate_optional_id(workflow_id, "workflow_id")
        with self._lock:
            found = [
                _run_copy(r)
                for r in self._runs.values()
                if (workflow_id is None or r.workflow_id == workflow_id)
                and (status is None or r.status.value == status)
            ]
        return sorted(found, key=lambda r: (r.created_at, r.run_id))

    def put_task_states(self, states: Sequence[TaskState]) -> None:
        """Upsert task states."""
        with self._lock:
            for state in states:
                # A shallow copy suffices on write: reads hand out deep copies.
                self._task_states.setdefault(state.run_id, {})[state.task_id] = state.model_copy()

    def get_task_states(self, run_id: str) -> list[TaskState]:
        """Task states of a run."""
        validate_id(run_id, "run_id")
        with self._lock:
            states = self._task_states.get(run_id, {})
            return [states[k].model_copy(deep=True) for k in sorted(states)]

    # -- handoffs --------------------------------------------------------------------------
    def put_handoff(self, handoff: HandoffRecord, context: Mapping[str, Any] | None) -> None:
        """Insert or replace a handoff and its context."""
        with self._lock:
            self._handoffs[handoff.handoff_id] = handoff.model_copy(deep=True)
            if context is None:
                self._contexts.pop(handoff.handoff_id, None)
            else:
                self._contexts[handoff.handoff_id] = dict(context)

    def get_handoff(self, handoff_id: str) -> HandoffRecord | None:
        """Return a handoff."""
        validate_id(handoff_id, "handoff_id")
        with self._lock:
            found = self._handoffs.get(handoff_id)
            return None if found is None else found.model_copy(deep=True)

    def update_handoff(self, handoff_id: str, changes: Mapping[str, Any]) -> HandoffRecord | None:
        """Apply allowed changes to a handoff."""
        with self._lock:
            found = self._handoffs.get(handoff_id)
            if found is None:
                return None
            self._handoffs[handoff_id] = apply_changes(found, changes, HANDOFF_MUTABLE_FIELDS)
            return self._handoffs[handoff_id].model_copy(deep=True)

    def get_handoff_context(self, handoff_id: str) -> dict[str, Any] | None:
        """Return the context of a handoff."""
        validate_id(handoff_id, "handoff_id")
        with self._lock:
            found = self._contexts.get(handoff_id)
            return None if found is None else dict(found)

    def list_handoffs(self, workflow_id: str | None = None) -> list[HandoffRecord]:
        """Handoffs, oldest first."""
        validate_optional_id(workflow_id, "workflow_id")
        with self._lock:
            found = [
                h.model_copy(deep=True)
                for h in self._handoffs.values()
                if workflow_id is None or h.workflow_id == workflow_id
            ]
        return sorted(found, key=lambda h: (h.created_at, h.handoff_id))

    # -- audit and events -----------------------------------------------------------------------
    def append_audit(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append audit records."""
        with self._lock:
            return _append_numbered(self._audit, records)

    def list_audit(
        self,
        workflow_id: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit records after ``after``."""
        validate_optional_id(workflow_id, "workflow_id")
        with self._lock:
            found = [
                r.model_copy(deep=True)
                for r in self._audit[max(after, 0) :]
                if (workflow_id is None or r.workflow_id == workflow_id)
                and (kind is None or r.kind == kind)
            ]
        return found[:limit]

    def publish_events(self, events: Sequence[Event]) -> list[int]:
        """Append events."""
        with self._lock:
            return _append_numbered(self._events, events)

    def list_events(
        self, after: int = 0, kind: str | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after``."""
        with self._lock:
            found = [
                e.model_copy(deep=True)
                for e in self._events[max(after, 0) :]
                if kind is None or e.kind == kind
            ]
        return found[:limit]


_shared: dict[str, MemoryStore] = {}
_shared_lock = threading.Lock()


def open_memory_store(url: str, settings: object = None) -> MemoryStore:
    """Store factory for ``memory://[name]``: one shared store per URL in this process,
    so every service of one process that is given the same URL sees the same state."""
    with _shared_lock:
        store = _shared.get(url)
        if store is None:
            store = _shared[url] = MemoryStore(url)
        return store
