"""Stateful property test: allocate, release, reserve, cancel and preempt on a real store
behave exactly like a simple in-memory model, on every backend, and never over-commit."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from devcrew_core.engine.preemption import choose_victims
from devcrew_core.models import Priority, ResourceLimits
from devcrew_core.stores.base import Store, ceiling, fits, total
from devcrew_core.stores.records import AgentRecord, Allocation, Reservation

LIMITS = ResourceLimits(cpu_cores=4, memory_mb=1000, max_tasks=3)
TASKS = st.sampled_from([f"t{i}" for i in range(6)])
CPU = st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0])
MEMORY = st.sampled_from([100.0, 250.0, 400.0, 700.0])
PRIORITY = st.sampled_from(list(Priority))
RESERVATIONS = st.sampled_from(["r1", "r2", "r3"])


def make_machine(store: Store) -> type[RuleBasedStateMachine]:
    class AllocationModel(RuleBasedStateMachine):
        """The model: allocations and reservations of one agent, as plain dicts."""

        def __init__(self) -> None:
            super().__init__()
            self.agent = f"agent-{uuid.uuid4().hex[:12]}"
            store.put_agent(AgentRecord(agent_id=self.agent, agent_type="Worker",
                                        capabilities=["work"], resource_limits=LIMITS,
                                        max_concurrent_tasks=LIMITS.max_tasks))
            self.allocations: dict[str, Allocation] = {}
            self.reservations: dict[str, Reservation] = {}
            self.now = time.time()

        def _ids(self, name: str) -> str:
            return f"{self.agent}-{name}"

        def _fits(self, request: Allocation, without: tuple[str, ...] = (),
                  redeem: str | None = None) -> bool:
            held = [a for t, a in self.allocations.items() if t not in without]
            reserved = [r for rid, r in self.reservations.items() if rid != redeem]
            slots_free = len(held) < LIMITS.max_tasks
            return slots_free and fits(ceiling(LIMITS), total([*held, *reserved]), request)

        @rule(task=TASKS, cpu=CPU, memory=MEMORY, priority=PRIORITY)
        def allocate(self, task: str, cpu: float, memory: float, priority: Priority) -> None:
            request = Allocation(agent_id=self.agent, task_id=task, cpu_cores=cpu,
                                 memory_mb=memory, priority=priority)
            got = store.allocate(request, self.now)
            if task in self.allocations:
                assert got is not None and got.cpu_cores == self.allocations[task].cpu_cores
                return
            expected = self._fits(request)
            assert (got is not None) == expected
            if got is not None:
                assert got.holds_slot
                self.allocations[task] = got

        @rule(task=TASKS)
        def release(self, task: str) -> None:
            gone = store.release_allocation(self.agent, task)
            assert (gone is not None) == (task in self.allocations)
            self.allocations.pop(task, None)

        @rule(rid=RESERVATIONS, cpu=CPU, memory=MEMORY, task=TASKS)
        def reserve(self, rid: str, cpu: float, memory: float, task: str) -> None:
            reservation_id = self._ids(rid)
            if reservation_id in self.reservations:
                return  # a duplicate ID is an error, tested in the contract suite
            reservation = Reservation(reservation_id=reservation_id, agent_id=self.agent,
                                      task_id=task, cpu_cores=cpu, memory_mb=memory,
                                      expires_at=self.now + 3600)
            held = total([*self.allocations.values(), *self.reservations.values()])
            expected = fits(ceiling(LIMITS), held, reservation)
            assert store.reserve(reservation, self.now) == expected
            if expected:
                self.reservations[reservation_id] = reservation

        @rule(rid=RESERVATIONS)
        def cancel(self, rid: str) -> None:
            reservation_id = self._ids(rid)
            assert store.cancel_reservation(reservation_id) == (
                reservation_id in self.reservations)
            self.reservations.pop(reservation_id, None)

        @rule(rid=RESERVATIONS, task=TASKS)
        def redeem(self, rid: str, task: str) -> None:
            reservation = self.reservations.get(self._ids(rid))
            if reservation is None or task in self.allocations:
                return
            request = Allocation(agent_id=self.agent, task_id=task,
                                 cpu_cores=reservation.cpu_cores,
                                 memory_mb=reservation.memory_mb,
                                 reservation_id=reservation.reservation_id)
            got = store.allocate(request, self.now)
            expected = self._fits(request, redeem=reservation.reservation_id)
            assert (got is not None) == expected
            if got is not None:
                self.allocations[task] = got
                del self.reservations[reservation.reservation_id]

        @rule(task=TASKS, cpu=CPU, memory=MEMORY, priority=PRIORITY)
        def preempt(self, task: str, cpu: float, memory: float, priority: Priority) -> None:
            if task in self.allocations:
                return
            request = Allocation(agent_id=self.agent, task_id=task, cpu_cores=cpu,
                                 memory_mb=memory, priority=priority)
            held = list(self.allocations.values())
            victims = choose_victims(request, priority, held,
                                     total(list(self.reservations.values())),
                                     ceiling(LIMITS), LIMITS.max_tasks - len(held),
                                     needs_slot=True)
            if victims is None:
                return
            names = tuple(v.task_id for v in victims)
            assert all(v.priority < priority for v in victims)
            got = store.preempt_and_allocate(request, list(names), self.now)
            assert got is not None  # the model's view is exact: it must succeed
            assert self._fits(request, without=names)
            for name in names:
                del self.allocations[name]
            self.allocations[task] = got

        @rule(task=TASKS, cpu=CPU, memory=MEMORY)
        def preempt_with_a_stale_view(self, task: str, cpu: float, memory: float) -> None:
            if task in self.allocations:
                return
            request = Allocation(agent_id=self.agent, task_id=task, cpu_cores=cpu,
                                 memory_mb=memory, priority=Priority.CRITICAL)
            # A victim that does not exist: all or nothing means nothing.
            assert store.preempt_and_allocate(request, ["gone"], self.now) is None

        @invariant()
        def store_matches_model(self) -> None:
            stored = {a.task_id: a for a in store.list_allocations(self.agent)}
            assert sorted(stored) == sorted(self.allocations)
            used = total(list(stored.values()))
            assert used.cpu_cores <= LIMITS.cpu_cores + 1e-9
            assert used.memory_mb <= LIMITS.memory_mb + 1e-9
            agent = store.get_agent(self.agent)
            assert agent is not None
            assert agent.current_load == len(stored) <= LIMITS.max_tasks
            assert sorted(r.reservation_id for r in store.list_reservations(self.agent)) == \
                sorted(self.reservations)

    return AllocationModel


@pytest.mark.slow
def test_allocations_behave_like_the_model(store: Store) -> None:
    run_state_machine_as_test(make_machine(store), settings=settings(
        max_examples=30, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
