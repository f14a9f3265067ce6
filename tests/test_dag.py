"""DAG validation of workflows: topological order, and the errors for bad graphs."""

from __future__ import annotations

import pytest

from devcrew_core import DefinitionError, Task, Workflow
from devcrew_core.engine.dag import DagError, dependants, descendants, validate_dag


def task(task_id: str, *depends_on: str) -> Task:
    return Task(task_id=task_id, agent_type="worker", depends_on=list(depends_on))


def workflow(*tasks: Task, workflow_id: str = "wf") -> Workflow:
    return Workflow(workflow_id=workflow_id, tasks=list(tasks))


def assert_topological(wf: Workflow, order: list[str]) -> None:
    assert sorted(order) == sorted(t.task_id for t in wf.tasks)
    position = {task_id: i for i, task_id in enumerate(order)}
    for t in wf.tasks:
        for dependency in t.depends_on:
            assert position[dependency] < position[t.task_id], (dependency, t.task_id)


# -- order ---------------------------------------------------------------------------------

def test_empty_workflow_has_empty_order() -> None:
    assert validate_dag(workflow()) == []


def test_independent_tasks_keep_declaration_order() -> None:
    wf = workflow(task("c"), task("a"), task("b"))
    assert validate_dag(wf) == ["c", "a", "b"]


def test_chain_declared_backwards_runs_forwards() -> None:
    wf = workflow(task("c", "b"), task("b", "a"), task("a"))
    assert validate_dag(wf) == ["a", "b", "c"]


def test_ties_are_broken_by_declaration_order() -> None:
    # "late" becomes ready only after "root"; then it competes with "other" and "z",
    # which were declared after it, so it goes first among them.
    wf = workflow(
        task("late", "root"),
        task("other"),
        task("root"),
        task("z", "other"),
    )
    assert validate_dag(wf) == ["other", "root", "late", "z"]


def test_diamond() -> None:
    wf = workflow(
        task("join", "left", "right"),
        task("right", "start"),
        task("left", "start"),
        task("start"),
    )
    order = validate_dag(wf)
    assert order == ["start", "right", "left", "join"]
    assert_topological(wf, order)


def test_repeated_dependency_counts_once() -> None:
    wf = workflow(task("a"), task("b", "a", "a"))
    assert validate_dag(wf) == ["a", "b"]
    assert dependants(wf) == {"a": ["b"], "b": []}


def test_larger_graph_is_topological_and_stable() -> None:
    wf = workflow(
        task("deploy", "test", "docs"),
        task("docs", "design"),
        task("test", "build"),
        task("build", "design", "deps"),
        task("deps"),
        task("design"),
        task("notify", "deploy"),
        task("lint"),
    )
    order = validate_dag(wf)
    assert_topological(wf, order)
    assert order == ["deps", "design", "docs", "build", "test", "deploy", "notify", "lint"]
    assert validate_dag(wf) == order  # deterministic


def test_long_chain() -> None:
    count = 3000
    tasks = [task("t0")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, count)]
    wf = workflow(*reversed(tasks))
    assert validate_dag(wf) == [f"t{i}" for i in range(count)]


# -- errors --------------------------------------------------------------------------------

def test_unknown_dependency() -> None:
    wf = workflow(task("a"), task("b", "x"))
    with pytest.raises(DefinitionError) as info:
        validate_dag(wf)
    assert str(info.value) == "task 'b': depends_on 'x' is not a task of workflow 'wf'"
    assert isinstance(info.value, DagError) and info.value.path == "tasks[1].depends_on[0]"
    assert isinstance(info.value, ValueError)


def test_self_loop() -> None:
    wf = workflow(task("a"), task("b", "a", "b"))
    with pytest.raises(DefinitionError, match=r"^task 'b': depends on itself$") as info:
        validate_dag(wf)
    assert isinstance(info.value, DagError) and info.value.path == "tasks[1].depends_on[1]"


def test_duplicate_ids() -> None:
    wf = workflow(task("a"), task("b"))
    wf.tasks.append(task("a"))  # mutating the list bypasses the model's own check
    with pytest.raises(DefinitionError) as info:
        validate_dag(wf)
    assert str(info.value) == "workflow 'wf': duplicate task_id 'a' (tasks[0] and tasks[2])"


def test_cycle_path_is_shown() -> None:
    # b depends on a, c on b, a on c.
    wf = workflow(task("a", "c"), task("b", "a"), task("c", "b"))
    with pytest.raises(DefinitionError) as info:
        validate_dag(wf)
    assert "a -> b -> c -> a" in str(info.value)
    assert str(info.value).startswith("workflow 'wf': dependency cycle a -> b -> c -> a")


def test_cycle_starts_at_earliest_declared_task_and_ignores_the_rest() -> None:
    wf = workflow(
        task("free"),
        task("tail", "y"),  # depends on the cycle but is not part of it
        task("z", "y"),
        task("x", "z"),
        task("y", "x"),
    )
    with pytest.raises(DefinitionError) as info:
        validate_dag(wf)
    message = str(info.value)
    assert "z -> x -> y -> z" in message
    assert "tail" not in message and "free" not in message


def test_two_task_cycle() -> None:
    wf = workflow(task("a", "b"), task("b", "a"))
    with pytest.raises(DefinitionError, match=r"a -> b -> a"):
        validate_dag(wf)


def test_long_cycle() -> None:
    count = 2000
    tasks = [task("t0", f"t{count - 1}")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, count)]
    with pytest.raises(DefinitionError) as info:
        validate_dag(workflow(*tasks))
    expected = " -> ".join([f"t{i}" for i in range(count)] + ["t0"])
    assert expected in str(info.value)


# -- dependants and descendants ------------------------------------------------------------

def test_dependants_lists_direct_dependants_in_declaration_order() -> None:
    wf = workflow(task("a"), task("c", "a"), task("b", "a"), task("d", "b", "c"))
    assert dependants(wf) == {"a": ["c", "b"], "c": ["d"], "b": ["d"], "d": []}


def test_descendants_are_transitive_and_exclude_the_task() -> None:
    wf = workflow(
        task("a"), task("b", "a"), task("c", "b"), task("d", "a"), task("e"), task("f", "e", "c")
    )
    assert descendants(wf, "a") == {"b", "c", "d", "f"}
    assert descendants(wf, "b") == {"c", "f"}
    assert descendants(wf, "e") == {"f"}
    assert descendants(wf, "f") == set()


def test_descendants_of_unknown_task() -> None:
    with pytest.raises(KeyError):
        descendants(workflow(task("a")), "nope")
