"""Validate the task graph of a workflow and answer questions about it.

A workflow is a DAG: each task names the tasks it ``depends_on``. :func:`validate_dag`
checks the graph (unique IDs, known dependencies, no self-loops, no cycles) and returns
the order the tasks can run in; :func:`dependants` and :func:`descendants` tell the
engine which tasks are waiting on a given one (e.g. to skip them when it fails).
"""

from __future__ import annotations

import graphlib
import heapq
from collections import deque

from devcrew_core.errors import DefinitionError
from devcrew_core.models import Workflow


class DagError(DefinitionError):
    """The task graph of a workflow is invalid.

    ``path`` is the offending field relative to the workflow (``"tasks[1].depends_on[0]"``)
    so that a file loader can say where in the file the problem is.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _check_ids_and_edges(workflow: Workflow) -> dict[str, int]:
    """Return ``{task_id: declaration index}``, rejecting duplicates, self-loops and
    unknown dependencies (first problem in declaration order wins)."""
    wf = workflow.workflow_id
    index: dict[str, int] = {}
    for i, task in enumerate(workflow.tasks):
        if task.task_id in index:
            raise DagError(
                f"workflow {wf!r}: duplicate task_id {task.task_id!r} "
                f"(tasks[{index[task.task_id]}] and tasks[{i}])",
                f"tasks[{i}].task_id",
            )
        index[task.task_id] = i
    for i, task in enumerate(workflow.tasks):
        for j, dependency in enumerate(task.depends_on):
            path = f"tasks[{i}].depends_on[{j}]"
            if dependency == task.task_id:
                raise DagError(f"task {task.task_id!r}: depends on itself", path)
            if dependency not in index:
                raise DagError(
                    f"task {task.task_id!r}: depends_on {dependency!r} is not a task of "
                    f"workflow {wf!r}",
                    path,
                )
    return index


def _cycle_error(workflow: Workflow, index: dict[str, int]) -> DagError:
    """Find one dependency cycle (with graphlib) and describe it, starting at its
    earliest-declared task; an arrow points from a task to a task that depends on it."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for task in workflow.tasks:
        sorter.add(task.task_id, *task.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # graphlib lists the cycle so that each node is a dependency of the next one,
        # with the first node repeated at the end.
        nodes: list[str] = list(exc.args[1][:-1])
    else:  # pragma: no cover - only called when a cycle exists
        raise AssertionError("no cycle found")
    start = min(range(len(nodes)), key=lambda k: index[nodes[k]])
    nodes = nodes[start:] + nodes[:start]
    path_text = " -> ".join([*nodes, nodes[0]])
    first = index[nodes[0]]
    return DagError(
        f"workflow {workflow.workflow_id!r}: dependency cycle {path_text} "
        "(each task depends on the one before it)",
        f"tasks[{first}].depends_on",
    )


def validate_dag(workflow: Workflow) -> list[str]:
    """Check the task graph of ``workflow`` and return its task IDs in topological order.

    Among tasks that are ready at the same time, the one declared first comes first,
    so the order is stable. Raises :class:`~devcrew_core.errors.DefinitionError` for a
    duplicate task ID, a dependency on an unknown task, a task depending on itself, or
    a cycle (the message shows it, e.g. ``a -> b -> c -> a``).

    >>> from devcrew_core.models import Task
    >>> wf = Workflow(id="wf", tasks=[
    ...     Task(task_id="b", agent_type="x", depends_on=["a"]),
    ...     Task(task_id="a", agent_type="x"),
    ...     Task(task_id="c", agent_type="x"),
    ... ])
    >>> validate_dag(wf)
    ['a', 'b', 'c']
    """
    index = _check_ids_and_edges(workflow)
    waiting_on = [len(set(task.depends_on)) for task in workflow.tasks]
    children = _dependant_indexes(workflow, index)
    ready = [i for i, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(workflow.tasks[i].task_id)
        for child in children[i]:
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                heapq.heappush(ready, child)
    if len(order) != len(workflow.tasks):
        raise _cycle_error(workflow, index)
    return order


def _dependant_indexes(workflow: Workflow, index: dict[str, int]) -> list[list[int]]:
    """For each task (by declaration index), the indexes of the tasks depending on it."""
    children: list[list[int]] = [[] for _ in workflow.tasks]
    for i, task in enumerate(workflow.tasks):
        for dependency in dict.fromkeys(task.depends_on):  # a repeated dependency counts once
            if dependency in index:
                children[index[dependency]].append(i)
    return children


def dependants(workflow: Workflow) -> dict[str, list[str]]:
    """``{task_id: [IDs of the tasks that depend on it directly]}`` for every task,
    each list in declaration order (empty for a task nothing depends on).

    Dependencies on unknown tasks are ignored; call :func:`validate_dag` first.
    """
    index = {task.task_id: i for i, task in enumerate(workflow.tasks)}
    children = _dependant_indexes(workflow, index)
    return {
        task.task_id: [workflow.tasks[child].task_id for child in children[i]]
        for i, task in enumerate(workflow.tasks)
    }


def descendants(workflow: Workflow, task_id: str) -> set[str]:
    """Every task that depends on ``task_id`` directly or transitively (not the task
    itself): the tasks to skip when ``task_id`` fails.

    Raises ``KeyError`` if ``task_id`` is not a task of ``workflow``.
    """
    graph = dependants(workflow)
    if task_id not in graph:
        raise KeyError(task_id)
    found: set[str] = set()
    queue = deque(graph[task_id])
    while queue:
        current = queue.popleft()
        if current not in found:
            found.add(current)
            queue.extend(graph[current])
    found.discard(task_id)  # only possible in a cyclic (invalid) graph
    return found
