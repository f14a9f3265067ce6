"""Allocating with preemption and breaking deadlocks, over any store (shared by the
``ResourceAllocator`` face and the workflow engine).

``allocate_or_preempt`` first asks the store to allocate; when the request does not fit
and may preempt, it chooses victims (``engine/preemption.py``) from the store's current
view and asks the store to release them and allocate **in one atomic step**, which
refuses when that view went stale (then it looks again, a few times). Every preemption
publishes an ``allocation.preempted`` event (which engines running the victims watch)
and an audit record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from devcrew_core.engine.deadlocks import Deadlock, find_deadlocks
from devcrew_core.engine.preemption import choose_victims
from devcrew_core.errors import NotFoundError
from devcrew_core.models import Priority
from devcrew_core.stores.base import Store, limits_of, total
from devcrew_core.stores.records import Allocation, AuditRecord, Event

#: The event an engine watches to stop (and re-queue) a preempted task.
PREEMPTED = "allocation.preempted"
#: How many times a stale view of the victims is looked at again.
PREEMPT_ATTEMPTS = 3


def reservation_for(store: Store, request: Allocation, now: float) -> str | None:
    """The live reservation on the agent made for this task, if any."""
    for reservation in store.list_reservations(request.agent_id):
        if reservation.task_id == request.task_id and reservation.expires_at > now:
            return reservation.reservation_id
    return None


def allocate_or_preempt(store: Store, audit: Store, request: Allocation, level: Priority,
                        preempt: bool) -> tuple[Allocation | None, list[Allocation]]:
    """Allocate ``request`` (redeeming its reservation), preempting lower-priority
    allocations than ``level`` when it does not fit and ``preempt`` allows; returns the
    allocation (or None) and the victims."""
    now = time.time()
    reservation = reservation_for(store, request, now)
    if reservation is not None:
        request = request.model_copy(update={"reservation_id": reservation})
    got = store.allocate(request, now)
    if got is not None or not preempt:
        return got, []
    for _ in range(PREEMPT_ATTEMPTS):
        victims = _victims(store, request, level, now)
        if victims is None:
            return None, []
        got = store.preempt_and_allocate(request, [v.task_id for v in victims], now)
        if got is not None:
            announce_preemption(store, audit, got, victims, level)
            return got, victims
        now = time.time()
    return None, []


def _victims(store: Store, request: Allocation, level: Priority,
             now: float) -> list[Allocation] | None:
    agent = store.get_agent(request.agent_id)
    if agent is None:
        raise NotFoundError(f"agent {request.agent_id!r} is not registered")
    held = [a for a in store.list_allocations(request.agent_id)
            if a.task_id != request.task_id]
    reserved = total([r for r in store.list_reservations(request.agent_id)
                      if r.expires_at > now and r.reservation_id != request.reservation_id])
    needs_slot = request.task_id not in agent.running_tasks
    return choose_victims(request, level, held, reserved, limits_of(agent),
                          agent.max_concurrent_tasks - agent.current_load, needs_slot)


def announce_preemption(store: Store, audit: Store, got: Allocation,
                        victims: Sequence[Allocation], level: Priority) -> None:
    """An event per victim (engines watch them) and audit records saying who
    preempted whom."""
    records = []
    for victim in victims:
        data = {"agent_id": got.agent_id, "task_id": victim.task_id,
                "victim_priority": victim.priority.name, "preempted_by": got.task_id,
                "by_priority": level.name}
        store.publish_events([Event(kind=PREEMPTED, data=data)])
        records.append(audit_record(PREEMPTED, victim, data))
    records.append(audit_record("allocation", got, {
        "priority": got.priority.name, "preempted": [v.task_id for v in victims]}))
    audit.append_audit(records)


def audit_record(kind: str, allocation: Allocation, data: dict[str, Any]) -> AuditRecord:
    """An audit record about one allocation."""
    return AuditRecord(kind=kind, subject_id=allocation.task_id, data={
        "agent_id": allocation.agent_id, "task_id": allocation.task_id,
        "cpu_cores": allocation.cpu_cores, "memory_mb": allocation.memory_mb, **data})


def deadlocks(store: Store) -> list[Deadlock]:
    """The cycles of the wait-for graph the store holds now."""
    return find_deadlocks(store.list_waits(), store.list_allocations())


def resolve_deadlocks(store: Store, audit: Store) -> list[Deadlock]:
    """Break every cycle by releasing all allocations of its victim (the lowest-priority
    member), with an ``allocation.preempted`` event and a ``deadlock.resolved`` audit
    record each; returns the cycles handled."""
    handled = []
    for deadlock in deadlocks(store):
        for allocation in store.list_allocations():
            if allocation.task_id != deadlock.victim:
                continue
            if store.release_allocation(allocation.agent_id, allocation.task_id) is None:
                continue
            data = {"agent_id": allocation.agent_id, "task_id": allocation.task_id,
                    "victim_priority": allocation.priority.name,
                    "preempted_by": "deadlock-resolution", "cycle": deadlock.tasks}
            store.publish_events([Event(kind=PREEMPTED, data=data)])
            audit.append_audit([audit_record("deadlock.resolved", allocation, data)])
        handled.append(deadlock)
    return handled
