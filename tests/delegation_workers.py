"""The delegate-check-complete loop of the delegation concurrency test, importable by
spawned processes."""

from __future__ import annotations

import time
from typing import Any

from devcrew_core import DelegationManager, NoCapacityError, TaskRequest

AGENTS = {"w1": 2, "w2": 3, "w3": 1, "w4": 2}  # agent_id -> max_concurrent_tasks


def delegation_loop(manager: DelegationManager, worker: str, count: int) -> dict[str, Any]:
    """Delegate ``count`` tasks one after another, each to the best agent with room;
    after every delegation read every agent back from the store and count loads above
    its limit; then complete the task. Returns the tasks completed, refusals, and
    violations seen."""
    completed: list[str] = []
    refused = violations = 0
    for i in range(count):
        request = TaskRequest(task_id=f"{worker}-t{i}", task_type="job",
                              required_capabilities=["work"], required_agent_type="Worker")
        while True:
            try:
                result = manager.delegate_task(request, manager.find_best_agent(request))
                break
            except NoCapacityError:
                refused += 1
                time.sleep(0.001)
        for status in manager.list_agents(filter_type="Worker"):
            if status["current_load"] > AGENTS[status["agent_id"]]:
                violations += 1
        if manager.complete_task(result["agent_id"], request.task_id):
            completed.append(request.task_id)
        if manager.complete_task(result["agent_id"], request.task_id):  # exactly once
            violations += 1
    return {"completed": completed, "refused": refused, "violations": violations}


def delegation_process(url: str, worker: str, count: int, results: Any) -> None:
    """Process entry point: open a manager on ``url`` and run :func:`delegation_loop`."""
    with DelegationManager(state_url=url) as manager:
        results.put(delegation_loop(manager, worker, count))
