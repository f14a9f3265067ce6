"""Tasks that declare resources: allocated before they run, released on every end,
waiting visibly, preempted and re-queued, deadlocks resolved by the engine."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcrew_core import (
    Priority,
    ResourceAllocator,
    ResourceLimits,
    Task,
    TaskOrchestrator,
    Workflow,
)
from devcrew_core.engine.engine import run_sync
from devcrew_core.models import TaskResources

from engine_agents import read_ledger


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'devcrew.db'}"


@pytest.fixture
def orch(db_url: str) -> Iterator[TaskOrchestrator]:
    with TaskOrchestrator(state_url=db_url) as face:
        yield face


def worker(orch: TaskOrchestrator, agent_id: str = "w1", cpu: float = 2, tasks: int = 5,
           runner: str = "engine_agents:work") -> None:
    orch.register_agent(agent_id=agent_id, agent_type="Worker", capabilities=["work"],
                        max_concurrent_tasks=tasks, runner=runner,
                        resource_limits=ResourceLimits(cpu_cores=cpu, memory_mb=4096))


def spans(ledger: Path) -> list[tuple[float, float]]:
    entries = read_ledger(ledger)
    starts = {(e["task_id"], e["attempt"]): e["time"] for e in entries if e["event"] == "start"}
    ends = {(e["task_id"], e["attempt"]): e["time"] for e in entries if e["event"] == "end"}
    return [(starts[k], ends[k]) for k in starts if k in ends]


def test_resources_bound_parallelism_and_are_released(orch: TaskOrchestrator,
                                                     tmp_path: Path) -> None:
    """Four independent tasks needing 2 of the agent's 2 CPUs run one at a time, though
    the agent has 5 slots; afterwards nothing is allocated."""
    worker(orch, cpu=2, tasks=5)
    ledger = tmp_path / "ledger.jsonl"
    orch.create_workflow(Workflow(workflow_id="heavy", tasks=[
        Task(task_id=f"t{i}", agent_type="Worker", timeout=30,
             resources=TaskResources(cpu_cores=2, memory_mb=100),
             input_data={"ledger": str(ledger), "sleep": 0.1}) for i in range(4)]))
    result = orch.execute_workflow("heavy")
    assert result["status"] == "completed", result
    intervals = sorted(spans(ledger))
    assert len(intervals) == 4
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(intervals)), "never two at once"
    with ResourceAllocator(engine=orch.engine) as allocator:
        assert allocator.list_allocations() == []
        usage = allocator.get_agent_usage("w1")
        assert usage is not None and usage.cpu_used == 0 and usage.active_tasks == 0
    audit = orch.engine.audit_store.list_audit(kind="allocation")
    assert len(audit) == 4


def test_defaults_fill_what_resources_leave_out(db_url: str) -> None:
    from devcrew_core.config import load_settings

    settings = load_settings(state_url=db_url, default_cpu_cores=1.5, default_memory_mb=64)
    with TaskOrchestrator(settings=settings) as face:
        worker(face, cpu=4)
        face.create_workflow(Workflow(workflow_id="defaults", tasks=[
            Task(task_id="t", agent_type="Worker", resources=TaskResources(disk_mb=0),
                 input_data={"sleep": 0.01})]))
        assert face.execute_workflow("defaults")["status"] == "completed"
        [record] = face.engine.audit_store.list_audit(kind="allocation")
        assert (record.data["cpu_cores"], record.data["memory_mb"]) == (1.5, 64)


def test_a_task_waits_visibly_for_resources_then_fails_at_its_timeout(
        orch: TaskOrchestrator) -> None:
    worker(orch, cpu=2)
    orch.create_workflow(Workflow(workflow_id="too-big", tasks=[
        Task(task_id="t", agent_type="Worker", timeout=0.6,
             resources=TaskResources(cpu_cores=3, memory_mb=1))]))
    task = orch.execute_workflow("too-big")["tasks"][0]
    assert task["status"] == "failed"
    assert "waiting for resources on agent w1 (3 cores, 1 MB)" in task["error"]
    assert orch.engine.state_store.list_waits() == []  # the wait record is gone


def test_a_preempted_task_is_requeued_and_completes(orch: TaskOrchestrator, db_url: str,
                                                    tmp_path: Path) -> None:
    worker(orch, cpu=2, runner="engine_agents:async_work")
    ledger = tmp_path / "ledger.jsonl"
    orch.create_workflow(Workflow(workflow_id="bumped", tasks=[
        Task(task_id="batch", agent_type="Worker", priority="low", timeout=60,
             resources=TaskResources(cpu_cores=2, memory_mb=1),
             input_data={"ledger": str(ledger), "sleep": 1.0})]))
    run = orch.engine.create_run("bumped")
    done: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: done.update(run=run_sync(orch.engine.execute_run(run.run_id))))
    runner.start()
    with ResourceAllocator(state_url=db_url) as allocator:
        deadline = time.monotonic() + 20
        while not allocator.list_allocations("w1"):  # the batch task is running
            assert time.monotonic() < deadline
            time.sleep(0.02)
        urgent = allocator.allocate("w1", "urgent", 2, 1, Priority.CRITICAL)
        assert urgent is not None and len(urgent["preempted"]) == 1

        def requeued() -> bool:  # the engine noticed: attempt 1 stopped, task re-queued
            error = orch.get_workflow_status(run.run_id)["tasks"][0]["error"] or ""
            return "preempted by urgent" in error or "waiting for resources" in error

        deadline = time.monotonic() + 30
        while not requeued():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        allocator.release("w1", "urgent")
    runner.join(timeout=60)
    assert done["run"].status.value == "completed"
    entries = read_ledger(ledger)
    # Attempt 1 was stopped mid-sleep (it never ended); attempt 2 ran to the end.
    assert [(e["attempt"], e["event"]) for e in entries] == [
        (1, "start"), (2, "start"), (2, "end")]
    preempted = orch.engine.audit_store.list_audit(kind="allocation.preempted")
    assert [a.data["preempted_by"] for a in preempted] == ["urgent"]
    status = orch.get_workflow_status(run.run_id)
    assert status["tasks"][0]["attempt"] == 2


def test_the_engine_resolves_a_deadlock_involving_its_task(orch: TaskOrchestrator,
                                                           db_url: str) -> None:
    """The engine's task T holds A and its runner waits for B; an outside task X holds B
    and waits for A. The engine finds the cycle and preempts X (lower priority)."""
    orch.register_agent(agent_id="A", agent_type="Worker", capabilities=["work"],
                        runner="engine_agents:grab_more",
                        resource_limits=ResourceLimits(cpu_cores=1, memory_mb=10))
    with ResourceAllocator(state_url=db_url) as allocator:
        allocator.register_agent(ResourceLimits(agent_id="B", cpu_cores=1, memory_mb=10))
        assert allocator.allocate("B", "X", 1, 1, Priority.LOW) is not None
        orch.create_workflow(Workflow(workflow_id="tangle", tasks=[
            Task(task_id="T", agent_type="Worker", priority="high", timeout=60,
                 resources=TaskResources(cpu_cores=1, memory_mb=1),
                 input_data={"state_url": db_url, "agent": "B"})]))
        run = orch.engine.create_run("tangle")
        outside: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: outside.update(got=allocator.allocate_or_wait(
            "A", "X", 1, 1, Priority.LOW, timeout=60, preempt=False)))
        result: dict[str, Any] = {}
        runner = threading.Thread(
            target=lambda: result.update(run=run_sync(orch.engine.execute_run(run.run_id))))
        runner.start()
        deadline = time.monotonic() + 20
        while not allocator.list_allocations("A"):  # T holds A
            assert time.monotonic() < deadline
            time.sleep(0.02)
        waiter.start()
        runner.join(timeout=60)
        waiter.join(timeout=60)
    assert result["run"].status.value == "completed"
    assert orch.get_workflow_status(run.run_id)["results"]["T"] == {"got": True}
    assert outside["got"] is not None  # X went on once T had finished
    resolved = orch.engine.audit_store.list_audit(kind="deadlock.resolved")
    assert [a.subject_id for a in resolved] == ["X"]
    events = orch.engine.state_store.list_events(kind="deadlock.resolved")
    assert events and events[0].data["victim"] == "X"
