"""One run's resources: allocating its task attempts, noticing preemptions, breaking
deadlocks (the load slots are the :class:`~devcrew_core.engine.slots.SlotBatcher`'s).

A :class:`WorkflowRun` keeps one :class:`RunResources`. An attempt of a task that
declares ``resources`` allocates them on the agent that took its slot
(:meth:`RunResources.allocate`), waiting visibly, with ageing, and trying other agents
while they do not fit; it gives them back on every end (:meth:`RunResources.release`).
The run's watcher asks it to stop the attempts another request preempted
(:meth:`RunResources.stop_preempted`: they are re-queued, not failed) and to break
cycles of waits (:meth:`RunResources.break_deadlocks`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from devcrew_core.engine.allocation import PREEMPTED, audit_record
from devcrew_core.engine.matching import Claim
from devcrew_core.engine.persistence import TransitionWriter, call_store
from devcrew_core.engine.preemption import effective_priority
from devcrew_core.engine.resources import PRIORITY_OF, ResourceGate, waiting_for
from devcrew_core.errors import TaskFailedError
from devcrew_core.models import Task
from devcrew_core.stores.records import Event

logger = logging.getLogger("devcrew.engine")

#: Claims a slot for a task on another agent: (task, deadline, agents to try last).
ClaimAgain = Callable[[Task, float, set[str]], Awaitable[Claim]]


class RunResources:
    """What one run's attempts hold and wait for, and what the run does about it."""

    def __init__(
        self,
        *,
        run_id: str,
        gate: ResourceGate,
        writer: TransitionWriter,
        poll_interval: float,
        claim_again: ClaimAgain,
        release_slot: Callable[[str, str], None],
        set_waiting: Callable[[str, str], None],
    ) -> None:
        self.run_id = run_id
        self.gate = gate
        self.writer = writer
        self.poll_interval = poll_interval
        self._claim_again = claim_again
        self._release_slot = release_slot
        self._set_waiting = set_waiting
        #: Tasks whose running attempt holds resources.
        self.holding: set[str] = set()
        #: Attempts waiting for resources now.
        self.waiting = 0
        #: Tasks whose allocation another request preempted: task_id -> by whom.
        self._preempted: dict[str, str] = {}
        self._event_seq = 0

    @property
    def active(self) -> bool:
        """Whether any attempt holds or waits for resources (deadlocks are possible)."""
        return bool(self.holding) or self.waiting > 0

    async def allocate(self, task: Task, claim: Claim, key: str, deadline: float) -> Claim:
        """Allocate the task's resources on the agent that took it (slot key ``key``);
        when they do not fit (even preempting lower priorities), give the slot back,
        wait visibly (ageing) and try again, on another agent if one is eligible, until
        the deadline. Returns the claim the resources were allocated on."""
        declared = PRIORITY_OF[task.priority]
        since: float | None = None
        waiting_on: str | None = None
        refused: set[str] = set()
        try:
            while True:
                waited = 0.0 if since is None else time.time() - since
                level = effective_priority(declared, waited, self.gate.defaults.aging_seconds)
                request = self.gate.request(task, key, claim.agent.agent_id, declared)
                got = await self.gate.allocate(request, level)
                if got is not None:
                    self.holding.add(task.task_id)
                    self.writer.audit(audit_record("allocation", got, {
                        "run_id": self.run_id, "workflow_task": task.task_id,
                        "priority": got.priority.name}))
                    return claim
                self._release_slot(claim.agent.agent_id, key)
                refused.add(claim.agent.agent_id)
                if since is None:
                    since = time.time()
                    self.waiting += 1
                if waiting_on not in (None, request.agent_id):
                    await self.gate.stop_waiting(waiting_on, key)
                waiting_on = request.agent_id
                await self.gate.wait(request, since)
                self._set_waiting(task.task_id, waiting_for(request))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TaskFailedError(f"no agent had the resources before the task "
                                          f"timed out ({waiting_for(request)})")
                await asyncio.sleep(min(remaining, self.poll_interval))
                claim = await self._claim_again(task, deadline, refused)
        finally:
            if since is not None:
                self.waiting -= 1
            if waiting_on is not None:
                await asyncio.shield(self.gate.stop_waiting(waiting_on, key))

    async def release(self, task_id: str, agent_id: str, key: str) -> None:
        """Give back what the task's attempt holds (nothing when it holds nothing, or
        was preempted)."""
        if task_id in self.holding:
            self.holding.discard(task_id)
            await asyncio.shield(self.gate.release(agent_id, key))

    def preempted_by(self, task_id: str) -> str | None:
        """Who preempted the task's attempt (forgotten once asked), or None."""
        return self._preempted.pop(task_id, None)

    async def stop_preempted(self, task_of_key: Mapping[str, str],
                             drivers: Mapping[str, asyncio.Task[None]]) -> None:
        """Cancel the attempts whose allocation was preempted (by any process), noting
        by whom, so the run re-queues their tasks."""
        store = self.gate.store
        while True:
            events = await call_store(store, store.list_events, self._event_seq,
                                      PREEMPTED, 1000)
            for event in events:
                self._event_seq = max(self._event_seq, event.seq or 0)
                task_id = task_of_key.get(str(event.data.get("task_id")))
                driver = drivers.get(task_id or "")
                if task_id in self.holding and driver is not None and not driver.done():
                    logger.info("run %s: task %s preempted by %s; re-queued",
                                self.run_id, task_id, event.data.get("preempted_by"))
                    self._preempted[task_id] = str(event.data.get("preempted_by"))
                    driver.cancel()
            if len(events) < 1000:
                return

    async def break_deadlocks(self) -> None:
        """Break any cycle of waits (preempting the cycle's lowest-priority member) and
        say so."""
        for deadlock in await self.gate.resolve_deadlocks():
            logger.warning("run %s: deadlock among %s (agents %s) resolved by preempting %s",
                           self.run_id, ", ".join(deadlock.tasks),
                           ", ".join(deadlock.agents), deadlock.victim)
            self.writer.event(Event(kind="deadlock.resolved", data={
                "run_id": self.run_id, **deadlock.as_dict()}))
