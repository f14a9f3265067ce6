"""``devcrew agent`` and ``devcrew task``: every command as a separate process sharing
one embedded store (DEVCREW_HOME), with the spec's options and output formats."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def test_agent_commands_across_invocations(devcrew: Any) -> None:
    devcrew("agent", "register", "--id", "backend-dev-001", "--type", "Backend-Engineer",
            "--capabilities", "python,api-development,testing", "--max-tasks", "3",
            "--priority", "15")
    devcrew("agent", "register", "--id", "ml-specialist-001", "--type", "ML-Engineer",
            "--capabilities", "machine-learning,tensorflow", "--max-tasks", "2",
            "--priority", "20", "--cpu-cores", "8", "--memory-mb", "16384",
            "--metadata", '{"gpu": "A100", "vram": "40GB"}')
    rows = as_json(devcrew("agent", "list", "--output", "json"))
    assert [r["agent_id"] for r in rows] == ["backend-dev-001", "ml-specialist-001"]
    assert "backend-dev-001" in devcrew("agent", "list", "--format", "table").stdout
    typed = as_json(devcrew("agent", "list", "--type", "ML-Engineer", "-o", "json"))
    assert [r["agent_id"] for r in typed] == ["ml-specialist-001"]
    status = as_json(devcrew("agent", "status", "--id", "ml-specialist-001", "-o", "json"))
    assert status["metadata"] == {"gpu": "A100", "vram": "40GB"}
    assert status["resource_limits"]["cpu_cores"] == 8
    assert status["max_concurrent_tasks"] == 2 and status["priority_weight"] == 20
    devcrew("agent", "set-availability", "--id", "backend-dev-001", "--available", "false")
    assert as_json(devcrew("agent", "list", "--available", "-o", "json"))[0]["agent_id"] == \
        "ml-specialist-001"
    devcrew("agent", "set-availability", "--id", "backend-dev-001", "--available", "true")
    beat = as_json(devcrew("agent", "heartbeat", "--id", "backend-dev-001", "-o", "json"))
    assert beat["expires_at"] > beat["last_heartbeat"]
    stats = as_json(devcrew("agent", "stats", "--output", "json"))
    assert stats["total_agents"] == 2 and stats["total_capacity"] == 5
    assert "no expired agents" in devcrew("agent", "cleanup").stdout
    done = devcrew("agent", "deregister", "--id", "backend-dev-001", "--confirm")
    assert "deregistered backend-dev-001" in done.stdout
    missing = devcrew("agent", "status", "--id", "backend-dev-001", ok=False)
    assert missing.returncode == 1 and "not registered" in missing.stderr


def test_task_commands_across_invocations(devcrew: Any) -> None:
    devcrew("agent", "register", "--id", "ml-specialist-001", "--type", "ML-Engineer",
            "--capabilities", "machine-learning,tensorflow", "--max-tasks", "1")
    found = as_json(devcrew("task", "find-agent", "--capabilities",
                            "machine-learning,tensorflow", "--type", "ML-Engineer",
                            "--output", "json"))
    assert found["agent_id"] == "ml-specialist-001" and found["current_load"] == 0
    result = as_json(devcrew(
        "task", "delegate", "--task-id", "train-model-001", "--type", "model-training",
        "--capabilities", "machine-learning,tensorflow", "--priority", "high",
        "--duration", "3600", "--timeout", "7200",
        "--context", '{"model": "cnn", "dataset": "imagenet"}', "-o", "json"))
    assert result["agent_id"] == "ml-specialist-001" and result["status"] == "delegated"
    # The agent is full now: another delegation is refused (exit 1), nothing recorded.
    full = devcrew("task", "delegate", "--task-id", "t2", "--type", "x", "--capabilities",
                   "tensorflow", ok=False)
    assert full.returncode == 1 and "free slot" in full.stderr
    active = as_json(devcrew("task", "list", "--status", "active", "-o", "json"))
    assert [t["task_id"] for t in active] == ["train-model-001"]
    assert "train-model-001" in devcrew("task", "list", "--agent-id", "ml-specialist-001",
                                        "--format", "table").stdout
    shown = as_json(devcrew("task", "status", "--task-id", "train-model-001", "-o", "json"))
    assert shown["context"] == {"model": "cnn", "dataset": "imagenet"}
    assert shown["priority"] == "high" and shown["status"] == "active"
    done = devcrew("task", "complete", "--agent-id", "ml-specialist-001", "--task-id",
                   "train-model-001")
    assert "completed train-model-001" in done.stdout
    again = devcrew("task", "complete", "--agent-id", "ml-specialist-001", "--task-id",
                    "train-model-001")
    assert "already completed" in again.stdout
    assert as_json(devcrew("task", "list", "--status", "active", "-o", "json")) == []
    status = as_json(devcrew("agent", "status", "--id", "ml-specialist-001", "-o", "json"))
    assert status["current_load"] == 0


@pytest.mark.parametrize("args, code, message", [
    (("task", "delegate", "--task-id", "a:b", "--type", "x"), 2, "task request.task_id"),
    (("task", "delegate", "--task-id", "t", "--type", "x", "--context", "{bad"), 2,
     "--context"),
    (("task", "complete", "--agent-id", "nobody", "--task-id", "t"), 1, "not delegated"),
    (("task", "status", "--task-id", "never"), 1, "never delegated"),
    (("task", "find-agent", "--capabilities", "x"), 1, "no available agent"),
    (("agent", "register", "--id", "*", "--type", "T", "--capabilities", "x"), 2,
     "agent.agent_id"),
    (("agent", "register", "--id", "a", "--type", "T", "--capabilities", "x",
      "--cpu-cores", "2"), 2, "--memory-mb"),
    (("agent", "register", "--id", "a", "--type", "T", "--capabilities", "x",
      "--max-tasks", "0"), 2, "--max-tasks"),
    (("agent", "set-availability", "--id", "nobody", "--available", "true"), 1,
     "not registered"),
])
def test_bad_input_is_a_clear_error(devcrew: Any, args: tuple[str, ...], code: int,
                                    message: str) -> None:
    done = devcrew(*args, ok=False)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
