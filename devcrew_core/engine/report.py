"""Status and result documents of a run, with the spec's keys.

``execute_workflow``, ``get_workflow_status`` and ``devcrew workflow status --output json``
all return this one shape, so Python and CLI users see the same keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from devcrew_core.stores.records import RunRecord, TaskState, TaskStatus


def iso(timestamp: float | None) -> str | None:
    """A UNIX time as an ISO 8601 UTC string (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


def task_document(state: TaskState) -> dict[str, Any]:
    """One task's status."""
    duration = None
    if state.started_at is not None and state.completed_at is not None:
        duration = round(state.completed_at - state.started_at, 6)
    return {
        "task_id": state.task_id,
        "status": state.status.value,
        "attempt": state.attempt,
        "agent_id": state.agent_id,
        "score": state.score,
        "started_at": iso(state.started_at),
        "completed_at": iso(state.completed_at),
        "duration_seconds": duration,
        "output": state.output,
        "error": state.error,
    }


def run_document(run: RunRecord, states: Sequence[TaskState]) -> dict[str, Any]:
    """The run's status and results: the spec's result dict plus per-task detail."""
    counts = Counter(state.status for state in states)
    duration = None
    if run.started_at is not None:
        end = run.completed_at if run.completed_at is not None else None
        duration = round(end - run.started_at, 6) if end is not None else None
    return {
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "status": run.status.value,
        "tasks_total": len(states),
        "tasks_completed": counts[TaskStatus.COMPLETED],
        "tasks_failed": counts[TaskStatus.FAILED],
        "tasks_skipped": counts[TaskStatus.SKIPPED],
        "tasks_cancelled": counts[TaskStatus.CANCELLED],
        "tasks_running": counts[TaskStatus.RUNNING],
        "tasks_waiting": counts[TaskStatus.WAITING],
        "tasks_pending": counts[TaskStatus.PENDING],
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "duration_seconds": duration,
        "error": run.error,
        "results": {s.task_id: s.output for s in states if s.status is TaskStatus.COMPLETED},
        "tasks": [task_document(state) for state in states],
    }
