"""Resources for the engine's tasks: allocate before an attempt runs, release after.

A task that declares ``resources`` gets them allocated on the agent that took it (after
its load slot, as the same task key), with preemption of lower-priority allocations when
they do not fit. When no agent can give them, the task waits — its request recorded in
the store, so deadlock detection sees it — and its effective priority ages. Releases
happen on every end of an attempt: success, failure, timeout, cancel; a resumed run
frees what a dead process held.
"""

from __future__ import annotations

from dataclasses import dataclass

from devcrew_core.engine.allocation import allocate_or_preempt, resolve_deadlocks
from devcrew_core.engine.deadlocks import Deadlock
from devcrew_core.engine.persistence import call_store
from devcrew_core.models import Priority, Task, TaskPriority
from devcrew_core.stores.base import Store
from devcrew_core.stores.records import Allocation, WaitRecord

#: A task's priority as an allocation priority.
PRIORITY_OF = {TaskPriority.LOW: Priority.LOW, TaskPriority.MEDIUM: Priority.MEDIUM,
               TaskPriority.HIGH: Priority.HIGH, TaskPriority.CRITICAL: Priority.CRITICAL}


@dataclass(frozen=True)
class ResourceDefaults:
    """What a task's ``resources`` leave out, and how waiting requests age."""

    cpu_cores: float = 2.0
    memory_mb: float = 2048.0
    aging_seconds: float = 30.0


class ResourceGate:
    """Allocates and releases the resources of a run's task attempts."""

    def __init__(self, store: Store, audit: Store, defaults: ResourceDefaults) -> None:
        self.store = store
        self.audit = audit
        self.defaults = defaults

    def request(self, task: Task, key: str, agent_id: str, priority: Priority) -> Allocation:
        """The allocation an attempt of ``task`` (slot key ``key``) asks for."""
        wanted = task.resources
        assert wanted is not None
        return Allocation(
            agent_id=agent_id, task_id=key,
            cpu_cores=self.defaults.cpu_cores if wanted.cpu_cores is None
            else wanted.cpu_cores,
            memory_mb=self.defaults.memory_mb if wanted.memory_mb is None
            else wanted.memory_mb,
            disk_mb=wanted.disk_mb, network_mbps=wanted.network_mbps,
            priority=priority, preemptable=wanted.preemptable)

    async def allocate(self, request: Allocation, level: Priority) -> Allocation | None:
        """Allocate (preempting below ``level`` if need be); None when it cannot."""
        got, _ = await call_store(self.store, allocate_or_preempt, self.store, self.audit,
                                  request, level, True)
        return got

    async def release(self, agent_id: str, key: str) -> None:
        """Give an attempt's allocation back (a no-op when it was preempted)."""
        await call_store(self.store, self.store.release_allocation, agent_id, key)

    async def wait(self, request: Allocation, since: float) -> None:
        """Record that the request waits on its agent."""
        await call_store(self.store, self.store.put_wait, WaitRecord(
            agent_id=request.agent_id, task_id=request.task_id, priority=request.priority,
            since=since, cpu_cores=request.cpu_cores, memory_mb=request.memory_mb,
            disk_mb=request.disk_mb, network_mbps=request.network_mbps))

    async def stop_waiting(self, agent_id: str, key: str) -> None:
        """Forget the request's wait record."""
        await call_store(self.store, self.store.delete_wait, agent_id, key)

    async def resolve_deadlocks(self) -> list[Deadlock]:
        """Break the cycles of the wait-for graph (see ``engine/allocation.py``)."""
        return await call_store(self.store, resolve_deadlocks, self.store, self.audit)


def waiting_for(request: Allocation) -> str:
    """The status text of a task waiting for resources."""
    return (f"waiting for resources on agent {request.agent_id} "
            f"({request.cpu_cores:g} cores, {request.memory_mb:g} MB)")
