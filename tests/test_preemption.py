"""Victim choice, ageing and deadlock cycles: the pure functions, table-driven."""

from __future__ import annotations

import pytest

from devcrew_core.engine.deadlocks import find_deadlocks
from devcrew_core.engine.preemption import choose_victims, effective_priority
from devcrew_core.models import Priority
from devcrew_core.stores.records import Allocation, ResourceAmounts, WaitRecord

L, M, H, C = Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL
NOTHING = ResourceAmounts()
INF = float("inf")


def held(task_id: str, cpu: float, priority: Priority, created: float = 1.0,
         preemptable: bool = True, holds_slot: bool = True) -> Allocation:
    return Allocation(agent_id="a1", task_id=task_id, cpu_cores=cpu, priority=priority,
                      created_at=created, preemptable=preemptable, holds_slot=holds_slot)


def limits(cpu: float) -> ResourceAmounts:
    return ResourceAmounts(cpu_cores=cpu, memory_mb=INF, disk_mb=INF, network_mbps=INF)


CASES = [
    # (name, held, request cpu, request priority, cpu limit, free slots, expected victims)
    ("one big victim beats two small ones",
     [held("big", 3, L), held("s1", 1, L), held("s2", 1, L)], 3, H, 5, 5, ["big"]),
    ("lowest priority first",
     [held("low", 2, L), held("mid", 2, M)], 2, H, 4, 5, ["low"]),
    ("fewest victims even at a higher (still lower) priority",
     [held("l1", 1, L), held("l2", 1, L), held("m1", 2, M)], 2, H, 4, 5, ["m1"]),
    ("several when no single one is enough",
     [held("l1", 1, L), held("l2", 1, L), held("h1", 2, H)], 2, H, 4, 5, ["l1", "l2"]),
    ("a medium victim when the lows cannot make room",
     [held("l1", 1, L), held("m1", 3, M)], 3, H, 4, 5, ["m1"]),
    ("none when even every candidate is not enough",
     [held("low", 1, L), held("high", 3, H)], 4, H, 4, 5, None),
    ("equal priority is never preempted",
     [held("peer", 4, M)], 1, M, 4, 5, None),
    ("higher priority is never preempted",
     [held("boss", 4, C)], 1, H, 4, 5, None),
    ("non-preemptable allocations are left alone",
     [held("pinned", 4, L, preemptable=False)], 1, C, 4, 5, None),
    ("the newest of equal candidates goes (least work lost)",
     [held("old", 2, L, created=1.0), held("new", 2, L, created=2.0)], 2, H, 4, 5, ["new"]),
    ("a slot is needed: the victim must free one",
     [held("noslot", 4, L, holds_slot=False), held("slot", 0.5, L)], 0.5, H, 5, 0, ["slot"]),
    ("no victim when nothing is short", [held("x", 1, L)], 1, H, 4, 5, None),
]


@pytest.mark.parametrize("name, allocations, cpu, priority, cpu_limit, slots, expected",
                         CASES, ids=[c[0] for c in CASES])
def test_choose_victims(name: str, allocations: list[Allocation], cpu: float,
                        priority: Priority, cpu_limit: float, slots: int,
                        expected: list[str] | None) -> None:
    request = Allocation(agent_id="a1", task_id="req", cpu_cores=cpu, priority=priority)
    used = sum(a.cpu_cores for a in allocations)
    if expected is not None or used + cpu > cpu_limit or slots == 0:
        victims = choose_victims(request, priority, allocations, NOTHING, limits(cpu_limit),
                                 slots, needs_slot=True)
        got = None if victims is None else sorted(v.task_id for v in victims)
        assert got == (None if expected is None else sorted(expected))
    else:  # it fits already: the allocator never asks, and there is nothing to choose
        assert expected is None


def test_reservations_count_against_room() -> None:
    request = Allocation(agent_id="a1", task_id="req", cpu_cores=2, priority=H)
    reserved = ResourceAmounts(cpu_cores=2)
    victims = choose_victims(request, H, [held("l1", 1, L), held("l2", 1, L)], reserved,
                             limits(4), 5, needs_slot=True)
    assert victims is not None and sorted(v.task_id for v in victims) == ["l1", "l2"]


@pytest.mark.parametrize("priority, waited, aging, expected", [
    (L, 0, 30, L), (L, 29.9, 30, L), (L, 30, 30, M), (L, 60, 30, H), (L, 600, 30, H),
    (M, 45, 30, H), (H, 600, 30, H), (C, 0, 30, C), (L, 100, 0, L),
])
def test_effective_priority_ages_up_to_high(priority: Priority, waited: float,
                                            aging: float, expected: Priority) -> None:
    assert effective_priority(priority, waited, aging) is expected


def wait(task: str, agent: str) -> WaitRecord:
    return WaitRecord(agent_id=agent, task_id=task)


def alloc(task: str, agent: str, priority: Priority = M, created: float = 1.0) -> Allocation:
    return Allocation(agent_id=agent, task_id=task, cpu_cores=1, priority=priority,
                      created_at=created)


def test_a_two_task_cycle_is_found_with_its_victim() -> None:
    # t1 holds A and waits on B; t2 holds B and waits on A.
    cycles = find_deadlocks([wait("t1", "B"), wait("t2", "A")],
                            [alloc("t1", "A", H), alloc("t2", "B", L)])
    assert [c.as_dict() for c in cycles] == [{
        "tasks": ["t1", "t2"], "agents": ["B", "A"], "victim": "t2",
        "edges": [{"task": "t1", "waits_on_agent": "B", "held_by": "t2"},
                  {"task": "t2", "waits_on_agent": "A", "held_by": "t1"}]}]


def test_a_three_task_cycle_and_bystanders() -> None:
    waits = [wait("t1", "B"), wait("t2", "C"), wait("t3", "A"), wait("idle", "A")]
    allocations = [alloc("t1", "A", M, 1.0), alloc("t2", "B", M, 3.0),
                   alloc("t3", "C", M, 2.0), alloc("other", "A", L)]
    cycles = find_deadlocks(waits, allocations)
    assert [c.tasks for c in cycles] == [["t1", "t2", "t3"]]
    assert cycles[0].victim == "t2"  # equal priorities: the newest allocation


def test_no_cycle_without_mutual_waiting() -> None:
    assert find_deadlocks([wait("t1", "B")], [alloc("t1", "A"), alloc("t2", "B")]) == []
    assert find_deadlocks([], [alloc("t1", "A")]) == []
    assert find_deadlocks([wait("t1", "A")], [alloc("t1", "A")]) == []  # waits on itself
