"""Deadlock detection: cycles in the wait-for graph of tasks and agents (pure functions).

A task that waits for capacity on an agent waits for every task holding an allocation
there. When a chain of such waits comes back to where it started — task T1 holds
resources on agent A and waits on agent B, whose capacity T2 holds while T2 waits on A —
none of them can go on until one gives its resources up. Each cycle is reported with
its tasks, the agents they wait on, and the member to preempt (the lowest priority,
then the newest allocation, then the task ID).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from devcrew_core.stores.records import Allocation, WaitRecord


@dataclass(frozen=True)
class Deadlock:
    """One cycle of the wait-for graph."""

    tasks: list[str]
    #: (waiting task, agent it waits on, task holding capacity there) along the cycle.
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    #: The member to preempt to break the cycle.
    victim: str = ""

    @property
    def agents(self) -> list[str]:
        """The agents the cycle's tasks wait on, in cycle order."""
        return [agent for _, agent, _ in self.edges]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready report."""
        return {"tasks": list(self.tasks), "agents": self.agents, "victim": self.victim,
                "edges": [{"task": t, "waits_on_agent": a, "held_by": h}
                          for t, a, h in self.edges]}


def find_deadlocks(waits: Sequence[WaitRecord],
                   allocations: Sequence[Allocation]) -> list[Deadlock]:
    """Every elementary cycle through distinct tasks, each reported once (starting at
    its smallest task ID)."""
    holders: dict[str, list[str]] = defaultdict(list)
    for allocation in allocations:
        holders[allocation.agent_id].append(allocation.task_id)
    # task -> [(agent it waits on, holder)], only through tasks that hold something.
    graph: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for wait in waits:
        for holder in sorted(holders.get(wait.agent_id, [])):
            if holder != wait.task_id:
                graph[wait.task_id].append((wait.agent_id, holder))
    held_by_task: dict[str, list[Allocation]] = defaultdict(list)
    for allocation in allocations:
        held_by_task[allocation.task_id].append(allocation)

    found: dict[tuple[str, ...], Deadlock] = {}
    for start in sorted(graph):
        stack: list[tuple[str, list[tuple[str, str, str]]]] = [(start, [])]
        while stack:
            node, path = stack.pop()
            for agent, holder in graph.get(node, []):
                edge = (node, agent, holder)
                if holder == start:
                    cycle = [*path, edge]
                    tasks = tuple(t for t, _, _ in cycle)
                    if min(tasks) == start and tasks not in found:
                        found[tasks] = Deadlock(list(tasks), cycle,
                                                _victim(tasks, held_by_task))
                elif holder > start and holder not in {t for t, _, _ in path} | {node}:
                    stack.append((holder, [*path, edge]))
    return [found[key] for key in sorted(found)]


def _victim(tasks: Sequence[str], held: dict[str, list[Allocation]]) -> str:
    def key(task: str) -> tuple[int, float, str]:
        allocations = held.get(task, [])
        priority = max((int(a.priority) for a in allocations), default=0)
        newest = max((a.created_at for a in allocations), default=0.0)
        return (priority, -newest, task)

    return min(tasks, key=key)
