"""Agent runners: how an agent actually runs a task attempt.

A runner is built from an agent's runner declaration (a dict with ``kind``) by the
factory of the matching :class:`~devcrew_core.plugin_types.AgentRunner` record, and is
then awaited once per attempt with one :class:`TaskCall`::

    runner = factory({"kind": "command", "argv": ["echo", "{input.feature}"]})
    output = await runner(call)          # a JSON-serialisable dict

Raising fails the attempt (the engine may retry it). Cancelling the awaiting coroutine
(timeout, workflow cancel) must really stop the work: runners kill subprocesses and
abort requests when cancelled.

Built-in kinds: ``python``, ``command``, ``http``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from devcrew_core.models import AgentContext


@dataclass(frozen=True)
class TaskCall:
    """Everything a runner gets for one attempt of one task.

    ``idempotency_key`` is ``run_id/task_id/attempt``: delivery is at-least-once, so an
    agent with side effects should use it to recognise a repeated attempt.
    """

    task_id: str
    workflow_id: str
    run_id: str
    agent_id: str
    input: dict[str, Any]
    upstream: dict[str, dict[str, Any]]
    attempt: int
    idempotency_key: str
    context: AgentContext | None = None
    timeout: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The call as a JSON-serialisable dict (what command and http runners send)."""
        return {
            "task_id": self.task_id,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "agent_id": self.agent_id,
            "input": self.input,
            "upstream": self.upstream,
            "attempt": self.attempt,
            "idempotency_key": self.idempotency_key,
            "context": None if self.context is None else self.context.model_dump(mode="json"),
            "timeout": self.timeout,
        }


#: A runner: awaited once per attempt, returns the task's output.
Runner = Callable[[TaskCall], Awaitable[dict[str, Any]]]
