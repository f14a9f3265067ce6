"""The Store contract, run unchanged against every backend in ``store_backends.BACKENDS``."""

from __future__ import annotations

import time

import pytest

from devcrew_core.errors import DefinitionError, NotFoundError, StoreError, UsageError
from devcrew_core.models import Priority, ResourceLimits
from devcrew_core.stores.base import Store
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
    RunStatus,
    TaskState,
    TaskStatus,
    WaitRecord,
    WorkflowDefinition,
)


def agent(agent_id: str = "a1", agent_type: str = "Backend-Engineer",
          capabilities: tuple[str, ...] = ("python", "testing"), max_tasks: int = 3,
          limits: ResourceLimits | None = None) -> AgentRecord:
    return AgentRecord(agent_id=agent_id, agent_type=agent_type, capabilities=list(capabilities),
                       max_concurrent_tasks=max_tasks, resource_limits=limits)


# -- agents -------------------------------------------------------------------------------
def test_agent_round_trip_and_missing(store: Store) -> None:
    store.put_agent(agent(limits=ResourceLimits(cpu_cores=4, memory_mb=1024)))
    got = store.get_agent("a1")
    assert got is not None
    assert got.agent_type == "Backend-Engineer"
    assert got.capabilities == ["python", "testing"]
    assert got.resource_limits is not None and got.resource_limits.cpu_cores == 4
    assert got.current_load == 0 and got.running_tasks == []
    assert store.get_agent("nobody") is None


def test_list_agents_ordered_and_filtered_by_type(store: Store) -> None:
    store.put_agent(agent("b", agent_type="QA-Tester"))
    store.put_agent(agent("c"))
    store.put_agent(agent("a"))
    assert [a.agent_id for a in store.list_agents()] == ["a", "b", "c"]
    assert [a.agent_id for a in store.list_agents("QA-Tester")] == ["b"]
    assert store.list_agents("Nobody") == []


def test_find_agents_requires_every_capability(store: Store) -> None:
    store.put_agent(agent("full", capabilities=("python", "api-development", "testing")))
    store.put_agent(agent("partial", capabilities=("python", "testing")))
    store.put_agent(agent("qa", agent_type="QA-Tester", capabilities=("python", "api-development")))
    found = store.find_agents(["python", "api-development"])
    assert [a.agent_id for a in found] == ["full", "qa"]
    typed = store.find_agents(["python", "api-development"], agent_type="Backend-Engineer")
    assert [a.agent_id for a in typed] == ["full"]
    assert store.find_agents(["cobol"]) == []
    assert [a.agent_id for a in store.find_agents([], agent_type="QA-Tester")] == ["qa"]


def test_reregistering_updates_index_and_keeps_load(store: Store) -> None:
    store.put_agent(agent("a1", capabilities=("python",)))
    assert store.acquire_slot("a1", "t1").acquired
    store.put_agent(agent("a1", capabilities=("rust",), max_tasks=5))
    assert store.find_agents(["python"]) == []
    assert [a.agent_id for a in store.find_agents(["rust"])] == ["a1"]
    got = store.get_agent("a1")
    assert got is not None
    assert got.current_load == 1 and got.running_tasks == ["t1"]
    assert got.max_concurrent_tasks == 5


def test_update_agent_allows_only_mutable_fields(store: Store) -> None:
    store.put_agent(agent())
    updated = store.update_agent("a1", {"available": False, "expires_at": 123.0})
    assert updated is not None and updated.available is False and updated.expires_at == 123.0
    stored = store.get_agent("a1")
    assert stored is not None and stored.available is False
    with pytest.raises(DefinitionError, match="agent_type"):
        store.update_agent("a1", {"agent_type": "Other"})
    assert store.update_agent("nobody", {"available": True}) is None


def test_delete_agent_removes_slots_and_index(store: Store) -> None:
    store.put_agent(agent())
    store.acquire_slot("a1", "t1")
    removed = store.delete_agent("a1")
    assert removed is not None and removed.running_tasks == ["t1"]
    assert store.get_agent("a1") is None
    assert store.find_agents(["python"]) == []
    assert store.delete_agent("a1") is None
    store.put_agent(agent())
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 0


def test_delete_agent_if_expired_keeps_an_agent_a_heartbeat_renewed(store: Store) -> None:
    store.put_agent(agent("ttl").model_copy(update={"expires_at": 100.0}))
    store.put_agent(agent("forever"))  # no TTL: never expired
    store.acquire_slot("ttl", "t1")
    # Seen expired at 150, but a heartbeat moved its deadline before the removal.
    store.update_agent("ttl", {"expires_at": 200.0})
    assert store.delete_agent("ttl", expired_by=150.0) is None
    assert store.get_agent("ttl") is not None
    assert store.delete_agent("forever", expired_by=1e12) is None
    assert store.get_agent("forever") is not None
    assert store.delete_agent("nobody", expired_by=150.0) is None
    removed = store.delete_agent("ttl", expired_by=200.0)  # the deadline itself: expired
    assert removed is not None and removed.running_tasks == ["t1"]
    assert store.get_agent("ttl") is None


def test_limits_are_exact_and_a_release_answers_with_what_was_stored(store: Store) -> None:
    """0.1 + 0.2 fills a 0.3 limit (float sums within the tolerance, or exact ones);
    an existing allocation is unchanged by a second allocate; the object allocate
    returned is the caller's: changing it changes neither what is stored nor what the
    release answers."""
    store.put_agent(agent(max_tasks=5, limits=ResourceLimits(cpu_cores=0.3, memory_mb=100)))
    now = 1000.0
    granted = {task: store.allocate(Allocation(agent_id="a1", task_id=task, cpu_cores=cpu),
                                    now)
               for task, cpu in (("t1", 0.1), ("t2", 0.2))}
    assert None not in granted.values()
    assert store.allocate(Allocation(agent_id="a1", task_id="t3", cpu_cores=1e-6),
                          now) is None
    again = store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=0.2), now)
    assert again is not None and again.cpu_cores == 0.1, "existing allocation unchanged"
    first = granted["t1"]
    assert first is not None
    first.cpu_cores = 0.05
    gone = store.release_allocation("a1", "t1")
    assert gone is not None and gone.cpu_cores == 0.1 and gone is not first
    assert store.release_allocation("a1", "t1") is None


def test_release_answers_for_the_ids_asked_when_the_granted_object_changed(
        store: Store) -> None:
    """The allocation allocate returned is the caller's object: changing its agent must
    not make a release of (agent, task) remove, or answer with, another agent's."""
    for agent_id in ("a1", "a2"):
        store.put_agent(agent(agent_id))
    got = store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1.0), 5.0)
    assert got is not None
    got.agent_id = "a2"
    assert store.allocate(got, 5.0) is not None  # the same fields, on a2
    gone = store.release_allocation("a1", "t1")
    assert gone is not None and (gone.agent_id, gone.task_id) == ("a1", "t1")
    assert [(a.agent_id, a.task_id) for a in store.list_allocations()] == [("a2", "t1")]


@pytest.mark.parametrize("field", ["agent_id", "task_id"])
def test_allocate_of_an_unvalidated_allocation_with_a_bad_id_stores_nothing(
        store: Store, field: str) -> None:
    """An Allocation built without validation (model_construct) with an ID outside the
    alphabet is refused by name before anything is written."""
    store.put_agent(agent())
    values: dict[str, object] = {"agent_id": "a1", "task_id": "t1", "cpu_cores": 1.0,
                                 "created_at": 1.0, field: "x'; --"}
    with pytest.raises(DefinitionError, match=field):
        store.allocate(Allocation.model_construct(**values), 5.0)
    assert store.list_allocations() == []
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 0


@pytest.mark.parametrize(("agent_id", "task_id", "field"), [
    ("a1", "", "task_id"),              # SQLite's totals row has task ID ''
    ("a1", "x'; --", "task_id"),
    ("a1:t1", "t1", "agent_id"),
])
def test_release_allocation_with_a_bad_id_is_refused_by_name(
        store: Store, agent_id: str, task_id: str, field: str) -> None:
    store.put_agent(agent())
    assert store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1.0), 5.0)
    with pytest.raises(DefinitionError, match=field):
        store.release_allocation(agent_id, task_id)
    assert [a.task_id for a in store.list_allocations()] == ["t1"]
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 1


class _IdText(str):
    """A str subclass: equal to, and hashed as, the plain str of its characters."""


def test_release_allocation_with_str_subclass_ids_releases_the_allocation(
        store: Store) -> None:
    store.put_agent(agent())
    granted = store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1.0), 5.0)
    assert granted is not None
    gone = store.release_allocation(_IdText("a1"), _IdText("t1"))
    assert gone == granted
    assert store.release_allocation("a1", "t1") is None
    assert store.list_allocations() == []
    with pytest.raises(DefinitionError, match="task_id"):
        store.release_allocation(_IdText("a1"), _IdText("t:1"))


def test_slots_respect_max_concurrent_tasks(store: Store) -> None:
    store.put_agent(agent(max_tasks=2))
    first = store.acquire_slot("a1", "t1")
    assert first.acquired and not first.already_held and first.current_load == 1
    assert store.acquire_slot("a1", "t2").current_load == 2
    refused = store.acquire_slot("a1", "t3")
    assert not refused.acquired and refused.current_load == 2
    again = store.acquire_slot("a1", "t1")
    assert again.acquired and again.already_held and again.current_load == 2
    got = store.get_agent("a1")
    assert got is not None and sorted(got.running_tasks) == ["t1", "t2"]


def test_release_is_idempotent(store: Store) -> None:
    store.put_agent(agent(max_tasks=1))
    store.acquire_slot("a1", "t1")
    assert store.release_slot("a1", "t1") is True
    assert store.release_slot("a1", "t1") is False
    assert store.release_slot("a1", "never") is False
    assert store.acquire_slot("a1", "t2").acquired


def test_slot_errors(store: Store) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        store.acquire_slot("nobody", "t1")
    store.put_agent(agent())
    with pytest.raises(DefinitionError, match="task_id"):
        store.acquire_slot("a1", "bad:id")


# -- allocations and reservations -------------------------------------------------------------
LIMITED = ResourceLimits(cpu_cores=4, memory_mb=1000)


def alloc(task_id: str, cpu: float, mem: float, **extra: object) -> Allocation:
    return Allocation(agent_id="a1", task_id=task_id, cpu_cores=cpu, memory_mb=mem, **extra)


def test_allocate_within_limits_only(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    assert store.allocate(alloc("t1", 3, 500), now) is not None
    assert store.allocate(alloc("t2", 2, 100), now) is None, "cpu would exceed 4"
    assert store.allocate(alloc("t3", 1, 600), now) is None, "memory would exceed 1000"
    assert store.allocate(alloc("t4", 1, 500), now) is not None
    assert [a.task_id for a in store.list_allocations("a1")] == ["t1", "t4"]


def test_allocate_is_idempotent_per_task(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    first = store.allocate(alloc("t1", 3, 500), time.time())
    second = store.allocate(alloc("t1", 3, 500), time.time())
    assert first is not None and second is not None
    assert second.cpu_cores == 3
    assert len(store.list_allocations()) == 1


def test_float_capacity_is_not_lost_to_rounding(store: Store) -> None:
    store.put_agent(agent(limits=ResourceLimits(cpu_cores=0.3, memory_mb=10)))
    now = time.time()
    assert store.allocate(alloc("t1", 0.1, 0), now) is not None
    assert store.allocate(alloc("t2", 0.2, 0), now) is not None
    assert store.allocate(alloc("t3", 0.01, 0), now) is None


def test_release_allocation_frees_capacity(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    store.allocate(alloc("t1", 4, 100), now)
    released = store.release_allocation("a1", "t1")
    assert released is not None and released.cpu_cores == 4
    assert store.release_allocation("a1", "t1") is None
    assert store.allocate(alloc("t2", 4, 100), now) is not None


def test_agent_without_limits_is_unbounded(store: Store) -> None:
    store.put_agent(agent())
    assert store.allocate(alloc("t1", 10_000, 10**9), time.time()) is not None


def test_allocate_unknown_agent(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.allocate(alloc("t1", 1, 1), time.time())


def test_an_allocation_holds_its_task_slot(store: Store) -> None:
    store.put_agent(agent(max_tasks=1, limits=LIMITED))
    now = time.time()
    first = store.allocate(alloc("t1", 1, 100), now)
    assert first is not None and first.holds_slot
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 1 and a1.running_tasks == ["t1"]
    assert store.allocate(alloc("t2", 1, 100), now) is None, "no free slot"
    released = store.release_allocation("a1", "t1")
    assert released is not None and released.holds_slot
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 0
    assert store.allocate(alloc("t2", 1, 100), now) is not None


def test_an_allocation_for_a_task_holding_its_slot_leaves_the_slot_alone(
        store: Store) -> None:
    store.put_agent(agent(max_tasks=1, limits=LIMITED))
    assert store.acquire_slot("a1", "t1").acquired
    got = store.allocate(alloc("t1", 1, 100), time.time())
    assert got is not None and not got.holds_slot
    store.release_allocation("a1", "t1")
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.running_tasks == ["t1"], "the holder frees its own slot"


def test_changing_limits_keeps_allocations(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    store.allocate(alloc("t1", 3, 500), now)
    store.put_agent(agent(limits=ResourceLimits(cpu_cores=2, memory_mb=1000)))
    assert [a.task_id for a in store.list_allocations("a1")] == ["t1"]
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 1
    assert store.allocate(alloc("t2", 1, 1), now) is None, "over the new limit already"


def test_preempt_and_allocate_is_all_or_nothing(store: Store) -> None:
    store.put_agent(agent(max_tasks=3, limits=LIMITED))
    now = time.time()
    store.allocate(alloc("low1", 2, 100, priority=Priority.LOW), now)
    store.allocate(alloc("low2", 1, 100, priority=Priority.LOW), now)
    store.allocate(alloc("mid", 1, 100, priority=Priority.MEDIUM), now)
    urgent = alloc("urgent", 3, 100, priority=Priority.CRITICAL)
    assert store.allocate(urgent, now) is None
    # Not enough freed: nothing happens.
    assert store.preempt_and_allocate(urgent, ["low2"], now) is None
    # A victim that is gone: nothing happens.
    assert store.preempt_and_allocate(urgent, ["low1", "nope"], now) is None
    assert sorted(a.task_id for a in store.list_allocations("a1")) == ["low1", "low2", "mid"]
    got = store.preempt_and_allocate(urgent, ["low1", "low2"], now)
    assert got is not None and got.holds_slot
    assert sorted(a.task_id for a in store.list_allocations("a1")) == ["mid", "urgent"]
    a1 = store.get_agent("a1")
    assert a1 is not None and sorted(a1.running_tasks) == ["mid", "urgent"]


def test_preemption_also_frees_the_slot_it_needs(store: Store) -> None:
    store.put_agent(agent(max_tasks=1, limits=LIMITED))
    now = time.time()
    store.allocate(alloc("low", 1, 100, priority=Priority.LOW), now)
    high = alloc("high", 1, 100, priority=Priority.HIGH)
    assert store.allocate(high, now) is None, "the only slot is taken"
    got = store.preempt_and_allocate(high, ["low"], now)
    assert got is not None
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.running_tasks == ["high"]


def test_a_victim_whose_slot_is_gone_frees_no_slot(store: Store) -> None:
    store.put_agent(agent(max_tasks=1, limits=LIMITED))
    now = time.time()
    store.allocate(alloc("low", 1, 100, priority=Priority.LOW), now)
    store.release_slot("a1", "low")  # its slot went back on its own
    assert store.acquire_slot("a1", "other").acquired  # and another task took it
    high = alloc("high", 1, 100, priority=Priority.HIGH)
    assert store.preempt_and_allocate(high, ["low"], now) is None, "would over-commit"
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 1 and a1.running_tasks == ["other"]


def test_waits_are_recorded_per_agent_and_task(store: Store) -> None:
    store.put_wait(WaitRecord(agent_id="a1", task_id="t1", cpu_cores=1, since=2.0))
    store.put_wait(WaitRecord(agent_id="a2", task_id="t2", priority=Priority.HIGH, since=1.0))
    store.put_wait(WaitRecord(agent_id="a1", task_id="t1", cpu_cores=2, since=3.0))  # refresh
    waits = store.list_waits()
    assert [(w.agent_id, w.task_id) for w in waits] == [("a2", "t2"), ("a1", "t1")]
    assert waits[1].cpu_cores == 2 and waits[0].priority is Priority.HIGH
    assert [w.task_id for w in store.list_waits("a1")] == ["t1"]
    assert store.delete_wait("a1", "t1") is True
    assert store.delete_wait("a1", "t1") is False
    assert [w.task_id for w in store.list_waits()] == ["t2"]
    with pytest.raises(DefinitionError):
        store.put_wait(WaitRecord.model_construct(agent_id="a1", task_id="x:y", since=1.0))


def test_reservation_holds_capacity_until_expiry(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    res = Reservation(reservation_id="r1", agent_id="a1", cpu_cores=3, memory_mb=100,
                      expires_at=now + 60)
    assert store.reserve(res, now)
    assert store.allocate(alloc("t1", 2, 100), now) is None, "reserved capacity is held"
    assert store.allocate(alloc("t1", 1, 100), now) is not None
    # Once the reservation has expired it holds nothing.
    later = now + 61
    assert store.allocate(alloc("t2", 3, 100), later) is not None
    got = store.get_reservation("r1")
    assert got is not None and got.cpu_cores == 3


def test_reserve_refuses_when_full_and_duplicate_ids(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    store.allocate(alloc("t1", 3, 100), now)
    big = Reservation(reservation_id="r1", agent_id="a1", cpu_cores=2, expires_at=now + 60)
    assert store.reserve(big, now) is False
    small = Reservation(reservation_id="r2", agent_id="a1", cpu_cores=1, expires_at=now + 60)
    assert store.reserve(small, now) is True
    with pytest.raises(StoreError, match="r2"):
        store.reserve(small, now)


def test_redeeming_a_reservation_converts_its_capacity(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    store.reserve(Reservation(reservation_id="r1", agent_id="a1", task_id="t1", cpu_cores=4,
                              memory_mb=100, expires_at=now + 60), now)
    assert store.allocate(alloc("other", 1, 1), now) is None
    redeemed = store.allocate(alloc("t1", 4, 100, reservation_id="r1"), now)
    assert redeemed is not None
    assert store.get_reservation("r1") is None, "a redeemed reservation is consumed"
    assert store.allocate(alloc("other", 1, 1), now) is None, "the allocation now holds it"


def test_expire_and_cancel_reservations(store: Store) -> None:
    store.put_agent(agent(limits=LIMITED))
    now = time.time()
    for rid, ttl in (("old", 1), ("new", 100)):
        store.reserve(Reservation(reservation_id=rid, agent_id="a1", cpu_cores=1,
                                  expires_at=now + ttl), now)
    gone = store.expire_reservations(now + 10)
    assert [r.reservation_id for r in gone] == ["old"]
    assert [r.reservation_id for r in store.list_reservations("a1")] == ["new"]
    assert store.cancel_reservation("new") is True
    assert store.cancel_reservation("new") is False
    assert store.list_reservations() == []


# -- workflows, runs, task states -----------------------------------------------------------------
def test_workflow_definitions(store: Store) -> None:
    store.put_workflow(WorkflowDefinition(workflow_id="wf-b", definition={"name": "B"}))
    store.put_workflow(WorkflowDefinition(workflow_id="wf-a", definition={"name": "A"}))
    store.put_workflow(WorkflowDefinition(workflow_id="wf-a", definition={"name": "A2"}))
    assert [w.workflow_id for w in store.list_workflows()] == ["wf-a", "wf-b"]
    got = store.get_workflow("wf-a")
    assert got is not None and got.definition == {"name": "A2"}
    assert store.delete_workflow("wf-a") is True
    assert store.delete_workflow("wf-a") is False
    assert store.get_workflow("wf-a") is None


def test_runs_create_update_list(store: Store) -> None:
    store.create_run(RunRecord(run_id="r1", workflow_id="wf", created_at=1.0))
    store.create_run(RunRecord(run_id="r2", workflow_id="wf", created_at=2.0))
    store.create_run(RunRecord(run_id="r3", workflow_id="other", created_at=3.0))
    with pytest.raises(StoreError, match="r1"):
        store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    updated = store.update_run("r1", {"status": "running", "started_at": 5.0})
    assert updated is not None and updated.status is RunStatus.RUNNING
    got = store.get_run("r1")
    assert got is not None and got.started_at == 5.0
    assert [r.run_id for r in store.list_runs(workflow_id="wf")] == ["r1", "r2"]
    assert [r.run_id for r in store.list_runs(status="running")] == ["r1"]
    assert [r.run_id for r in store.list_runs()] == ["r1", "r2", "r3"]
    with pytest.raises(DefinitionError):
        store.update_run("r1", {"workflow_id": "x"})
    assert store.update_run("nope", {"status": "failed"}) is None
    assert store.get_run("nope") is None


def test_task_states_batch_upsert(store: Store) -> None:
    store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    store.put_task_states([TaskState(run_id="r1", task_id=f"t{i}") for i in range(3)])
    store.put_task_states([
        TaskState(run_id="r1", task_id="t1", status=TaskStatus.COMPLETED, attempt=2,
                  agent_id="a1", output={"ok": True}),
    ])
    states = store.get_task_states("r1")
    assert [s.task_id for s in states] == ["t0", "t1", "t2"]
    assert states[1].status is TaskStatus.COMPLETED and states[1].output == {"ok": True}
    assert states[1].attempt == 2 and states[0].status is TaskStatus.PENDING
    store.put_task_states([])
    assert store.get_task_states("other") == []


# -- handoffs ------------------------------------------------------------------------------
def test_handoffs_and_contexts(store: Store) -> None:
    h = HandoffRecord(handoff_id="h1", workflow_id="wf", source_agent_id="a1",
                      source_agent_type="Backend-Engineer", target_agent_type="QA-Tester")
    store.put_handoff(h, {"state": {"tests_passing": True}, "files_created": ["a.py"]})
    store.put_handoff(h.model_copy(update={"handoff_id": "h2", "workflow_id": "other"}), None)
    got = store.get_handoff("h1")
    assert got is not None and got.target_agent_type == "QA-Tester"
    assert store.get_handoff_context("h1") == {"state": {"tests_passing": True},
                                              "files_created": ["a.py"]}
    assert store.get_handoff_context("h2") is None
    updated = store.update_handoff("h1", {"status": "rolled_back", "result": {"reason": "x"}})
    assert updated is not None and updated.status == "rolled_back"
    assert [x.handoff_id for x in store.list_handoffs("wf")] == ["h1"]
    assert len(store.list_handoffs()) == 2
    with pytest.raises(DefinitionError):
        store.update_handoff("h1", {"workflow_id": "other"})
    assert store.get_handoff("nope") is None and store.update_handoff("nope", {}) is None


# -- audit and events ----------------------------------------------------------------------------
def test_audit_is_append_only_and_ordered(store: Store) -> None:
    seqs = store.append_audit([
        AuditRecord(kind="delegation", workflow_id="wf", subject_id="t1", data={"agent": "a1"}),
        AuditRecord(kind="handoff", workflow_id="wf", subject_id="h1"),
        AuditRecord(kind="delegation", workflow_id="other", subject_id="t9"),
    ])
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    more = store.append_audit([AuditRecord(kind="delegation", workflow_id="wf")])
    assert more[0] > seqs[-1]
    assert [r.seq for r in store.list_audit()] == [*seqs, *more]
    assert [r.subject_id for r in store.list_audit(workflow_id="wf", kind="delegation")] == [
        "t1", None]
    assert [r.seq for r in store.list_audit(after=seqs[1])] == [seqs[2], more[0]]
    assert len(store.list_audit(limit=2)) == 2
    assert store.list_audit()[0].data == {"agent": "a1"}
    assert not hasattr(store, "delete_audit") and not hasattr(store, "update_audit")


def test_events_poll_after_seq(store: Store) -> None:
    first = store.publish_events([Event(kind="agent.registered", data={"agent_id": "a1"})])
    second = store.publish_events([Event(kind="task.failed"), Event(kind="agent.registered")])
    assert first[0] < second[0] < second[1]
    assert [e.kind for e in store.list_events(after=first[0])] == [
        "task.failed", "agent.registered"]
    assert [e.seq for e in store.list_events(kind="agent.registered")] == [first[0], second[1]]
    assert store.list_events(after=second[1]) == []
    assert store.ping() is True


def test_cancel_flag_is_readable_on_its_own(store: Store) -> None:
    store.create_run(RunRecord(run_id="r1", workflow_id="wf", data={"workflow": {"tasks": []}}))
    assert store.cancel_requested("r1") is False
    store.update_run("r1", {"cancel_requested": True})
    assert store.cancel_requested("r1") is True
    assert store.cancel_requested("nope") is None
    run = store.get_run("r1")
    assert run is not None and run.data == {"workflow": {"tasks": []}}


def test_slots_in_batches(store: Store) -> None:
    store.put_agent(agent(max_tasks=3))
    store.acquire_slot("a1", "t0")
    results = store.acquire_slots("a1", ["t0", "t1", "t2", "t3"])
    assert [(r.acquired, r.already_held, r.current_load) for r in results] == [
        (True, True, 1), (True, False, 2), (True, False, 3), (False, False, 3)]
    assert store.release_slots([("a1", "t1"), ("a1", "t1"), ("a1", "nope"), ("a1", "t2")]) == [
        True, False, False, True]
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 1 and got.running_tasks == ["t0"]
    with pytest.raises(NotFoundError):
        store.acquire_slots("nobody", ["t1"])


def test_transfer_slots_hands_a_slot_on_without_changing_the_load(store: Store) -> None:
    store.put_agent(agent(max_tasks=2))
    store.acquire_slots("a1", ["t1", "t2"])
    assert store.transfer_slots([("a1", "t1", "t3")]) == [True]
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 2
    assert sorted(got.running_tasks) == ["t2", "t3"]
    # The agent is full throughout: nobody else could have taken the slot.
    assert not store.acquire_slot("a1", "other").acquired
    # Handing a slot to a task that holds one already frees the giver's slot.
    assert store.transfer_slots([("a1", "t3", "t2")]) == [True]
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 1 and got.running_tasks == ["t2"]
    # A slot that is not held cannot be handed on; moves apply in order.
    assert store.transfer_slots([("a1", "t1", "t4"), ("a1", "t2", "t5"),
                                 ("a1", "t5", "t6"), ("nobody", "t6", "t7")]) == [
        False, True, True, False]
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 1 and got.running_tasks == ["t6"]
    assert store.release_slot("a1", "t6") is True
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 0
    with pytest.raises(DefinitionError):
        store.transfer_slots([("a1", "t6", "bad:id")])


def test_snapshots_are_immutable_documents(store: Store) -> None:
    assert store.get_snapshot("wf-abc") is None
    store.put_snapshot("wf-abc", '{"tasks": [1]}')
    store.put_snapshot("wf-abc", '{"tasks": [2]}')  # first one wins: it is content-addressed
    assert store.get_snapshot("wf-abc") == '{"tasks": [1]}'
    with pytest.raises(DefinitionError):
        store.put_snapshot("a:b", "{}")


def delegation(task_id: str, agent_id: str = "a1", at: float = 1.0) -> DelegationRecord:
    return DelegationRecord(task_id=task_id, agent_id=agent_id, agent_type="Backend-Engineer",
                            task_type="api", required_capabilities=["python"], score=0.9,
                            effective_score=0.8, context={"k": [1]}, delegated_at=at)


def test_delegate_takes_a_slot_and_records_who_got_the_task(store: Store) -> None:
    store.put_agent(agent(max_tasks=1))
    assert store.delegate(delegation("t1"), AuditRecord(kind="delegation", subject_id="t1"))
    # Full: refused, and nothing is recorded for the refused task.
    refused = store.delegate(delegation("t2", at=2.0),
                             AuditRecord(kind="delegation", subject_id="t2"))
    assert not refused.acquired and refused.current_load == 1
    assert store.get_delegation("t2") is None
    assert [a.subject_id for a in store.list_audit(kind="delegation")] == ["t1"]
    got = store.get_delegation("t1")
    assert got is not None and got.status is DelegationStatus.ACTIVE
    assert got.context == {"k": [1]} and got.score == 0.9
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.running_tasks == ["t1"]
    with pytest.raises(NotFoundError):
        store.delegate(delegation("t3", agent_id="nobody"),
                       AuditRecord(kind="delegation", subject_id="t3"))
    # Nothing is kept of a delegation to an unknown agent: the task can go elsewhere.
    assert store.get_delegation("t3") is None
    assert [a.subject_id for a in store.list_audit(kind="delegation")] == ["t1"]
    store.complete_delegation("a1", "t1", 3.0)
    assert store.delegate(delegation("t3")).acquired


def test_complete_delegation_frees_the_slot_exactly_once(store: Store) -> None:
    store.put_agent(agent(max_tasks=1))
    store.delegate(delegation("t1"))
    assert store.complete_delegation("a2", "t1", 5.0) == (None, False)  # wrong agent
    assert store.complete_delegation("a1", "nope", 5.0) == (None, False)
    done, now = store.complete_delegation("a1", "t1", 5.0,
                                          AuditRecord(kind="completion", subject_id="t1"))
    assert now and done is not None
    assert done.status is DelegationStatus.COMPLETED and done.completed_at == 5.0
    again, now = store.complete_delegation("a1", "t1", 6.0,
                                           AuditRecord(kind="completion", subject_id="t1"))
    assert not now and again is not None and again.completed_at == 5.0
    assert len(store.list_audit(kind="completion")) == 1  # only the call that completed it
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 0
    # Exactly once: a second delegation on the freed slot is not undone by a repeat.
    assert store.delegate(delegation("t2", at=2.0)).acquired
    store.complete_delegation("a1", "t1", 7.0)
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 1


def test_an_active_task_cannot_be_delegated_to_a_second_agent(store: Store) -> None:
    store.put_agent(agent("a1", max_tasks=2))
    store.put_agent(agent("a2", max_tasks=2))
    store.delegate(delegation("t1", "a1"))
    with pytest.raises(UsageError, match="already delegated to agent 'a1'"):
        store.delegate(delegation("t1", "a2"))
    a2 = store.get_agent("a2")
    assert a2 is not None and a2.current_load == 0
    # Again to the same agent: the slot it holds is kept, not doubled.
    assert store.delegate(delegation("t1", "a1", at=2.0)).already_held
    a1 = store.get_agent("a1")
    assert a1 is not None and a1.current_load == 1
    # Once completed, the task may go anywhere.
    store.complete_delegation("a1", "t1", 3.0)
    assert store.delegate(delegation("t1", "a2", at=4.0)).acquired


def test_list_delegations_filters_and_orders(store: Store) -> None:
    store.put_agent(agent("a1", max_tasks=5))
    store.put_agent(agent("a2", max_tasks=5))
    store.delegate(delegation("t3", "a1", at=3.0))
    store.delegate(delegation("t1", "a2", at=1.0))
    store.delegate(delegation("t2", "a1", at=2.0))
    store.complete_delegation("a1", "t2", 4.0)
    assert [d.task_id for d in store.list_delegations()] == ["t1", "t2", "t3"]
    assert [d.task_id for d in store.list_delegations(agent_id="a1")] == ["t2", "t3"]
    assert [d.task_id for d in store.list_delegations(status="active")] == ["t1", "t3"]
    assert [d.task_id for d in store.list_delegations("a1", "completed")] == ["t2"]


def test_write_batch_writes_states_audit_and_events(store: Store) -> None:
    store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    store.write_batch([TaskState(run_id="r1", task_id="t1", status=TaskStatus.RUNNING)],
                      [AuditRecord(kind="delegation", workflow_id="wf", subject_id="t1")],
                      [Event(kind="task.failed")])
    assert [s.status for s in store.get_task_states("r1")] == [TaskStatus.RUNNING]
    assert [a.subject_id for a in store.list_audit(workflow_id="wf")] == ["t1"]
    assert [e.kind for e in store.list_events()] == ["task.failed"]
    store.write_batch([], [], [])
    assert len(store.list_audit()) == 1


# -- identifiers --------------------------------------------------------------------------
LOOKUPS = ("get_agent", "get_delegation", "get_reservation", "get_workflow", "get_snapshot",
           "cancel_requested", "get_run", "get_task_states", "get_handoff",
           "get_handoff_context")


@pytest.mark.parametrize("lookup", LOOKUPS)
@pytest.mark.parametrize("bad_id", ["a:b", "*", "[x]", "", "..", "x" * 129])
def test_a_lookup_with_an_invalid_id_is_an_error_on_every_backend(
        store: Store, lookup: str, bad_id: str) -> None:
    """Not None ("not found"), which would hide a malformed ID: the same error as a
    write with it, before anything reaches a key or a query."""
    with pytest.raises(DefinitionError, match="invalid ID"):
        getattr(store, lookup)(bad_id)


#: Listings filtered by an ID, and the filter's name.
ID_FILTERS = (("list_delegations", "agent_id"), ("list_waits", "agent_id"),
              ("list_allocations", "agent_id"), ("list_reservations", "agent_id"),
              ("list_runs", "workflow_id"), ("list_handoffs", "workflow_id"),
              ("list_audit", "workflow_id"))


@pytest.mark.parametrize(("listing", "field"), ID_FILTERS)
@pytest.mark.parametrize("bad_id", ["a:b", "*", "[x]", "", "..", "x" * 129])
def test_a_listing_filtered_by_an_invalid_id_is_an_error_on_every_backend(
        store: Store, listing: str, field: str, bad_id: str) -> None:
    """Not an empty list, which would hide a malformed ID (and on Redis ``*`` would be a
    key pattern): the same error as a lookup with it."""
    with pytest.raises(DefinitionError, match="invalid ID"):
        getattr(store, listing)(**{field: bad_id})
