"""ResourceAllocator on every backend: allocate, release, reserve, preempt, wait, deadlocks,
and races that must never over-commit an agent."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devcrew_core import DefinitionError, Priority, ResourceAllocator, ResourceLimits
from devcrew_core.stores.base import Store

from allocation_workers import race_process, race_round


@pytest.fixture
def url(store_and_url: tuple[Store, str]) -> str:
    return store_and_url[1]


@pytest.fixture
def allocator(url: str) -> Iterator[ResourceAllocator]:
    with ResourceAllocator(state_url=url) as face:
        yield face


def limits(agent_id: str = "w1", cpu: float = 8, mem: float = 16384,
           tasks: int = 4) -> ResourceLimits:
    return ResourceLimits(agent_id=agent_id, cpu_cores=cpu, memory_mb=mem, max_tasks=tasks)


def test_allocate_usage_release(allocator: ResourceAllocator) -> None:
    assert allocator.register_agent(limits()) is True
    got = allocator.allocate("w1", "t1", cpu_cores=2.0, memory_mb=4096, priority=Priority.HIGH)
    assert got is not None
    assert (got["cpu_allocated"], got["memory_allocated"], got["priority"]) == (2.0, 4096, "HIGH")
    again = allocator.allocate("w1", "t1", cpu_cores=2.0, memory_mb=4096)
    assert again is not None and again["allocated_at"] == got["allocated_at"]  # idempotent
    usage = allocator.get_agent_usage("w1")
    assert usage is not None
    assert (usage.cpu_used, usage.cpu_limit, usage.cpu_utilization) == (2.0, 8.0, 25.0)
    assert (usage.memory_used, usage.memory_utilization) == (4096, 25.0)
    assert (usage.active_tasks, usage.max_tasks) == (1, 4)
    assert allocator.allocate("w1", "t2", cpu_cores=7, memory_mb=1, preempt=False) is None
    assert allocator.release("w1", "t1") is True
    assert allocator.release("w1", "t1") is False  # unknown: a no-op, reported as such
    usage = allocator.get_agent_usage("w1")
    assert usage is not None and usage.cpu_used == 0 and usage.active_tasks == 0
    assert allocator.get_agent_usage("nobody") is None


def test_max_tasks_is_the_agents_slot_count(allocator: ResourceAllocator) -> None:
    allocator.register_agent(limits(tasks=2))
    assert allocator.allocate("w1", "t1", 1, 1) is not None
    assert allocator.allocate("w1", "t2", 1, 1) is not None
    assert allocator.allocate("w1", "t3", 1, 1, preempt=False) is None, "no free slot"
    # One registry: the delegation view of the agent shows the same load.
    from devcrew_core import DelegationManager

    with DelegationManager(engine=allocator.engine) as manager:
        status = manager.get_agent_status("w1")
        assert status is not None and status["current_load"] == 2
        assert status["max_concurrent_tasks"] == 2


def test_registering_new_limits_keeps_allocations_in_use(
        allocator: ResourceAllocator) -> None:
    allocator.register_agent(limits(cpu=8))
    allocator.allocate("w1", "t1", 6, 100)
    allocator.register_agent(limits(cpu=4))
    assert [a["task_id"] for a in allocator.list_allocations("w1")] == ["t1"]
    usage = allocator.get_agent_usage("w1")
    assert usage is not None and (usage.cpu_used, usage.cpu_limit) == (6, 4)
    assert allocator.allocate("w1", "t2", 1, 1, preempt=False) is None


def test_reservations_hold_capacity_and_are_redeemed_by_their_task(
        allocator: ResourceAllocator) -> None:
    allocator.register_agent(limits(cpu=8, mem=16384))
    reservation = allocator.reserve("w1", cpu_cores=6, memory_mb=8192, duration_seconds=3600,
                                    task_id="future-task-001")
    assert reservation is not None and reservation["reservation_id"].startswith("rsv-")
    assert reservation["expires_at"] > reservation["created_at"]
    assert allocator.allocate("w1", "other", 4, 1, preempt=False) is None, "held for later"
    got = allocator.allocate("w1", "future-task-001", 6, 8192)
    assert got is not None and got["reservation_id"] == reservation["reservation_id"]
    assert allocator.list_reservations("w1") == []  # redeemed
    assert allocator.reserve("w1", 4, 1, duration_seconds=60) is None, "does not fit"
    short = allocator.reserve("w1", 1, 1, duration_seconds=0.05)
    assert short is not None
    time.sleep(0.1)
    gone = allocator.cleanup_expired_reservations()
    assert [r["reservation_id"] for r in gone] == [short["reservation_id"]]
    with pytest.raises(DefinitionError):
        allocator.reserve("w1", 1, 1, duration_seconds=0)
    with pytest.raises(DefinitionError):
        allocator.reserve("w1", -1, 1, duration_seconds=10)


def test_preemption_releases_lower_priority_victims_and_says_so(
        allocator: ResourceAllocator) -> None:
    allocator.register_agent(limits(cpu=4, tasks=4))
    allocator.allocate("w1", "batch-1", 2, 1, Priority.LOW)
    allocator.allocate("w1", "batch-2", 1, 1, Priority.LOW)
    allocator.allocate("w1", "service", 1, 1, Priority.MEDIUM)
    urgent = allocator.allocate("w1", "urgent", 2, 1, Priority.CRITICAL)
    assert urgent is not None and urgent["preempted"] == ["batch-1"]
    assert sorted(a["task_id"] for a in allocator.list_allocations("w1")) == [
        "batch-2", "service", "urgent"]
    events = allocator.engine.state_store.list_events(kind="allocation.preempted")
    assert [(e.data["task_id"], e.data["preempted_by"]) for e in events] == [
        ("batch-1", "urgent")]
    audit = allocator.engine.audit_store.list_audit(kind="allocation.preempted")
    assert [a.subject_id for a in audit] == ["batch-1"]
    # Equal priority is never preempted; without enough to free, nothing is preempted.
    assert allocator.allocate("w1", "peer", 1, 1, Priority.LOW) is None
    assert allocator.allocate("w1", "huge", 4, 1, Priority.HIGH) is None
    assert len(allocator.list_allocations("w1")) == 3


def test_a_waiting_request_gets_capacity_when_it_frees(
        allocator: ResourceAllocator) -> None:
    allocator.register_agent(limits(cpu=2, tasks=4))
    allocator.allocate("w1", "holder", 2, 1, Priority.HIGH)
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(got=allocator.allocate_or_wait(
        "w1", "waiter", 2, 1, Priority.LOW, timeout=30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not allocator.engine.state_store.list_waits("w1"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert allocator.release("w1", "holder")
    waiter.join(timeout=30)
    assert result["got"] is not None and result["got"]["task_id"] == "waiter"
    assert allocator.engine.state_store.list_waits() == []
    assert allocator.allocate_or_wait("w1", "late", 2, 1, Priority.LOW, timeout=0.1) is None


def test_an_aged_request_preempts_what_its_declared_priority_could_not(url: str) -> None:
    with ResourceAllocator(state_url=url, aging_seconds=0.2) as allocator:
        allocator.register_agent(limits(cpu=2, tasks=4))
        allocator.allocate("w1", "medium-job", 2, 1, Priority.MEDIUM)
        assert allocator.allocate("w1", "low-job", 2, 1, Priority.LOW) is None
        got = allocator.allocate_or_wait("w1", "low-job", 2, 1, Priority.LOW, timeout=10)
        assert got is not None and got["preempted"] == ["medium-job"]


def test_a_deadlock_is_detected_and_resolved(allocator: ResourceAllocator) -> None:
    allocator.register_agent(limits("A", cpu=1, tasks=4))
    allocator.register_agent(limits("B", cpu=1, tasks=4))
    allocator.allocate("A", "t1", 1, 1, Priority.HIGH, preempt=False)
    allocator.allocate("B", "t2", 1, 1, Priority.LOW, preempt=False)
    # Each waits for the other's agent.
    results: dict[str, Any] = {}
    waiters = [threading.Thread(target=lambda t=t, a=a: results.update({t: allocator
               .allocate_or_wait(a, t, 1, 1, Priority.LOW, timeout=20, preempt=False)}))
               for t, a in (("t1", "B"), ("t2", "A"))]
    for thread in waiters:
        thread.start()
    deadline = time.monotonic() + 10
    while len(allocator.engine.state_store.list_waits()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [cycle] = allocator.detect_deadlocks()
    assert cycle["tasks"] == ["t1", "t2"] and sorted(cycle["agents"]) == ["A", "B"]
    assert cycle["victim"] == "t2"  # the lowest-priority member
    [handled] = allocator.resolve_deadlocks()
    assert handled["victim"] == "t2"
    waiters[0].join(timeout=30)
    assert results["t1"] is not None  # t1 got B once t2 gave it up
    allocator.release("A", "t1")  # t1 finishes: t2, re-queued, goes on
    allocator.release("B", "t1")
    waiters[1].join(timeout=30)
    assert results["t2"] is not None
    audit = allocator.engine.audit_store.list_audit(kind="deadlock.resolved")
    assert [a.subject_id for a in audit] == ["t2"]
    assert allocator.detect_deadlocks() == []


@pytest.mark.parametrize("bad", ["a:b", "*", "[x]"])
def test_bad_ids_are_refused(allocator: ResourceAllocator, bad: str) -> None:
    allocator.register_agent(limits())
    with pytest.raises(DefinitionError):
        allocator.allocate(bad, "t", 1, 1)
    with pytest.raises(DefinitionError):
        allocator.allocate("w1", bad, 1, 1)
    with pytest.raises(DefinitionError):
        allocator.release("w1", bad)
    with pytest.raises((DefinitionError, ValueError)):
        allocator.register_agent(ResourceLimits(agent_id=bad))


def test_spec_resource_limits_register_a_new_agent(allocator: ResourceAllocator) -> None:
    allocator.register_agent(ResourceLimits(agent_id="data-processor-001", cpu_cores=8.0,
                                            memory_mb=16384, max_tasks=4))
    agent = allocator.engine.state_store.get_agent("data-processor-001")
    assert agent is not None and agent.max_concurrent_tasks == 4
    assert agent.resource_limits is not None and agent.resource_limits.cpu_cores == 8.0


@pytest.mark.slow
def test_sixteen_threads_and_four_processes_race_on_one_agent(
        shared_store_and_url: tuple[Store, str]) -> None:
    """Repeatedly, 16 threads here and 4 processes each try to allocate 1 CPU on an agent
    with 6 CPUs: exactly 6 allocations succeed each round and Σ allocated never exceeds
    the limit (read back from the store by every contender after its attempt)."""
    _, url = shared_store_and_url
    rounds, cpu_limit = 5, 6
    with ResourceAllocator(state_url=url) as allocator:
        allocator.register_agent(limits("hot", cpu=cpu_limit, mem=10**6, tasks=100))
        ctx = multiprocessing.get_context("spawn")
        starts, results = [ctx.Queue() for _ in range(4)], ctx.Queue()
        procs = [ctx.Process(target=race_process, args=(url, p, rounds, starts[p], results))
                 for p in range(4)]
        for proc in procs:
            proc.start()
        for round_ in range(rounds):
            barrier = threading.Barrier(16 + 1)
            for start in starts:  # one queue each: no process can take another's turn
                start.put(round_)
            with ThreadPoolExecutor(max_workers=16) as pool:
                futures = [pool.submit(race_round, allocator, f"th{i}", round_, barrier)
                           for i in range(16)]
                barrier.wait()
                local = [f.result() for f in futures]
            remote = [results.get(timeout=120) for _ in procs]
            outcomes = local + remote
            assert sum(1 for won, _ in outcomes if won) == cpu_limit, outcomes
            assert max(seen for _, seen in outcomes) <= cpu_limit
            usage = allocator.get_agent_usage("hot")
            assert usage is not None and usage.cpu_used == cpu_limit
            for allocation in allocator.list_allocations("hot"):
                allocator.release("hot", allocation["task_id"])
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
