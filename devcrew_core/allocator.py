"""``ResourceAllocator``: CPU, memory, disk and network per agent, never over-committed.

The allocator works on the agents of the one registry (the delegation registry): an
agent's ``resource_limits`` are its ceiling and its load slots its task count, so there
is no second counter to drift. Every check-and-allocate is **one atomic store
operation** (a SQL transaction, a Lua script): whatever the concurrency, the sum of what
is allocated on an agent never exceeds its limits.

* ``allocate`` records an allocation (and takes the task's load slot) when it fits;
  allocating an existing task again returns the same allocation. A task with a live
  reservation on the agent redeems it.
* When a request does not fit, it may **preempt** strictly lower-priority, preemptable
  allocations (the fewest, lowest priority first; see ``engine/preemption.py``). The
  victims are released in the same atomic step as the new allocation; an event
  (``allocation.preempted``) and an audit record say who preempted whom, and a workflow
  engine whose task was preempted stops that attempt and runs the task again.
* ``allocate_or_wait`` waits for capacity (recorded in the store, so deadlock detection
  sees it); its effective priority rises while it waits (ageing).
* ``detect_deadlocks`` reports cycles of tasks that hold resources and wait for each
  other; ``resolve_deadlocks`` preempts the lowest-priority member of each.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from pydantic import ValidationError

from devcrew_core.config import Settings, load_settings
from devcrew_core.engine.allocation import (
    allocate_or_preempt,
    audit_record,
    deadlocks,
    resolve_deadlocks,
)
from devcrew_core.engine.engine import Engine
from devcrew_core.engine.preemption import effective_priority
from devcrew_core.engine.report import iso
from devcrew_core.errors import DefinitionError
from devcrew_core.ids import validate_id
from devcrew_core.models import Priority, ResourceLimits, ResourceUsage
from devcrew_core.orchestrator import _EngineFace
from devcrew_core.stores.base import Store, total
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    Reservation,
    WaitRecord,
)
from devcrew_core.validation import describe_validation_error

#: The agent type and capabilities given to agents first registered through the allocator.
DEFAULT_AGENT_TYPE = "Agent"
DEFAULT_CAPABILITIES = ("general",)
#: How often a waiting request tries again when nothing woke it (seconds).
WAIT_POLL_SECONDS = 0.05


def allocation_document(allocation: Allocation, preempted: list[str] | None = None
                        ) -> dict[str, Any]:
    """The spec's allocation dict (``cpu_allocated``, ``memory_allocated``, ...)."""
    return {
        "agent_id": allocation.agent_id,
        "task_id": allocation.task_id,
        "cpu_allocated": allocation.cpu_cores,
        "memory_allocated": allocation.memory_mb,
        "disk_allocated": allocation.disk_mb,
        "network_allocated": allocation.network_mbps,
        "priority": allocation.priority.name,
        "preemptable": allocation.preemptable,
        "reservation_id": allocation.reservation_id,
        "allocated_at": iso(allocation.created_at),
        "preempted": list(preempted or []),
    }


def reservation_document(reservation: Reservation) -> dict[str, Any]:
    """A reservation as a dict (``reservation_id``, ``expires_at`` ISO, amounts)."""
    return {
        "reservation_id": reservation.reservation_id,
        "agent_id": reservation.agent_id,
        "task_id": reservation.task_id,
        "cpu_cores": reservation.cpu_cores,
        "memory_mb": reservation.memory_mb,
        "disk_mb": reservation.disk_mb,
        "network_mbps": reservation.network_mbps,
        "priority": reservation.priority.name,
        "created_at": iso(reservation.created_at),
        "expires_at": iso(reservation.expires_at),
    }


class ResourceAllocator(_EngineFace):
    """Allocate, reserve and release agents' resources; preempt; find deadlocks.

    Constructor: the spec's ``redis_url`` plus ``state_url``, ``home``, ``config_file``,
    or a ready ``settings``/``engine``. ``aging_seconds`` (default: the
    ``resource_aging_seconds`` setting) is how long a waiting request waits per level
    of priority it gains.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        state_url: str | None = None,
        home: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        engine: Engine | None = None,
        aging_seconds: float | None = None,
    ) -> None:
        if engine is None and settings is None:
            settings = load_settings(config_file=config_file, redis_url=redis_url,
                                     state_url=state_url, home=home)
        super().__init__(settings=settings, engine=engine)
        self.aging_seconds = (self.settings.resource_aging_seconds if aging_seconds is None
                              else aging_seconds)
        self._last_cleanup = 0.0

    @property
    def _store(self) -> Store:
        return self.engine.state_store

    # -- agents --------------------------------------------------------------------------
    def register_agent(  # type: ignore[override]
        self, limits: ResourceLimits, agent_type: str | None = None,
        capabilities: list[str] | None = None,
    ) -> bool:
        """Give an agent its resource limits (``limits.agent_id``; ``max_tasks`` becomes
        its ``max_concurrent_tasks``). An agent already in the registry keeps everything
        else, including its running tasks and allocations; a new one is registered with
        ``agent_type`` (default ``Agent``) and ``capabilities`` (default ``general``)."""
        if limits.agent_id is None:
            raise DefinitionError("ResourceLimits.agent_id: required to register an agent")
        existing = self._store.get_agent(limits.agent_id)
        now = time.time()
        try:
            if existing is not None:
                record = AgentRecord.model_validate({
                    **existing.model_dump(exclude={"current_load", "running_tasks"}),
                    "resource_limits": limits, "max_concurrent_tasks": limits.max_tasks,
                    **({"agent_type": agent_type} if agent_type else {}),
                    **({"capabilities": capabilities} if capabilities is not None else {}),
                })
            else:
                record = AgentRecord(
                    agent_id=limits.agent_id, agent_type=agent_type or DEFAULT_AGENT_TYPE,
                    capabilities=capabilities or list(DEFAULT_CAPABILITIES),
                    max_concurrent_tasks=limits.max_tasks,
                    resource_limits=limits, registered_at=now, last_heartbeat=now,
                    expires_at=now + self.settings.agent_ttl_seconds)
        except ValidationError as exc:
            raise DefinitionError(describe_validation_error(exc, prefix="agent")) from exc
        self._store.put_agent(record)
        self.engine.own_agents.add(record.agent_id)
        self.engine.matcher.invalidate()
        return True

    def get_agent_usage(self, agent_id: str) -> ResourceUsage | None:
        """What the agent uses now against its limits (None if it is not registered)."""
        validate_id(agent_id, "agent_id")
        agent = self._store.get_agent(agent_id)
        if agent is None:
            return None
        return _usage(agent, self._store.list_allocations(agent_id))

    def usage_table(self) -> list[dict[str, Any]]:
        """One row per agent: used, limit and utilisation of each resource, reserved
        capacity and tasks (what ``devcrew monitor resources`` shows). Three store reads
        in all, whatever the number of agents."""
        now = time.time()
        allocations: dict[str, list[Allocation]] = {}
        for allocation in self._store.list_allocations():
            allocations.setdefault(allocation.agent_id, []).append(allocation)
        reserved: dict[str, list[Reservation]] = {}
        for reservation in self._store.list_reservations():
            if reservation.expires_at > now:
                reserved.setdefault(reservation.agent_id, []).append(reservation)
        rows = []
        for agent in self._store.list_agents():
            held = total(reserved.get(agent.agent_id, []))
            usage = _usage(agent, allocations.get(agent.agent_id, []))
            rows.append({**usage.model_dump(), "cpu_reserved": held.cpu_cores,
                         "memory_reserved": held.memory_mb, "agent_type": agent.agent_type})
        return rows

    # -- allocations ---------------------------------------------------------------------
    def allocate(
        self,
        agent_id: str,
        task_id: str,
        cpu_cores: float,
        memory_mb: float,
        priority: Priority = Priority.MEDIUM,
        *,
        disk_mb: float = 0.0,
        network_mbps: float = 0.0,
        preemptable: bool = True,
        preempt: bool = True,
    ) -> dict[str, Any] | None:
        """Allocate resources for a task now, or return None when they do not fit even
        after preempting what ``priority`` may preempt (with ``preempt=False``, none)."""
        request = self._request(agent_id, task_id, cpu_cores, memory_mb, priority,
                                disk_mb, network_mbps, preemptable)
        return self._try(request, Priority(priority), preempt)

    def allocate_or_wait(
        self,
        agent_id: str,
        task_id: str,
        cpu_cores: float,
        memory_mb: float,
        priority: Priority = Priority.MEDIUM,
        *,
        timeout: float,
        disk_mb: float = 0.0,
        network_mbps: float = 0.0,
        preemptable: bool = True,
        preempt: bool = True,
    ) -> dict[str, Any] | None:
        """Like :meth:`allocate`, but wait up to ``timeout`` seconds for capacity. While
        it waits the request is recorded in the store (deadlock detection sees it) and
        its effective priority rises every ``aging_seconds``; a waiting request with a
        higher effective priority on the same agent goes first."""
        request = self._request(agent_id, task_id, cpu_cores, memory_mb, priority,
                                disk_mb, network_mbps, preemptable)
        since = time.time()
        deadline = time.monotonic() + timeout
        wait = WaitRecord(agent_id=agent_id, task_id=task_id, priority=Priority(priority),
                          since=since, cpu_cores=cpu_cores, memory_mb=memory_mb,
                          disk_mb=disk_mb, network_mbps=network_mbps)
        recorded = False
        try:
            while True:
                level = effective_priority(Priority(priority), time.time() - since,
                                           self.aging_seconds)
                if not self._outranked(wait, level):
                    done = self._try(request, level, preempt)
                    if done is not None:
                        return done
                if time.monotonic() >= deadline:
                    return None
                if not recorded:
                    self._store.put_wait(wait)
                    recorded = True
                time.sleep(min(WAIT_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        finally:
            if recorded:
                self._store.delete_wait(agent_id, task_id)

    def _outranked(self, wait: WaitRecord, level: Priority) -> bool:
        """Whether another waiter on the agent should go first (higher effective
        priority, or the same and waiting longer)."""
        now = time.time()
        for other in self._store.list_waits(wait.agent_id):
            if other.task_id == wait.task_id:
                continue
            theirs = effective_priority(other.priority, now - other.since, self.aging_seconds)
            if (theirs, -other.since) > (level, -wait.since):
                return True
        return False

    def _request(self, agent_id: str, task_id: str, cpu_cores: float, memory_mb: float,
                 priority: Priority, disk_mb: float, network_mbps: float,
                 preemptable: bool) -> Allocation:
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        try:
            return Allocation(agent_id=agent_id, task_id=task_id, cpu_cores=cpu_cores,
                              memory_mb=memory_mb, disk_mb=disk_mb, network_mbps=network_mbps,
                              priority=Priority(priority), preemptable=preemptable)
        except ValidationError as exc:
            raise DefinitionError(describe_validation_error(exc, prefix="allocation")) \
                from exc
        except ValueError as exc:  # Priority(...) of an unknown value
            raise DefinitionError(f"allocation.priority: {exc}") from exc

    def _try(self, request: Allocation, level: Priority, preempt: bool
             ) -> dict[str, Any] | None:
        self._cleanup_now_and_then(time.time())
        got, victims = allocate_or_preempt(self._store, self.engine.audit_store, request,
                                           level, preempt)
        if got is None:
            return None
        if not victims:
            self.engine.audit_store.append_audit([audit_record(
                "allocation", got, {"priority": got.priority.name})])
        return allocation_document(got, [v.task_id for v in victims])

    def release(self, agent_id: str, task_id: str) -> bool:
        """Release a task's resources; False (a no-op) when it held none."""
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        gone = self._store.release_allocation(agent_id, task_id)
        if gone is None:
            return False
        self._audit("allocation.released", gone, {})
        return True

    def list_allocations(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Allocations (of one agent if given), oldest first."""
        if agent_id is not None:
            validate_id(agent_id, "agent_id")
        return [allocation_document(a) for a in self._store.list_allocations(agent_id)]

    # -- reservations --------------------------------------------------------------------
    def reserve(
        self,
        agent_id: str,
        cpu_cores: float,
        memory_mb: float,
        duration_seconds: float,
        task_id: str | None = None,
        *,
        disk_mb: float = 0.0,
        network_mbps: float = 0.0,
        priority: Priority = Priority.MEDIUM,
    ) -> dict[str, Any] | None:
        """Hold capacity for ``duration_seconds`` (for ``task_id``, which redeems it by
        allocating on this agent). None when it does not fit now."""
        validate_id(agent_id, "agent_id")
        if task_id is not None:
            validate_id(task_id, "task_id")
        now = time.time()
        try:
            reservation = Reservation(
                reservation_id=f"rsv-{uuid.uuid4().hex[:16]}", agent_id=agent_id,
                task_id=task_id, cpu_cores=cpu_cores, memory_mb=memory_mb, disk_mb=disk_mb,
                network_mbps=network_mbps, priority=Priority(priority),
                expires_at=now + float(duration_seconds), created_at=now)
        except ValidationError as exc:
            raise DefinitionError(describe_validation_error(exc, prefix="reservation")) \
                from exc
        if duration_seconds <= 0:
            raise DefinitionError(
                f"reservation.duration_seconds: must be > 0 (got {duration_seconds!r})")
        if not self._store.reserve(reservation, now):
            return None
        self.engine.audit_store.append_audit([AuditRecord(
            kind="reservation", subject_id=reservation.reservation_id,
            data=reservation_document(reservation))])
        return reservation_document(reservation)

    def cancel_reservation(self, reservation_id: str) -> bool:
        """Give a reservation's capacity back; False if there was none."""
        validate_id(reservation_id, "reservation_id")
        return self._store.cancel_reservation(reservation_id)

    def list_reservations(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Reservations (of one agent if given), expired ones included until cleanup."""
        if agent_id is not None:
            validate_id(agent_id, "agent_id")
        return [reservation_document(r) for r in self._store.list_reservations(agent_id)]

    def cleanup_expired_reservations(self) -> list[dict[str, Any]]:
        """Remove expired reservations (also done automatically while allocating)."""
        self._last_cleanup = time.time()
        return [reservation_document(r)
                for r in self._store.expire_reservations(self._last_cleanup)]

    def _cleanup_now_and_then(self, now: float) -> None:
        # Expired reservations never count against capacity; removing them is hygiene,
        # so once every few seconds is plenty.
        if now - self._last_cleanup >= self.settings.reservation_cleanup_interval:
            self.cleanup_expired_reservations()

    # -- deadlocks -----------------------------------------------------------------------
    def detect_deadlocks(self) -> list[dict[str, Any]]:
        """Cycles of tasks that hold resources and wait for each other: each with its
        ``tasks``, the ``agents`` they wait on, the ``edges`` and the ``victim`` that
        :meth:`resolve_deadlocks` would preempt."""
        return [d.as_dict() for d in deadlocks(self._store)]

    def resolve_deadlocks(self) -> list[dict[str, Any]]:
        """Break every cycle by preempting its victim (all of the victim's allocations
        are released; an event and an audit record say so). Returns the cycles handled."""
        return [d.as_dict() for d in resolve_deadlocks(self._store, self.engine.audit_store)]

    def _audit(self, kind: str, allocation: Allocation, data: dict[str, Any]) -> None:
        self.engine.audit_store.append_audit([audit_record(kind, allocation, data)])


def _usage(agent: AgentRecord, allocations: list[Allocation]) -> ResourceUsage:
    """An agent's usage from its record (limits, load) and its allocations."""
    used = total(allocations)
    lim = agent.resource_limits
    return ResourceUsage(
        agent_id=agent.agent_id,
        cpu_used=used.cpu_cores, cpu_limit=lim.cpu_cores if lim else 0.0,
        memory_used=used.memory_mb, memory_limit=lim.memory_mb if lim else 0.0,
        disk_used=used.disk_mb, disk_limit=lim.disk_mb if lim else None,
        active_tasks=agent.current_load, max_tasks=agent.max_concurrent_tasks,
    )
