"""The spec's Python examples, run against a real Redis with only the imports, the
server address and the agents' runners changed.

The examples are verbatim copies of the product spec's code blocks
(``tests/data/spec_examples``). The spec imports from ``task_orchestrator``,
``delegation_manager`` and ``resource_allocator``; devcrew exports the same names from
``devcrew_core``. The spec's agents never run, so each ``register_agent(agent_id=...)``
gains a ``runner`` argument.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).parent / "data" / "spec_examples"
RUNNER = "engine_agents:work"


def adapted(name: str, redis_url: str) -> str:
    """The example's source with only the imports, address and runners changed."""
    source = (EXAMPLES / name).read_text()
    source = re.sub(r"from (task_orchestrator|delegation_manager|resource_allocator) import",
                    "from devcrew_core import", source)
    assert "redis://localhost:6379" in source
    source = source.replace('"redis://localhost:6379"', repr(redis_url))
    return re.sub(r"(\.register_agent\(\n(\s+)agent_id=[^\n]+\n)",
                  rf'\1\2runner="{RUNNER}",\n', source)


def run_example(name: str, redis_url: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"spec_example_{name}"}
    exec(compile(adapted(name, redis_url), name, "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The test Redis server, under a key prefix of this test's own."""
    return f"{redis_server_url}?prefix=spec-{uuid.uuid4().hex}"


def close_all(namespace: dict[str, Any]) -> None:
    for value in namespace.values():
        if hasattr(value, "engine") and callable(getattr(value, "close", None)):
            value.close()


def test_quick_start(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_example("quick_start.txt", redis_url)
    try:
        result = ns["result"]
        assert result["status"] == "completed" and result["tasks_completed"] == 2
        by_id = {t["task_id"]: t for t in result["tasks"]}
        assert by_id["write-tests"]["agent_id"] == "qa-tester-001"
        assert by_id["implement-feature"]["agent_id"] == "backend-dev-001"
        # The tests ran before the implementation, which saw their output.
        assert by_id["write-tests"]["completed_at"] <= by_id["implement-feature"]["started_at"]
        assert result["results"]["implement-feature"]["upstream"] == ["write-tests"]
        # Everything lives in Redis: the run is visible to a fresh orchestrator.
        from devcrew_core import TaskOrchestrator

        with TaskOrchestrator(redis_url=redis_url) as other:
            assert other.engine.state_store.url.startswith("redis://")
            assert other.get_workflow_status("feature-dev-001")["status"] == "completed"
    finally:
        close_all(ns)
    out = capsys.readouterr().out
    assert "Workflow Status: completed" in out and "Tasks Completed: 2" in out


def test_create_and_execute_workflows(redis_url: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # The example registers no agents: its Data-Engineer crew is registered first.
    from devcrew_core import DelegationManager

    with DelegationManager(redis_url=redis_url) as crew:
        crew.register_agent(agent_id="data-eng-001", agent_type="Data-Engineer",
                            capabilities=["data-extraction", "data-loading", "etl"],
                            runner=RUNNER)
        crew.register_agent(agent_id="data-eng-002", agent_type="Data-Engineer",
                            capabilities=["data-transformation", "pandas"], runner=RUNNER)
        ns = run_example("create_and_execute_workflows.txt", redis_url)
        try:
            result = ns["result"]
            assert result["status"] == "completed" and result["tasks_completed"] == 3
            agents = {t["task_id"]: t["agent_id"] for t in result["tasks"]}
            assert agents == {"extract-data": "data-eng-001", "transform-data": "data-eng-002",
                              "load-data": "data-eng-001"}
        finally:
            close_all(ns)
    out = capsys.readouterr().out
    assert "Workflow completed: completed" in out and "Started: 20" in out


def test_register_and_manage_agents_then_delegate_tasks(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    registered = run_example("register_and_manage_agents.txt", redis_url)
    try:
        status = registered["status"]
        assert status["available"] is False and status["max_concurrent_tasks"] == 2
        assert registered["agents"] == []  # the only ML engineer was made unavailable
        # The delegation example needs an available ML engineer: make it available.
        registered["manager"].set_agent_availability("ml-specialist-001", available=True)
        delegated = run_example("delegate_tasks.txt", redis_url)
        try:
            assert delegated["agent_match"].agent_id == "ml-specialist-001"
            assert delegated["delegation_result"]["agent_id"] == "ml-specialist-001"
            record = delegated["manager"].get_delegation("train-model-001")
            assert record["status"] == "completed"  # the example completes it at the end
        finally:
            close_all(delegated)
    finally:
        close_all(registered)
    out = capsys.readouterr().out
    assert "Agent Load: 0/2" in out and "Best Match: ml-specialist-001" in out
    assert "Task delegated to: ml-specialist-001" in out


def test_resource_management(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_example("resource_management.txt", redis_url)
    try:
        allocator = ns["allocator"]
        assert ns["allocation_result"]["cpu_allocated"] == 2.0
        assert ns["reservation"]["reservation_id"].startswith("rsv-")
        # The release happened; the reservation holds 4 cores and 8 GB for its task.
        usage = allocator.get_agent_usage("data-processor-001")
        assert usage.cpu_used == 0 and usage.active_tasks == 0
        [held] = allocator.list_reservations("data-processor-001")
        assert held["task_id"] == "future-task-001" and held["cpu_cores"] == 4.0
    finally:
        close_all(ns)
    out = capsys.readouterr().out
    assert "✓ Resources allocated" in out and "CPU: 2.0 cores" in out
    assert "CPU Usage: 2.0/8.0 cores (25.0%)" in out and "Active Tasks: 1/4" in out
    assert "Reservation created: rsv-" in out
